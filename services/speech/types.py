"""Plain values of the speech domain: options in, transcripts out (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TranscribeOptions:
    """How to decode; defaults are resolved by the engine."""

    model: str = ""
    """Model name; empty for the node's default."""
    language: str = ""
    """ISO 639-1 code; empty to detect."""
    translate: bool = False
    """Produce English text from any language."""
    beam_size: int = 0
    """Beam width; 0 for the engine's default."""
    word_timestamps: bool = False
    """Return per-word times."""
    vad_filter: bool = False
    """Skip non-speech before decoding."""
    initial_prompt: str = ""
    """Text conditioning the first window."""


@dataclass(frozen=True)
class Word:
    start_s: float
    """Seconds from the start of the audio."""
    end_s: float
    text: str
    """The word, with its leading space."""
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    """Index within its transcript."""
    start_s: float
    """Seconds from the start of the audio."""
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    """Filled when word timestamps were asked for."""
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0

    def shifted(self, seconds: float, new_id: int) -> Segment:
        """The same segment with its times moved by `seconds` (stream chunks to stream time)."""
        words = tuple(Word(w.start_s + seconds, w.end_s + seconds, w.text, w.probability) for w in self.words)
        return Segment(new_id, self.start_s + seconds, self.end_s + seconds, self.text, words,
                       self.avg_logprob, self.no_speech_prob)


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str
    """Language used for decoding."""
    language_probability: float
    """Detection confidence (1 when the language was given)."""
    duration_s: float
    """Seconds of audio decoded."""

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()
