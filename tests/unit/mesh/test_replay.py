"""The router's replayable client stream: every attempt sees the whole stream, until commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lanai.mesh.replay import READ_AHEAD, ReplayableStream

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Client:
    """A client stream the test feeds by hand."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent = 0

    async def messages(self) -> AsyncIterator[bytes]:
        while (message := await self.queue.get()) is not None:
            self.sent += 1
            yield message


async def take(stream: AsyncIterator[bytes], n: int) -> list[bytes]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(n)]


async def test_a_second_attempt_replays_from_the_start_then_follows_live() -> None:
    client = Client()
    for m in (b"config", b"a1", b"a2"):
        client.queue.put_nowait(m)
    feed = ReplayableStream(client.messages())
    assert await feed.first() == b"config"
    first_try = feed.replay()
    assert await take(first_try, 3) == [b"config", b"a1", b"a2"]  # then the node fails
    second_try = feed.replay()
    assert await take(second_try, 3) == [b"config", b"a1", b"a2"]
    client.queue.put_nowait(b"a3")  # arrives live
    assert await take(second_try, 1) == [b"a3"]
    client.queue.put_nowait(None)  # the client half-closes
    assert [m async for m in second_try] == []
    feed.close()


async def test_commit_lets_go_of_what_was_sent_and_bounds_read_ahead() -> None:
    client = Client()
    client.queue.put_nowait(b"config")
    feed = ReplayableStream(client.messages())
    await feed.first()
    attempt = feed.replay()
    assert await take(attempt, 1) == [b"config"]
    feed.commit()  # a response was relayed: this node keeps the call
    for i in range(READ_AHEAD * 3):
        client.queue.put_nowait(b"x%d" % i)
    await asyncio.sleep(0.05)  # let the reader run as far as it may
    assert client.sent - 1 <= READ_AHEAD  # it stopped reading ahead of the node
    got = await take(attempt, READ_AHEAD * 3)
    assert got == [b"x%d" % i for i in range(READ_AHEAD * 3)]
    assert len(feed._kept) <= 1  # sent messages were let go  # noqa: SLF001
    feed.close()


async def test_an_empty_stream_has_no_first_message() -> None:
    client = Client()
    client.queue.put_nowait(None)
    feed = ReplayableStream(client.messages())
    assert await feed.first() is None
    assert [m async for m in feed.replay()] == []
