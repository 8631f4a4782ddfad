"""Open streams a router can move: on shutdown a node ends them at once with UNAVAILABLE (the
router then moves each to another node, lanai.mesh.resume) instead of holding its exit for
--grace while a live transcription may run for hours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from lanai.services.core.errors import Unavailable


class OpenStreams:
    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._moving = asyncio.Event()
        self.open = 0

    def move_all(self) -> None:
        """End every followed stream now, and any followed later (the node is going)."""
        self._moving.set()

    async def follow(self, responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """`responses`, until the node moves its streams: then UNAVAILABLE, which a router reads
        as "move this stream"."""
        self.open += 1
        moving = asyncio.ensure_future(self._moving.wait())
        source = aiter(responses)
        try:
            while True:
                step = asyncio.ensure_future(anext(source))
                done, _ = await asyncio.wait({step, moving}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
                    raise Unavailable(f"node {self._node_id} is shutting down; the router moves this stream "
                                      "to another node")
                try:
                    response = step.result()
                except StopAsyncIteration:
                    return
                yield response
        finally:
            self.open -= 1
            moving.cancel()
            with contextlib.suppress(BaseException):
                await source.aclose()  # type: ignore[attr-defined]
