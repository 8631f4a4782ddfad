"""lanai.services.core.admission: slots, a bounded FIFO queue, deadlines, cancellation and draining.

Jobs block on threading.Events, so the test decides when each one finishes; the test waits
on the controller's on_change notifications, never on the clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from lanai.services.core import admission
from lanai.services.core.admission import AdmissionController, Load, Timing
from lanai.services.core.errors import DeadlineExceeded, Overloaded, Unavailable

WAIT_S = 5.0  # upper bound on any wait for something that should happen at once


class Gate:
    """A job that holds its slot's thread until released."""

    def __init__(self, result: Any = None) -> None:
        self.result = result
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Any:
        self.started.set()
        if not self.release.wait(WAIT_S * 2):
            raise TimeoutError("the test never released this job")
        return self.result

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, WAIT_S), "the job did not start"


class Harness:
    """A controller whose on_change wakes waiters in the test and records the load it saw."""

    def __init__(self, slots: int, max_queue: int) -> None:
        self.calls = 0
        self.seen: list[Load] = []
        self.hook: Callable[[], None] | None = None
        self._changed = asyncio.Event()
        self.ac = AdmissionController("speech", slots, max_queue, on_change=self._on_change)
        self.gates: list[Gate] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def _on_change(self) -> None:
        self.calls += 1
        self.seen.append(self.ac.load())
        self._changed.set()
        if self.hook is not None:
            self.hook()

    def load(self) -> Load:
        return self.ac.load()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait, on change notifications, until `condition` holds."""
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def gate(self, result: Any = None) -> Gate:
        gate = Gate(result)
        self.gates.append(gate)
        return gate

    def start(self, job: Callable[[], Any], **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(self.ac.run(job, **kwargs))
        self.tasks.append(task)
        return task

    async def running(self, result: Any = None, **kwargs: Any) -> tuple[Gate, asyncio.Task[Any]]:
        """A job started and holding a slot."""
        gate = self.gate(result)
        task = self.start(gate, **kwargs)
        await gate.wait_started()
        return gate, task

    async def queued(self, job: Callable[[], Any], **kwargs: Any) -> asyncio.Task[Any]:
        """A job submitted and waiting in the queue."""
        before = self.load().queued
        task = self.start(job, **kwargs)
        await self.until(lambda: self.load().queued == before + 1)
        return task

    async def close(self) -> None:
        for gate in self.gates:
            gate.release.set()
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.ac.shutdown()


@pytest.fixture
async def make() -> Any:
    harnesses: list[Harness] = []

    def factory(slots: int = 1, max_queue: int = 4) -> Harness:
        harness = Harness(slots, max_queue)
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        await harness.close()


async def finished(task: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(task, WAIT_S)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        AdmissionController("speech", 0, 1)
    with pytest.raises(ValueError):
        AdmissionController("speech", 1, -1)


async def test_a_job_runs_and_reports_its_timing(make: Any) -> None:
    h = make()
    result, timing = await finished(h.ac.run(lambda: 42))
    assert result == 42
    assert isinstance(timing, Timing) and timing.queue_s >= 0 and timing.compute_s >= 0
    assert h.load() == Load(1, 0, 0, 4, 0, {}, {})


async def test_slots_run_concurrently_and_the_rest_queue(make: Any) -> None:
    h = make(slots=3, max_queue=5)
    running = [await h.running(result=i) for i in range(3)]  # all three hold a slot at the same time
    later = [h.gate(result=i) for i in (3, 4)]
    waiting = [await h.queued(g) for g in later]
    assert (h.load().in_flight, h.load().queued) == (3, 2)
    assert not any(g.started.is_set() for g in later)

    running[0][0].release.set()
    await later[0].wait_started()  # the freed slot goes to the first in line
    assert (h.load().in_flight, h.load().queued) == (3, 1)
    assert not later[1].started.is_set()

    for gate, _ in running[1:]:
        gate.release.set()
    for gate in later:
        gate.release.set()
    results = [(await finished(t))[0] for t in [t for _, t in running] + waiting]
    assert results == [0, 1, 2, 3, 4]
    await h.until(lambda: h.load().in_flight == 0)
    assert h.load().queued == 0


async def test_a_full_queue_refuses_at_once(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    await h.running(tag="m")
    await h.queued(h.gate(), tag="m")
    await h.queued(h.gate(), tag="m")
    refused = h.gate()
    with pytest.raises(Overloaded, match="capacity"):
        await finished(h.ac.run(refused, tag="m"))
    assert not refused.started.is_set()
    load = h.load()
    assert (load.in_flight, load.queued, load.queued_by_tag) == (1, 2, {"m": 2})


async def test_no_queue_at_all(make: Any) -> None:
    h = make(slots=1, max_queue=0)
    await h.running()
    with pytest.raises(Overloaded):
        await finished(h.ac.run(lambda: None))
    assert h.load().queued == 0


async def test_a_queued_request_past_its_deadline_leaves_the_queue(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    gate, task = await h.running()
    late = h.gate()
    with pytest.raises(DeadlineExceeded):
        await finished(h.ac.run(late, timeout=0.05, tag="m"))
    assert (h.load().queued, h.load().queued_by_tag) == (0, {})
    gate.release.set()
    await finished(task)
    assert not late.started.is_set()
    await h.until(lambda: h.load().in_flight == 0)
    assert await h.ac.try_run(lambda: "free") is not None  # the slot came back


async def test_a_zero_deadline_fails_only_when_it_would_wait(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    assert (await finished(h.ac.run(lambda: "now", timeout=0)))[0] == "now"
    await h.running()
    with pytest.raises(DeadlineExceeded):
        await finished(h.ac.run(lambda: None, timeout=0))
    assert h.load().queued == 0


async def test_a_cancelled_waiter_leaves_the_queue(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    gate, task = await h.running()
    never = h.gate()
    waiter = await h.queued(never, tag="m")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finished(waiter)
    assert (h.load().queued, h.load().queued_by_tag) == (0, {})

    nxt = await h.queued(h.gate(result="next"))
    gate.release.set()
    await finished(task)
    await h.gates[-1].wait_started()
    assert not never.started.is_set()
    h.gates[-1].release.set()
    assert (await finished(nxt))[0] == "next"


async def test_a_cancelled_caller_keeps_its_slot_until_the_thread_ends(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    gate, task = await h.running(tag="m")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finished(task)
    assert (h.load().in_flight, h.load().in_flight_by_tag) == (1, {"m": 1})  # the thread still runs

    nxt = h.gate(result="next")
    waiting = await h.queued(nxt)
    assert not nxt.started.is_set()
    assert await h.ac.try_run(lambda: None) is None

    gate.release.set()  # the thread ends: the slot passes on
    await nxt.wait_started()
    nxt.release.set()
    assert (await finished(waiting))[0] == "next"
    await h.until(lambda: h.load().in_flight == 0)
    assert h.load().in_flight_by_tag == {}


async def test_the_queue_is_first_in_first_out(make: Any) -> None:
    h = make(slots=1, max_queue=10)
    gate, task = await h.running()
    order: list[int] = []
    waiting = [await h.queued(lambda i=i: order.append(i) or i) for i in range(6)]
    gate.release.set()
    assert [(await finished(t))[0] for t in waiting] == list(range(6))
    assert order == list(range(6))


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on(make: Any) -> None:
    h = make(slots=1, max_queue=4)
    gate, task = await h.running()
    skipped = threading.Event()
    b = await h.queued(skipped.set)
    c_gate = h.gate(result="c")
    c = await h.queued(c_gate)

    def cancel_b_at_handover() -> None:
        # on_change runs right after the slot is handed to the first waiter (the queue drops to 1)
        if h.load().queued == 1 and not b.done():
            h.hook = None
            b.cancel()

    h.hook = cancel_b_at_handover
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await finished(b)
    await c_gate.wait_started()  # B gave the slot it was handed to C
    assert not skipped.is_set()
    c_gate.release.set()
    assert (await finished(c))[0] == "c"
    await finished(task)
    await h.until(lambda: h.load().in_flight == 0)

    # and there is still exactly one slot
    _, holder = await h.running()
    assert h.load().in_flight == 1
    assert await h.ac.try_run(lambda: None) is None


async def test_a_failing_job_raises_and_frees_its_slot(make: Any) -> None:
    h = make(slots=1, max_queue=1)

    def boom() -> None:
        raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError, match="inference failed"):
        await finished(h.ac.run(boom, tag="m"))
    await h.until(lambda: h.load().in_flight == 0)
    assert h.load().in_flight_by_tag == {}
    assert (await finished(h.ac.run(lambda: "ok")))[0] == "ok"


async def test_try_run(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    result, timing = await finished(h.ac.try_run(lambda: "free", tag="m"))
    assert result == "free" and timing.queue_s == 0.0
    await h.until(lambda: h.load().in_flight == 0)

    gate, task = await h.running()
    skipped = threading.Event()
    assert await h.ac.try_run(skipped.set) is None  # busy: skipped, not queued
    assert h.load().queued == 0 and not skipped.is_set()
    gate.release.set()
    await finished(task)
    await h.until(lambda: h.load().in_flight == 0)
    h.ac.drain()
    assert await h.ac.try_run(skipped.set) is None
    assert not skipped.is_set()


async def test_admitted_work_may_exceed_the_queue_limit(make: Any) -> None:
    h = make(slots=1, max_queue=1)
    gate, task = await h.running()
    await h.queued(h.gate())
    with pytest.raises(Overloaded):
        await finished(h.ac.run(lambda: None))
    admitted = await h.queued(lambda: "final", admitted=True)
    assert h.load().queued == 2
    for g in h.gates:
        g.release.set()
    assert (await finished(admitted))[0] == "final"


async def test_drain_refuses_new_work_and_finishes_the_rest(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    gate, task = await h.running(result="running")
    queued = await h.queued(lambda: "queued")
    h.ac.drain()
    with pytest.raises(Unavailable, match="shutting down"):
        await finished(h.ac.run(lambda: None))
    with pytest.raises(Unavailable):
        h.ac.open_stream(max_streams=10)
    admitted = await h.queued(lambda: "admitted", admitted=True)
    gate.release.set()
    assert [(await finished(t))[0] for t in (task, queued, admitted)] == ["running", "queued", "admitted"]


async def test_load_counts_by_tag(make: Any) -> None:
    h = make(slots=2, max_queue=3)
    await h.running(tag="base")
    await h.running(tag="tiny.en")
    await h.queued(h.gate(), tag="base")
    await h.queued(h.gate(), tag="base")
    await h.queued(h.gate(), tag="tiny.en")
    load = h.load()
    assert load == Load(2, 2, 3, 3, 0, {"base": 1, "tiny.en": 1}, {"base": 2, "tiny.en": 1})
    for g in h.gates:
        g.release.set()
    await asyncio.gather(*(finished(t) for t in h.tasks))
    await h.until(lambda: h.load().in_flight == 0)
    assert h.load() == Load(2, 0, 0, 3, 0, {}, {})


async def test_on_change_reports_every_state(make: Any) -> None:
    h = make(slots=1, max_queue=2)
    gate, task = await h.running(tag="m")
    assert h.seen[-1] == h.load() and h.load().in_flight == 1
    calls = h.calls
    waiting = await h.queued(lambda: None, tag="m")
    assert h.calls > calls and h.seen[-1] == h.load()
    gate.release.set()
    await asyncio.gather(finished(task), finished(waiting))
    await h.until(lambda: h.load().in_flight == 0)
    assert h.seen[-1] == h.load() == Load(1, 0, 0, 2, 0, {}, {})

    calls = h.calls
    h.ac.open_stream(max_streams=2)
    h.ac.open_stream(max_streams=2)
    assert h.calls == calls + 2 and h.seen[-1].open_streams == 2
    with pytest.raises(Overloaded, match="streaming sessions"):
        h.ac.open_stream(max_streams=2)
    assert h.load().open_streams == 2
    h.ac.close_stream()
    assert h.seen[-1].open_streams == 1
    h.ac.open_stream(max_streams=2)
    assert h.load().open_streams == 2


async def test_timing_measures_queue_and_compute(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(admission, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    h = make(slots=1, max_queue=1)
    a, ta = await h.running(result="a")  # admitted at 100
    clock.now = 101.0
    b = h.gate(result="b")
    tb = await h.queued(b)  # waits from 101
    clock.now = 104.0
    a.release.set()  # a ran 100..104; b gets the slot at 104
    assert await finished(ta) == ("a", Timing(queue_s=0.0, compute_s=4.0))
    await b.wait_started()
    clock.now = 109.0
    b.release.set()
    assert await finished(tb) == ("b", Timing(queue_s=3.0, compute_s=5.0))


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("lanai-")
              and t.is_alive() and not t.daemon]
    for t in leaked:  # released by the harness; they end as soon as their last job returns
        t.join(WAIT_S)
    assert not [t for t in leaked if t.is_alive()]
