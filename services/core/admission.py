"""Admission control: a fixed number of execution slots and a bounded wait queue per service."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from lanai.services.core.errors import DeadlineExceeded, Overloaded, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """How long an admitted job waited and ran."""

    queue_s: float
    """Seconds spent waiting for a slot."""
    compute_s: float
    """Seconds the job ran in its slot."""


@dataclass(frozen=True)
class Load:
    """A snapshot of one controller's occupancy."""

    slots: int
    in_flight: int
    queued: int
    max_queue: int
    open_streams: int
    in_flight_by_tag: dict[str, int]
    """In-flight jobs by tag (the model they run)."""
    queued_by_tag: dict[str, int]


class AdmissionController:
    """Runs blocking jobs in a thread pool of `slots` workers, at most `max_queue` waiting.

    A job that finds every slot busy and the queue full is refused at once with
    `Overloaded`; a queued job whose deadline passes leaves the queue with
    `DeadlineExceeded`. A job whose caller goes away keeps its slot until the
    thread finishes (inference cannot be interrupted), so the slot count never lies.
    """

    def __init__(self, service: str, slots: int, max_queue: int,
                 on_change: Callable[[], None] | None = None) -> None:
        if slots < 1 or max_queue < 0:
            raise ValueError(f"{service}: slots must be >= 1 and max_queue >= 0")
        self.service = service
        self.slots = slots
        self.max_queue = max_queue
        self._free = slots
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._open_streams = 0
        self._running: collections.Counter[str] = collections.Counter()
        self._queued: collections.Counter[str] = collections.Counter()
        self._draining = False
        self._on_change = on_change or (lambda: None)
        self._executor = concurrent.futures.ThreadPoolExecutor(slots, thread_name_prefix=f"lanai-{service}")

    def load(self) -> Load:
        return Load(self.slots, self.slots - self._free, len(self._waiters), self.max_queue, self._open_streams,
                    {k: v for k, v in self._running.items() if v}, {k: v for k, v in self._queued.items() if v})

    async def run(self, job: Callable[[], T], *, tag: str = "", timeout: float | None = None,
                  admitted: bool = False) -> tuple[T, Timing]:
        """Run `job` in a slot. `timeout` bounds the wait for a slot (the caller's
        deadline). `admitted` is for work of a stream that was already let in: it
        may wait beyond the queue limit and while draining, so no final result of
        an open stream is dropped."""
        waited = await self._queue_for_slot(tag, timeout, admitted)
        return await self._run_in_slot(job, tag, waited)

    @contextlib.asynccontextmanager
    async def hold(self, *, tag: str = "", timeout: float | None = None) -> AsyncIterator[float]:
        """Hold a slot for work that runs elsewhere (a place in the language service's batch),
        queueing like `run`; yields the seconds it waited. The slot is free again the moment
        the block exits, also when the caller is cancelled."""
        waited = await self._queue_for_slot(tag, timeout, False)
        self._running[tag] += 1
        self._on_change()
        try:
            yield waited
        finally:
            self._finish(tag)

    async def try_run(self, job: Callable[[], T], *, tag: str = "") -> tuple[T, Timing] | None:
        """Run `job` only if a slot is free right now (best-effort work such as partials)."""
        if self._draining or self._free == 0 or self._waiters:
            return None
        self._free -= 1
        return await self._run_in_slot(job, tag, 0.0)

    def open_stream(self, max_streams: int) -> None:
        """Count a streaming session in, refusing it when `max_streams` are open."""
        if self._draining:
            raise Unavailable(f"the {self.service} service is shutting down; connect to another node")
        if self._open_streams >= max_streams:
            raise Overloaded(f"{self.service}: all {max_streams} streaming sessions are in use; "
                             "retry later or use another node")
        self._open_streams += 1
        self._on_change()

    def close_stream(self) -> None:
        self._open_streams -= 1
        self._on_change()

    def drain(self) -> None:
        """Refuse new work from now on; work already admitted or queued finishes."""
        self._draining = True

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=False)

    async def _queue_for_slot(self, tag: str, timeout: float | None, admitted: bool) -> float:
        """Take a slot, counted as queued under `tag` while waiting; returns the seconds waited."""
        started = time.perf_counter()
        self._queued[tag] += 1
        try:
            await self._acquire(timeout, admitted)
        finally:
            self._queued[tag] -= 1
        return time.perf_counter() - started

    async def _acquire(self, timeout: float | None, admitted: bool) -> None:
        if self._draining and not admitted:
            raise Unavailable(f"the {self.service} service is shutting down; send the request to another node")
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self._on_change()
            return
        if len(self._waiters) >= self.max_queue and not admitted:
            raise Overloaded(f"{self.service} is at capacity: {self.slots} slots busy and "
                             f"{len(self._waiters)} requests queued (limit {self.max_queue}); "
                             "retry with backoff or send it to another node")
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(f"the deadline passed before a {self.service} slot was free")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._on_change()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
                self._on_change()
            if isinstance(exc, TimeoutError):
                raise DeadlineExceeded(f"the deadline passed after {timeout:.2f} s waiting for a "
                                       f"{self.service} slot; allow a longer deadline or retry later") from None
            raise

    async def _run_in_slot(self, job: Callable[[], T], tag: str, queued_s: float) -> tuple[T, Timing]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._running[tag] += 1
        try:
            future = loop.run_in_executor(self._executor, job)
        except BaseException:
            self._finish(tag)
            raise
        self._on_change()
        future.add_done_callback(lambda _: self._finish(tag))
        # shield: a cancelled caller must not mark the job done while its thread still runs
        result = await asyncio.shield(future)
        return result, Timing(queued_s, time.perf_counter() - started)

    def _finish(self, tag: str) -> None:
        self._running[tag] -= 1
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot straight to the next in line
                self._on_change()
                return
        self._free += 1
        self._on_change()
