"""lanai.mesh.watch: the pure Describe/LoadReport converters, and a NodeWatcher following a real
in-process Node server (Describe, then WatchLoad) through its callbacks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.security.trust import Untrusted
from lanai.mesh.state import LoadView, ServiceView
from lanai.mesh.watch import MISSED_HEARTBEATS, NodeWatcher, load_of, services_of, throughput_of

on_loop = pytest.mark.asyncio(loop_scope="session")

WAIT_S = 5.0
HEARTBEAT_MS = 100
FAST_BACKOFF = (0.05, 0.1)


def model(name: str, *, default: bool = False, speed: float | None = None) -> mesh_pb2.ModelInfo:
    info = mesh_pb2.ModelInfo(name=name, is_default=default)
    if speed is not None:
        info.throughput.CopyFrom(mesh_pb2.Throughput(unit="u/s", value=speed, samples=3))
    return info


def describe(node_id: str = "gpu-1") -> mesh_pb2.DescribeResponse:
    return mesh_pb2.DescribeResponse(node_id=node_id, metrics_port=9100, services=[
        mesh_pb2.ServiceInfo(name="speech", grpc_service="lanai.speech.v1.Speech", slots=2, max_queue=8, models=[
            model("whisper-base", speed=12.5), model("whisper-small", default=True, speed=4.0)]),
        mesh_pb2.ServiceInfo(name="language", slots=1, max_queue=0, models=[
            model("qwen", speed=0.0), model("smollm")]),
        mesh_pb2.ServiceInfo(name="vision", slots=3, max_queue=1),
    ])


def report(sequence: int, *, in_flight: int = 0, draining: bool = False) -> mesh_pb2.LoadReport:
    return mesh_pb2.LoadReport(node_id="gpu-1", sequence=sequence, draining=draining, services=[
        mesh_pb2.ServiceLoad(service="speech", slots=2, in_flight=in_flight, queued=3, max_queue=8,
                             free_slots=2 - in_flight, open_streams=1, models=[
                                 mesh_pb2.ModelLoad(model="whisper-base", in_flight=in_flight,
                                                    throughput=mesh_pb2.Throughput(value=11.0)),
                                 mesh_pb2.ModelLoad(model="whisper-small")]),
        mesh_pb2.ServiceLoad(service="vision", slots=3, max_queue=1, free_slots=3),
    ])


# --- services_of --------------------------------------------------------------------------------------------------


def test_services_of_views_every_service_with_slots_queue_and_models() -> None:
    assert services_of(describe()) == {
        "speech": ServiceView(slots=2, max_queue=8, models=("whisper-base", "whisper-small"),
                              default_model="whisper-small"),
        "language": ServiceView(slots=1, max_queue=0, models=("qwen", "smollm"), default_model="qwen"),
        "vision": ServiceView(slots=3, max_queue=1, models=(), default_model=""),
    }


def test_services_of_takes_the_flagged_default_not_the_first_model() -> None:
    d = mesh_pb2.DescribeResponse(services=[mesh_pb2.ServiceInfo(name="speech", models=[
        model("a"), model("b"), model("c", default=True)])])
    assert services_of(d)["speech"].default_model == "c"
    assert services_of(d)["speech"].models == ("a", "b", "c")


def test_services_of_an_empty_description_is_empty() -> None:
    assert services_of(mesh_pb2.DescribeResponse()) == {}
    assert services_of(mesh_pb2.DescribeResponse(node_id="idle", draining=True)) == {}


def test_services_of_unset_numbers_are_zero() -> None:
    d = mesh_pb2.DescribeResponse(services=[mesh_pb2.ServiceInfo(name="speech", models=[model("m")])])
    assert services_of(d) == {"speech": ServiceView(slots=0, max_queue=0, models=("m",), default_model="m")}


# --- throughput_of ------------------------------------------------------------------------------------------------


def test_throughput_of_is_keyed_by_service_and_model_with_unmeasured_as_zero() -> None:
    assert throughput_of(describe()) == {
        ("speech", "whisper-base"): 12.5,
        ("speech", "whisper-small"): 4.0,
        ("language", "qwen"): 0.0,
        ("language", "smollm"): 0.0,  # no Throughput message at all
    }


def test_throughput_of_a_service_without_models_has_no_entries() -> None:
    d = mesh_pb2.DescribeResponse(services=[mesh_pb2.ServiceInfo(name="vision", slots=1)])
    assert throughput_of(d) == {}
    assert throughput_of(mesh_pb2.DescribeResponse()) == {}


# --- load_of ------------------------------------------------------------------------------------------------------


def test_load_of_views_each_service_load_and_model_throughput() -> None:
    load, throughput = load_of(report(7, in_flight=2))
    assert load == {"speech": LoadView(in_flight=2, queued=3, open_streams=1),
                    "vision": LoadView(in_flight=0, queued=0, open_streams=0)}
    assert throughput == {("speech", "whisper-base"): 11.0, ("speech", "whisper-small"): 0.0}


def test_load_of_an_empty_report_is_empty() -> None:
    assert load_of(mesh_pb2.LoadReport()) == ({}, {})
    assert load_of(mesh_pb2.LoadReport(node_id="n", sequence=3, draining=True)) == ({}, {})


def test_load_of_ignores_the_model_level_counts() -> None:
    """The service's totals are what placement reads; per-model in_flight is not summed in."""
    r = mesh_pb2.LoadReport(services=[mesh_pb2.ServiceLoad(service="speech", in_flight=1, models=[
        mesh_pb2.ModelLoad(model="a", in_flight=5, queued=5)])])
    load, throughput = load_of(r)
    assert load == {"speech": LoadView(1, 0, 0)}
    assert throughput == {("speech", "a"): 0.0}


