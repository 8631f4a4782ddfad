"""A live StreamTranscribe that outlives its node.

The router keeps the client's audio since the last final result it relayed (a final is never
revised, so nothing before it is needed again). When the node is lost, a new node gets the
config and that audio, then the live audio; its answers are shifted onto the original stream:
utterance ids go on from the last final's, and times count from the original first chunk.
What the client sees is a delay: the utterance that was open is decoded again (its partials
start over under the same id), and no final is missing or repeated.

Memory: at most REPLAY_S of audio per stream. An utterance is cut at Whisper's 30 s window
(a final is sent then), so audio older than that with no final after it is silence; the
router drops such audio only once the current node has received it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from google.protobuf.message import DecodeError

from lanai.api.speech.v1 import speech_pb2
from lanai.mesh.replay import ReplayableStream

REPLAY_S = 40.0
"""Audio kept for a replay: the 29 s utterance cut plus the longest end-of-utterance silence (5 s),
with room to spare."""
CHUNK_BYTES = 32 * 1024
"""Replayed audio is sent in pieces of this size."""


class TranscriptionResume:
    def __init__(self, config: bytes, frame_bytes: int, rate: int, feed: ReplayableStream) -> None:
        self._config = config
        self._frame, self._rate = frame_bytes, rate
        self._limit = int(REPLAY_S * rate) * frame_bytes
        self._audio = bytearray()
        self._base = 0  # stream byte offset of _audio[0]
        self._end = 0  # stream bytes received from the client
        self._sent = 0  # stream bytes the current attempt has taken
        self._done = False
        self._failed: BaseException | None = None
        self._changed = asyncio.Event()
        self._next_id = 0  # the utterance id after the last final relayed
        self._shift_s, self._id_base = 0.0, 0  # the current attempt's answers -> the original stream
        self._pending_shift: tuple[float, int] | None = None
        feed.commit()  # this object keeps what a replay needs; the feed need not keep everything
        self._pump = asyncio.ensure_future(self._read(feed))

    @classmethod
    def start(cls, first: bytes, feed: ReplayableStream) -> TranscriptionResume | None:
        try:
            message = speech_pb2.StreamTranscribeRequest.FromString(first)
        except DecodeError:
            return None
        if message.WhichOneof("payload") != "config":
            return None
        fmt = message.config.format
        rate, width, channels = fmt.sample_rate_hz, fmt.sample_width_bytes or 2, fmt.channels or 1
        if not 8000 <= rate <= 192000 or width not in (1, 2, 4) or not 1 <= channels <= 8:
            return None  # the node refuses it, with the message that says why
        return cls(first, width * channels, rate, feed)

    async def _read(self, feed: ReplayableStream) -> None:
        skipped_config = False
        try:
            async for raw in feed.replay():
                if not skipped_config:
                    skipped_config = True  # the config, kept as self._config
                    continue
                try:
                    audio = speech_pb2.StreamTranscribeRequest.FromString(raw).audio
                except DecodeError:
                    audio = b""
                if not audio:
                    # Not audio (a second config, junk): the node refuses the stream; hand it on as is.
                    self._failed = _Passthrough(raw)
                    break
                while self._end - self._base + len(audio) > self._limit and not self._trim_old():
                    self._changed.clear()  # the node has not taken the oldest audio yet: wait for it
                    await self._changed.wait()
                self._audio += audio
                self._end += len(audio)
                self._changed.set()
        except Exception as exc:  # noqa: BLE001 - the client's side failed: attempts end their stream
            self._failed = exc
        finally:
            self._done = True
            self._changed.set()

    def _trim_old(self) -> bool:
        """Make room by dropping the oldest audio the node already has; False when there is none."""
        keep_from = self._end - self._limit + CHUNK_BYTES
        cut = min(self._sent, keep_from) // self._frame * self._frame
        if cut <= self._base:
            return False
        self._drop_to(cut)
        return True

    def _drop_to(self, offset: int) -> None:
        del self._audio[: offset - self._base]
        self._base = offset

    def request(self) -> AsyncIterator[bytes]:
        return self._attempt()

    def moved(self) -> None:
        self._pending_shift = (self._base / self._frame / self._rate, self._next_id)

    async def _attempt(self) -> AsyncIterator[bytes]:
        if self._pending_shift is not None:
            (self._shift_s, self._id_base), self._pending_shift = self._pending_shift, None
        position = self._base
        self._sent = position
        yield self._config
        while True:
            position = max(position, self._base)
            if position < self._end:
                piece = bytes(self._audio[position - self._base: min(self._end, position + CHUNK_BYTES) - self._base])
                position += len(piece)
                self._sent = position
                self._changed.set()
                yield speech_pb2.StreamTranscribeRequest(audio=piece).SerializeToString()
            elif self._done:
                if isinstance(self._failed, _Passthrough):
                    yield self._failed.raw
                elif self._failed is not None:
                    raise self._failed
                return
            else:
                self._changed.clear()
                await self._changed.wait()

    def relay(self, raw: bytes) -> bytes:
        response = speech_pb2.StreamTranscribeResponse.FromString(raw)
        if self._shift_s or self._id_base:
            _shift(response, self._shift_s, self._id_base)
            raw = response.SerializeToString()
        if response.is_final:
            self._next_id = response.utterance_id + 1
            final_end = int(response.end_s * self._rate) * self._frame
            self._drop_to(max(self._base, min(final_end, self._sent)))
            self._changed.set()
        return raw

    def close(self) -> None:
        self._pump.cancel()


class _Passthrough(Exception):
    """A client message that is not audio: sent on to the node unchanged, which refuses it."""

    def __init__(self, raw: bytes) -> None:
        super().__init__("not audio")
        self.raw = raw


def _shift(response: speech_pb2.StreamTranscribeResponse, seconds: float, ids: int) -> None:
    response.utterance_id += ids
    response.start_s += seconds
    response.end_s += seconds
    for segment in response.segments:
        segment.start_s += seconds
        segment.end_s += seconds
        for word in segment.words:
            word.start_s += seconds
            word.end_s += seconds
