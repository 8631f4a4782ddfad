"""A client's side of a streaming call, kept until the first response is relayed, so the
router can replay it from the start on another node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

READ_AHEAD = 64
"""Client messages a committed stream reads ahead of the node (flow control does the rest)."""


class ReplayableStream:
    """The client's side of a streaming call, kept until the first response is relayed, so an
    attempt on another node can replay it from the start."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = aiter(source)
        self._kept: list[bytes] = []
        self._dropped = 0  # messages forgotten after commit
        self._done = False
        self._committed = False
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def first(self) -> bytes | None:
        message = await anext(self._source, None)
        if message is not None:
            self._kept.append(message)
            self._pump = asyncio.create_task(self._read())
        else:
            self._done = True
        return message

    def commit(self) -> None:
        self._committed = True

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()

    async def replay(self) -> AsyncIterator[bytes]:
        index = self._dropped
        while True:
            if index - self._dropped < len(self._kept):
                message = self._kept[index - self._dropped]
                index += 1
                if self._committed:  # nobody will replay any more: let go of what was sent
                    del self._kept[: index - self._dropped]
                    self._dropped = index
                    self._space.set()
                yield message
            elif self._done:
                return
            else:
                self._arrived.clear()
                await self._arrived.wait()

    async def _read(self) -> None:
        try:
            async for message in self._source:
                self._kept.append(message)
                self._arrived.set()
                while self._committed and len(self._kept) >= READ_AHEAD:
                    self._space.clear()
                    await self._space.wait()
        finally:
            self._done = True
            self._arrived.set()
