"""A live transcription session: PCM chunks in, partial hypotheses and final results out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.services.speech.audio import SAMPLE_RATE, PcmFormat, PcmStreamConverter, Samples
from lanai.services.speech.engine import SpeechEngine
from lanai.services.speech.types import Segment, TranscribeOptions, Transcript
from lanai.services.speech.vad import (SegmenterConfig, StreamingVad, UtteranceSegmenter,
                                       UtteranceStarted)

log = logging.getLogger(__name__)
INBOX_CHUNKS = 64
"""Audio chunks read ahead of the decoder before the client is made to wait."""
Job = Callable[[], Transcript]
RunFinal = Callable[[Job], Awaitable[tuple[Transcript, Any]]]
"""Runs a final decode in a slot, waiting as long as it takes; returns (result, timing)."""
RunPartial = Callable[[Job], Awaitable[tuple[Transcript, Any] | None]]
"""Runs a partial decode only if a slot is free now; None when it was skipped."""


@dataclass(frozen=True)
class StreamSettings:
    format: PcmFormat
    options: TranscribeOptions
    """Resolved by the engine (model and language filled in)."""
    partials: bool = True
    partial_interval_s: float = 0.5
    segmenter: SegmenterConfig = SegmenterConfig()


@dataclass(frozen=True)
class StreamResult:
    utterance_id: int
    is_final: bool
    end_of_utterance: bool
    text: str
    segments: tuple[Segment, ...]
    """Finals only; times from the start of the stream."""
    start_s: float
    end_s: float
    language: str
    language_probability: float
    timing: Any
    """The admission timing (queue and compute seconds) of the decode."""


class SpeechStream:
    """One StreamTranscribe session. Audio is read by a task of its own, so the client
    can keep sending while a decode runs; partials are only attempted when the
    session has caught up with the audio and a slot is free."""

    def __init__(self, engine: SpeechEngine, settings: StreamSettings,
                 run_final: RunFinal, run_partial: RunPartial) -> None:
        self._engine = engine
        self._settings = settings
        self._run_final = run_final
        self._run_partial = run_partial
        self._converter = PcmStreamConverter(settings.format)
        self._vad = StreamingVad()
        self._segmenter = UtteranceSegmenter(settings.segmenter)
        self._audio = np.zeros(0, np.float32)
        self._offset = 0  # stream sample index of self._audio[0]
        self._utterance = 0
        self._start: int | None = None  # sample where the open utterance's audio starts
        self._partial_at = 0  # sample position of the last partial attempt
        self._partials_sent = False

    async def results(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[StreamResult]:
        # Bounded: a client sending faster than the node decodes is slowed by gRPC flow control
        # instead of filling memory.
        inbox: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=INBOX_CHUNKS)
        reader = asyncio.create_task(self._read(chunks, inbox))
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    async for result in self._flush():
                        yield result
                    return
                async for result in self._consume(self._converter.feed(item)):
                    yield result
                if inbox.empty():  # caught up with the client: a partial is worth its cost
                    partial = await self._maybe_partial()
                    if partial is not None:
                        yield partial
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    @staticmethod
    async def _read(chunks: AsyncIterator[bytes], inbox: asyncio.Queue[bytes | BaseException | None]) -> None:
        try:
            async for chunk in chunks:
                await inbox.put(chunk)
            await inbox.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in order
            await inbox.put(exc)

    async def _consume(self, samples: Samples) -> AsyncIterator[StreamResult]:
        if samples.size:
            self._audio = np.concatenate([self._audio, samples])
        for probability in self._vad.feed(samples):
            for event in self._segmenter.push(float(probability)):
                if isinstance(event, UtteranceStarted):
                    self._start, self._partial_at, self._partials_sent = event.start, event.start, False
                elif event.discard and not self._partials_sent:
                    self._close_utterance(event.end)
                else:
                    final = await self._final(event.end, end_of_utterance=not event.forced)
                    if final is not None:
                        yield final
        if self._start is None:  # idle: keep only the padding a next utterance may need
            keep = self._settings.segmenter.pad_ms * SAMPLE_RATE // 1000
            drop = max(0, self._audio.size - keep)
            self._audio, self._offset = self._audio[drop:], self._offset + drop

    async def _flush(self) -> AsyncIterator[StreamResult]:
        tail = self._converter.flush()
        if tail.size:
            self._audio = np.concatenate([self._audio, tail])
        if self._start is not None:
            final = await self._final(self._offset + self._audio.size, end_of_utterance=True)
            if final is not None:
                yield final

    async def _maybe_partial(self) -> StreamResult | None:
        settings = self._settings
        # In trailing silence a partial cannot change the text, and decoding it would hold up
        # reading the chunk that ends the utterance (and so its final).
        if not settings.partials or self._start is None or self._segmenter.trailing_off:
            return None
        end = self._offset + self._audio.size
        if end - self._partial_at < settings.partial_interval_s * SAMPLE_RATE:
            return None
        self._partial_at = end
        samples = self._slice(self._start, end)
        done = await self._run_partial(lambda: self._engine.transcribe(samples, settings.options, quick=True))
        if done is None:
            return None  # no free slot: skip this partial, finals are never skipped
        transcript, timing = done
        self._partials_sent = True
        return self._result(transcript, timing, self._start, end, final=False, end_of_utterance=False)

    async def _final(self, end: int, *, end_of_utterance: bool) -> StreamResult | None:
        assert self._start is not None
        start, samples = self._start, self._slice(self._start, end)
        transcript, timing = await self._run_final(lambda: self._engine.transcribe(samples, self._settings.options))
        had_partials = self._partials_sent
        self._close_utterance(end)
        if not transcript.text and not had_partials:
            return None  # nothing was said and nothing shown: no need to confirm it
        result = self._result(transcript, timing, start, end, final=True, end_of_utterance=end_of_utterance)
        self._utterance += 1
        return result

    def _close_utterance(self, end: int) -> None:
        self._start, self._partials_sent = None, False
        drop = max(0, min(end - self._offset, self._audio.size))
        self._audio, self._offset = self._audio[drop:], self._offset + drop

    def _slice(self, start: int, end: int) -> Samples:
        return self._audio[max(0, start - self._offset):max(0, end - self._offset)].copy()

    def _result(self, transcript: Transcript, timing: Any, start: int, end: int,
                *, final: bool, end_of_utterance: bool) -> StreamResult:
        shift = start / SAMPLE_RATE
        segments = tuple(s.shifted(shift, i) for i, s in enumerate(transcript.segments)) if final else ()
        return StreamResult(self._utterance, final, end_of_utterance, transcript.text, segments, shift,
                            end / SAMPLE_RATE, transcript.language, transcript.language_probability, timing)
