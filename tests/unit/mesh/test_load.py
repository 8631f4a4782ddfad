"""lanai.mesh.load: measured throughput and the load board routers watch."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lanai.services.core.admission import AdmissionController
from lanai.mesh.load import LoadBoard, Snapshot, Throughput
from lanai.services.core.errors import Unavailable

WAIT_S = 5.0
_ids = itertools.count()

# --- Throughput -------------------------------------------------------------------------------------------------


def test_first_observation_is_taken_as_is() -> None:
    assert Throughput("audio_s/s").observe(7.5) == Throughput("audio_s/s", 7.5, 1)


def test_later_observations_blend_with_weight_alpha() -> None:
    t = Throughput("audio_s/s").observe(10.0).observe(20.0)  # 0.8 * 10 + 0.2 * 20
    assert t.unit == "audio_s/s" and t.samples == 2
    assert t.value == pytest.approx(12.0)
    assert t.observe(0.0).value == pytest.approx(9.6)
    assert Throughput("x").observe(10.0).observe(20.0, alpha=0.5).value == pytest.approx(15.0)
    assert Throughput("x").observe(10.0).observe(20.0, alpha=1.0).value == pytest.approx(20.0)


def test_observe_returns_a_new_value() -> None:
    first = Throughput("x").observe(1.0)
    first.observe(100.0)
    assert first == Throughput("x", 1.0, 1)


def test_a_steady_rate_converges() -> None:
    t = Throughput("x").observe(100.0)
    for _ in range(60):
        t = t.observe(10.0)
    assert t.value == pytest.approx(10.0, abs=0.01) and t.samples == 61


# --- LoadBoard --------------------------------------------------------------------------------------------------


class Node:
    """A board with one speech controller wired to it, as a node sets them up."""

    def __init__(self) -> None:
        self.id = f"unit-test-node-{next(_ids)}"
        self.board = LoadBoard(self.id)
        self.ac = AdmissionController("speech", 1, 2, on_change=self.board.changed)
        self.board.add(self.ac, {"tiny.en": "audio_s/s", "base": "audio_s/s"})

    def close(self) -> None:
        self.ac.shutdown()


@pytest.fixture
def node() -> Any:
    n = Node()
    yield n
    n.close()


async def _next(watch: AsyncIterator[Snapshot]) -> Snapshot:
    return await asyncio.wait_for(anext(watch), WAIT_S)


async def _parked(board: LoadBoard) -> None:
    """Until a watcher waits on the board's change signal (white box: the change would otherwise be
    seen by the version check after the coalescing pause, and the wake-up would go untested)."""
    async with asyncio.timeout(WAIT_S):
        while board._changed is None or board._changed.done():
            await asyncio.sleep(0.001)


def test_snapshot_describes_the_services(node: Node) -> None:
    first, second = node.board.snapshot(), node.board.snapshot()
    assert second.sequence == first.sequence + 1
    assert set(first.services) == {"speech"}
    assert first.services["speech"] == node.ac.load()
    assert first.throughput == {"speech": {"tiny.en": Throughput("audio_s/s"), "base": Throughput("audio_s/s")}}
    assert not first.draining
    assert abs(first.unix_ms - time.time() * 1000) < 60_000


def test_observe_folds_into_the_model_average(node: Node) -> None:
    node.board.observe("speech", "tiny.en", 40.0)
    node.board.observe("speech", "tiny.en", 50.0)
    assert node.board.throughput("speech", "tiny.en") == Throughput("audio_s/s", pytest.approx(42.0), 2)
    assert node.board.throughput("speech", "base") == Throughput("audio_s/s")


def test_snapshots_do_not_change_afterwards(node: Node) -> None:
    before = node.board.snapshot()
    node.board.observe("speech", "tiny.en", 40.0)
    node.ac.open_stream(max_streams=4)
    assert before.throughput["speech"]["tiny.en"] == Throughput("audio_s/s")
    assert before.services["speech"].open_streams == 0
    assert node.board.snapshot().services["speech"].open_streams == 1


async def test_drain_drains_every_controller(node: Node) -> None:
    node.board.drain()
    assert node.board.snapshot().draining
    with pytest.raises(Unavailable):
        await node.ac.run(lambda: None)


def test_changes_are_published_as_metrics(node: Node) -> None:
    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"service": "speech", "node": node.id})

    assert gauge("lanai_slots") == 1
    node.ac.open_stream(max_streams=4)
    node.ac.open_stream(max_streams=4)
    assert gauge("lanai_open_streams") == 2
    assert gauge("lanai_in_flight") == 0 and gauge("lanai_queued") == 0


async def test_watch_yields_at_once(node: Node) -> None:
    watch = node.board.watch(heartbeat_s=60)
    try:
        first = await _next(watch)
        assert first.services["speech"] == node.ac.load()
    finally:
        await watch.aclose()


async def test_watch_yields_after_a_change(node: Node) -> None:
    watch = node.board.watch(heartbeat_s=60)  # no heartbeat within the test: only a change can wake it
    try:
        first = await _next(watch)
        pending = asyncio.ensure_future(anext(watch))
        await _parked(node.board)
        node.board.observe("speech", "base", 3.0)
        second = await asyncio.wait_for(pending, WAIT_S)
        assert second.sequence > first.sequence
        assert second.throughput["speech"]["base"] == Throughput("audio_s/s", 3.0, 1)
    finally:
        await watch.aclose()


async def test_watch_follows_admission(node: Node) -> None:
    release, started = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        release.wait(WAIT_S)
        return "done"

    watch = node.board.watch(heartbeat_s=60)
    try:
        assert (await _next(watch)).services["speech"].in_flight == 0
        task = asyncio.create_task(node.ac.run(job, tag="tiny.en"))
        busy = await _next(watch)
        while busy.services["speech"].in_flight_by_tag != {"tiny.en": 1}:
            busy = await _next(watch)
        assert busy.services["speech"].in_flight == 1
        release.set()
        assert (await asyncio.wait_for(task, WAIT_S))[0] == "done"
        idle = await _next(watch)
        while idle.services["speech"].in_flight:
            idle = await _next(watch)
        assert idle.services["speech"].in_flight_by_tag == {}
    finally:
        release.set()
        await watch.aclose()


async def test_watch_sends_a_heartbeat_when_nothing_changes(node: Node) -> None:
    heartbeat = 0.05
    watch = node.board.watch(heartbeat_s=heartbeat)
    try:
        first = await _next(watch)
        started = time.monotonic()
        beat = await _next(watch)
        waited = time.monotonic() - started
        assert waited >= heartbeat * 0.9
        assert beat.sequence > first.sequence
        assert beat.services == first.services and beat.throughput == first.throughput
        again = await _next(watch)
        assert again.sequence > beat.sequence
    finally:
        await watch.aclose()


async def test_two_watchers_are_both_woken(node: Node) -> None:
    watches = [node.board.watch(heartbeat_s=60), node.board.watch(heartbeat_s=60)]
    try:
        for w in watches:
            await _next(w)
        pending = [asyncio.ensure_future(anext(w)) for w in watches]
        await _parked(node.board)
        node.board.observe("speech", "tiny.en", 9.0)
        for snapshot in await asyncio.wait_for(asyncio.gather(*pending), WAIT_S):
            assert snapshot.throughput["speech"]["tiny.en"].value == 9.0
    finally:
        for w in watches:
            await w.aclose()


async def test_watch_ends_after_the_draining_snapshot(node: Node) -> None:
    watch = node.board.watch(heartbeat_s=60)
    first = await _next(watch)
    assert not first.draining
    pending = asyncio.ensure_future(anext(watch))
    await _parked(node.board)
    node.board.drain()
    last = await asyncio.wait_for(pending, WAIT_S)
    assert last.draining and last.sequence > first.sequence
    with pytest.raises(StopAsyncIteration):
        await _next(watch)


async def test_watch_started_while_draining_reports_once_and_ends(node: Node) -> None:
    node.board.drain()
    snapshots = [s async for s in node.board.watch(heartbeat_s=0.05)]
    assert [s.draining for s in snapshots] == [True]
