"""Voice activity for streams: Silero VAD (shipped by faster-whisper) run window by window,
and a pure state machine that turns speech probabilities into utterance boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper.vad import get_vad_model

from lanai.services.speech.audio import SAMPLE_RATE, Samples

WINDOW = 512
"""Samples per VAD decision (32 ms at 16 kHz)."""
_CONTEXT = 64  # samples of the previous window the model sees in front of each window


class StreamingVad:
    """Speech probability per 512-sample window of a stream, carrying the model's
    recurrent state and context across calls (the same numbers as running the
    whole recording at once)."""

    def __init__(self) -> None:
        self._session: Any = get_vad_model().session  # one ONNX session per process, thread-safe to run
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def feed(self, samples: Samples) -> Samples:
        """Probabilities for every window completed by `samples` (possibly none)."""
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = data.size - data.size % WINDOW
        self._pending = data[whole:].copy()
        if not whole:
            return np.zeros(0, np.float32)
        windows = data[:whole].reshape(-1, WINDOW)
        contexts = np.concatenate([self._context[None], windows[:-1, -_CONTEXT:]])
        out, self._h, self._c = self._session.run(
            None, {"input": np.concatenate([contexts, windows], axis=1), "h": self._h, "c": self._c})
        self._context = windows[-1, -_CONTEXT:].copy()
        return np.asarray(out, np.float32).reshape(-1)


@dataclass(frozen=True)
class SegmenterConfig:
    threshold: float = 0.5
    """A window at or above this probability is speech."""
    neg_threshold: float = 0.35
    """A window below this is silence; in between keeps the current state."""
    silence_ms: int = 500
    """Silence that ends an utterance."""
    pad_ms: int = 200
    """Audio kept before the first and after the last speech window."""
    min_speech_ms: int = 120
    """Shorter bursts (clicks, breaths) are discarded."""
    max_utterance_s: float = 29.0
    """Longer speech is cut into pieces that fit Whisper's 30 s window."""


@dataclass(frozen=True)
class UtteranceStarted:
    start: int
    """Sample position (stream time x 16 kHz) where the utterance's audio begins, padding included."""


@dataclass(frozen=True)
class UtteranceEnded:
    end: int
    """Sample position where the utterance's audio ends, padding included."""
    forced: bool = False
    """Cut at the length limit; speech continues in a new utterance from `end`."""
    discard: bool = False
    """Too short to be speech: drop it without a result."""


Event = UtteranceStarted | UtteranceEnded


class UtteranceSegmenter:
    """Feeds on one probability per window; returns the boundary events it implies."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._ms = SAMPLE_RATE // 1000
        self._window = 0  # index of the next window
        self._speaking = False
        self._start = 0  # first speech sample of the current utterance
        self._audio_start = 0  # where its audio starts: padded for a new utterance, the cut for a continuation
        self._continuation = False  # the utterance continues one cut at the length limit
        self._last_voice = 0  # end sample of the last window at or above the threshold
        self._silent_windows = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def trailing_off(self) -> bool:
        """Speaking, but the latest windows are silence: the utterance may be ending."""
        return self._speaking and self._silent_windows > 0

    @property
    def position(self) -> int:
        """Samples consumed so far."""
        return self._window * WINDOW

    def push(self, probability: float) -> list[Event]:
        cfg, pos = self.config, self._window * WINDOW
        self._window += 1
        pad = cfg.pad_ms * self._ms
        if not self._speaking:
            if probability >= cfg.threshold:
                self._speaking, self._continuation, self._silent_windows = True, False, 0
                self._start, self._audio_start, self._last_voice = pos, max(0, pos - pad), pos + WINDOW
                return [UtteranceStarted(self._audio_start)]
            return []
        if probability >= cfg.threshold:
            self._last_voice, self._silent_windows = pos + WINDOW, 0
        elif probability < cfg.neg_threshold:
            self._silent_windows += 1
        if self._silent_windows * WINDOW >= cfg.silence_ms * self._ms:
            self._speaking = False
            # A continuation is the rest of speech already heard: never too short to keep.
            too_short = not self._continuation and self._last_voice - self._start < cfg.min_speech_ms * self._ms
            end = max(self._audio_start, min(self._last_voice + pad, pos + WINDOW))
            return [UtteranceEnded(end, discard=too_short)]
        # Cut only while speech goes on; an utterance already trailing off ends by silence
        # (its end, last voice + pad, stays within Whisper's 30 s window).
        if self._silent_windows == 0 and pos + WINDOW - self._audio_start >= cfg.max_utterance_s * SAMPLE_RATE:
            cut = pos + WINDOW
            self._start = self._audio_start = cut
            self._continuation = True
            return [UtteranceEnded(cut, forced=True), UtteranceStarted(cut)]
        return []