# --- NodeWatcher against a real Node server -----------------------------------------------------------------------


class FakeNode(mesh_pb2_grpc.NodeServicer):
    """Describes itself, then streams `reports` on WatchLoad and ends as `ending` says:
    "end" (the stream closes), "error" (UNAVAILABLE), "hang" (stays open, sends nothing)."""

    def __init__(self, reports: list[mesh_pb2.LoadReport], ending: str = "end",
                 description: mesh_pb2.DescribeResponse | None = None) -> None:
        self.reports = reports
        self.ending = ending
        self.description = description or describe()
        self.describes = 0
        self.heartbeats: list[int] = []
        self.streaming = asyncio.Event()
        """Set once every report of a WatchLoad call was sent."""

    async def Describe(self, request: Any, context: Any) -> mesh_pb2.DescribeResponse:
        self.describes += 1
        return self.description

    async def WatchLoad(self, request: Any, context: Any) -> AsyncIterator[mesh_pb2.LoadReport]:
        self.heartbeats.append(request.heartbeat_ms)
        for r in self.reports:
            yield r
        self.streaming.set()
        if self.ending == "error":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "node exploded")
        elif self.ending == "hang":
            await asyncio.sleep(60)


@contextlib.asynccontextmanager
async def serving(node: FakeNode) -> AsyncIterator[tuple[str, grpc.aio.Server]]:
    server = grpc.aio.server()
    mesh_pb2_grpc.add_NodeServicer_to_server(node, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", server
    finally:
        await server.stop(None)


class Seen:
    """The watcher's callbacks, recorded in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()

    def described(self, address: str, d: mesh_pb2.DescribeResponse) -> None:
        self._add(("described", address, d.node_id))

    def loaded(self, address: str, r: mesh_pb2.LoadReport) -> None:
        self._add(("load", address, r.sequence))

    def lost(self, address: str, reason: str) -> None:
        self._add(("lost", address, reason))

    def untrusted(self, address: str, error: Untrusted) -> None:
        self._add(("untrusted", address, str(error), error.state))

    def _add(self, event: tuple[Any, ...]) -> None:
        self.events.append(event)
        self._changed.set()

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)

    async def until(self, kind: str, n: int = 1) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.count(kind) < n:
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def watching(address: str, seen: Seen, connect: Callable[[], Awaitable[grpc.aio.Channel]] | None = None,
                   heartbeat_ms: int = HEARTBEAT_MS) -> AsyncIterator[asyncio.Task[None]]:
    channels: list[grpc.aio.Channel] = []

    async def dial() -> grpc.aio.Channel:
        channels.append(grpc.aio.insecure_channel(address))
        return channels[-1]

    watcher = NodeWatcher(address, connect or dial, heartbeat_ms=heartbeat_ms, on_described=seen.described,
                          on_load=seen.loaded, on_lost=seen.lost, on_untrusted=seen.untrusted,
                          backoff_s=FAST_BACKOFF)
    task = asyncio.create_task(watcher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT_S)
        for channel in channels:
            await channel.close()


@on_loop
async def test_watcher_describes_then_relays_each_report_then_reports_the_stream_end() -> None:
    node = FakeNode([report(1), report(2), report(3)], ending="end")
    seen = Seen()
    async with serving(node) as (address, _), watching(address, seen):
        await seen.until("lost")
    assert seen.events[:5] == [
        ("described", address, "gpu-1"),
        ("load", address, 1), ("load", address, 2), ("load", address, 3),
        ("lost", address, "load stream ended: the node is shutting down"),
    ]
    assert node.heartbeats[0] == HEARTBEAT_MS


@on_loop
async def test_watcher_reports_an_aborted_stream_as_unreachable_with_the_code_and_details() -> None:
    node = FakeNode([report(1), report(2)], ending="error")
    seen = Seen()
    async with serving(node) as (address, _), watching(address, seen):
        await seen.until("lost")
    assert seen.events[:4] == [
        ("described", address, "gpu-1"), ("load", address, 1), ("load", address, 2),
        ("lost", address, "unreachable: UNAVAILABLE: node exploded"),
    ]


@on_loop
async def test_watcher_takes_a_silent_node_as_lost_after_missed_heartbeats() -> None:
    node = FakeNode([report(1)], ending="hang")
    seen = Seen()
    loop = asyncio.get_running_loop()
    async with serving(node) as (address, _), watching(address, seen):
        await node.streaming.wait()
        silent_since = loop.time()
        await seen.until("lost")
        silent_for = loop.time() - silent_since
    patience = MISSED_HEARTBEATS * HEARTBEAT_MS / 1000
    assert seen.events[:3] == [("described", address, "gpu-1"), ("load", address, 1),
                               ("lost", address, f"no load report for {patience:.1f} s")]
    assert patience * 0.9 <= silent_for < patience + 2.0


@on_loop
async def test_watcher_reports_loss_when_the_server_goes_away() -> None:
    node = FakeNode([report(1), report(2)], ending="hang")
    seen = Seen()
    async with serving(node) as (address, server), watching(address, seen):
        await seen.until("load", 2)
        assert seen.count("lost") == 0
        await server.stop(None)
        await seen.until("lost")
        assert seen.events[:3] == [("described", address, "gpu-1"), ("load", address, 1), ("load", address, 2)]
        kind, where, reason = seen.events[3]
        assert (kind, where) == ("lost", address)
        assert reason.startswith("unreachable: UNAVAILABLE: "), reason


@on_loop
async def test_watcher_reconnects_and_describes_again_after_a_loss() -> None:
    node = FakeNode([report(1)], ending="end")
    seen = Seen()
    async with serving(node) as (address, _), watching(address, seen):
        await seen.until("described", 2)
    assert node.describes >= 2
    assert seen.events[:4] == [("described", address, "gpu-1"), ("load", address, 1),
                               ("lost", address, "load stream ended: the node is shutting down"),
                               ("described", address, "gpu-1")]


@on_loop
async def test_watcher_asks_for_its_heartbeat() -> None:
    node = FakeNode([report(1)], ending="end")
    seen = Seen()
    async with serving(node) as (address, _), watching(address, seen, heartbeat_ms=250):
        await seen.until("lost")
    assert node.heartbeats[0] == 250


@on_loop
async def test_connect_failure_is_reported_lost_unreachable_and_retried_with_backoff() -> None:
    seen = Seen()
    attempts = 0

    async def refuse() -> grpc.aio.Channel:
        nonlocal attempts
        attempts += 1
        raise ConnectionRefusedError(f"refused #{attempts}")

    async with watching("127.0.0.1:1", seen, connect=refuse):
        await seen.until("lost", 3)
    assert seen.events[:3] == [("lost", "127.0.0.1:1", f"unreachable: refused #{i}") for i in (1, 2, 3)]
    assert seen.count("described") == 0 and seen.count("load") == 0


@on_loop
async def test_an_untrusted_node_is_reported_untrusted_not_lost() -> None:
    seen = Seen()

    async def distrust() -> grpc.aio.Channel:
        raise Untrusted("presents a client certificate", "revoked")

    async with watching("127.0.0.1:1", seen, connect=distrust):
        await seen.until("untrusted")
    assert seen.events[0] == ("untrusted", "127.0.0.1:1", "presents a client certificate", "revoked")
    assert seen.count("lost") == 0


@on_loop
async def test_cancelling_the_watcher_stops_it_mid_stream() -> None:
    node = FakeNode([report(1)], ending="hang")
    seen = Seen()
    async with serving(node) as (address, _), watching(address, seen) as task:
        await seen.until("load")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT_S)
        assert task.cancelled()
    assert seen.events == [("described", address, "gpu-1"), ("load", address, 1)]
