"""Work through a batch: at most `concurrency` inputs in flight, bounded retries with backoff on
transient errors, every outcome written to the journal as it happens, progress with rate and ETA."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from lanai.mesh.batch.inputs import Item
from lanai.mesh.batch.journal import Journal

Call = Callable[[Item], Awaitable[dict[str, Any]]]
"""Runs one input, returns the result fields of its line; raises grpc.aio.AioRpcError from the
mesh or BadInput for an input that cannot be sent (an unreadable file)."""

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
"""Worth another try: no node had room, a node went away, the call ran out of time. The rest
(INVALID_ARGUMENT for a corrupt file, NOT_FOUND for an unknown model) would fail again."""


class BadInput(Exception):
    """This input cannot be sent at all (its file cannot be read): reported, never retried."""


@dataclass
class Summary:
    total: int
    skipped: int = 0
    ok: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    retried: int = 0
    interrupted: bool = False
    seconds: float = 0.0


Progress = Callable[[Summary, float], None]
"""progress(summary so far, seconds since the start), after every completed input."""


async def run(items: Sequence[Item], call: Call, journal: Journal, *, concurrency: int, retries: int,
              backoff_s: float = 0.5, progress: Progress | None = None) -> Summary:
    todo = [item for item in items if not journal.finished(item.key)]
    summary = Summary(total=len(items), skipped=len(items) - len(todo))
    started = time.monotonic()
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)

    def record(line: dict[str, Any]) -> None:
        journal.write(line)
        if line["ok"]:
            summary.ok += 1
        else:
            summary.failed.append(line)
        if progress is not None:
            progress(summary, time.monotonic() - started)

    async def one(item: Item) -> None:
        if item.problem:
            record({"input": item.key, "ok": False, "attempts": 0, "retryable": False,
                    "error": {"code": "INVALID_ARGUMENT", "message": item.problem}})
            return
        for attempt in range(1, retries + 2):
            try:
                result = await call(item)
            except BadInput as exc:
                record({"input": item.key, "ok": False, "attempts": attempt, "retryable": False,
                        "error": {"code": "INVALID_ARGUMENT", "message": str(exc)}})
                return
            except grpc.aio.AioRpcError as exc:
                retryable = exc.code() in RETRYABLE
                if retryable and attempt <= retries:
                    summary.retried += 1
                    await asyncio.sleep(min(8.0, backoff_s * 2 ** (attempt - 1)))
                    continue
                record({"input": item.key, "ok": False, "attempts": attempt, "retryable": retryable,
                        "error": {"code": exc.code().name, "message": exc.details() or ""}})
                return
            record({"input": item.key, "ok": True, "attempts": attempt, **result})
            return

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(todo))))]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        summary.interrupted = True
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        summary.seconds = time.monotonic() - started
    return summary
