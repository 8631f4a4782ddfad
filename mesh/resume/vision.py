"""A live StreamAnalyze that outlives its node.

Frames are independent, so a new node needs only the config and the frames from now on. The
router keeps the config and the newest frame not yet sent (latest wins here too: a frame the
router replaced before any node took it is counted in the next result's `dropped`, as are the
frames lost with the node). It numbers frames the sender left unnumbered, so sequence numbers
go on across nodes instead of starting again at 1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from google.protobuf.message import DecodeError

from lanai.api.vision.v1 import vision_pb2
from lanai.mesh.replay import ReplayableStream


class AnalysisResume:
    def __init__(self, config: bytes, feed: ReplayableStream) -> None:
        self._config = config
        self._latest: bytes | None = None
        self._count = 0
        self._dropped = 0  # frames not analysed that no node has reported yet
        self._in_flight = 0  # frames the current attempt sent whose result has not come
        self._done = False
        self._failed: BaseException | bytes | None = None
        self._changed = asyncio.Event()
        feed.commit()  # this object keeps what a move needs
        self._pump = asyncio.ensure_future(self._read(feed))

    @classmethod
    def start(cls, first: bytes, feed: ReplayableStream) -> AnalysisResume | None:
        try:
            message = vision_pb2.StreamAnalyzeRequest.FromString(first)
        except DecodeError:
            return None
        if message.WhichOneof("payload") != "config":
            return None  # the node refuses it, with the message that says why
        return cls(first, feed)

    async def _read(self, feed: ReplayableStream) -> None:
        skipped_config = False
        try:
            async for raw in feed.replay():
                if not skipped_config:
                    skipped_config = True
                    continue
                try:
                    message = vision_pb2.StreamAnalyzeRequest.FromString(raw)
                except DecodeError:
                    message = vision_pb2.StreamAnalyzeRequest()
                if message.WhichOneof("payload") != "frame":
                    self._failed = raw  # not a frame: hand it on, the node refuses the stream
                    break
                self._count += 1
                if not message.frame.sequence:
                    message.frame.sequence = self._count
                    raw = message.SerializeToString()
                if self._latest is not None:
                    self._dropped += 1
                self._latest = raw
                self._changed.set()
        except Exception as exc:  # noqa: BLE001 - the client's side failed: the attempt ends its stream
            self._failed = exc
        finally:
            self._done = True
            self._changed.set()

    def request(self) -> AsyncIterator[bytes]:
        return self._attempt()

    async def _attempt(self) -> AsyncIterator[bytes]:
        yield self._config
        while True:
            if self._latest is not None:
                raw, self._latest = self._latest, None
                self._in_flight += 1
                yield raw
            elif self._done:
                if isinstance(self._failed, bytes):
                    yield self._failed
                elif self._failed is not None:
                    raise self._failed
                return
            else:
                self._changed.clear()
                await self._changed.wait()

    def relay(self, raw: bytes) -> bytes:
        response = vision_pb2.StreamAnalyzeResponse.FromString(raw)
        self._in_flight = max(0, self._in_flight - 1 - response.dropped)
        if self._dropped:
            response.dropped += self._dropped
            self._dropped = 0
            raw = response.SerializeToString()
        return raw

    def moved(self) -> None:
        self._dropped += self._in_flight  # sent to the lost node, never answered
        self._in_flight = 0

    def close(self) -> None:
        self._pump.cancel()
