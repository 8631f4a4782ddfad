"""The speech engine: faster-whisper models loaded once, transcription as blocking calls."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES

from lanai.services.core.errors import InvalidInput, ModelNotFound, quote
from lanai.services.models import ResolvedModel
from lanai.services.speech.audio import SAMPLE_RATE, Samples
from lanai.services.speech.config import SpeechConfig
from lanai.services.speech.types import Segment, TranscribeOptions, Transcript, Word

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 1000
MAX_BEAM = 10
LANGUAGES: tuple[str, ...] = tuple(_LANGUAGE_CODES)
"""The languages multilingual Whisper models understand (ISO 639-1 codes, and "haw", "yue")."""


@dataclass(frozen=True)
class LoadedModel:
    """A Whisper model in memory and the facts Describe reports about it."""

    name: str
    source: str
    multilingual: bool
    device: str
    whisper: Any  # faster_whisper.WhisperModel


class SpeechEngine:
    """Holds the node's Whisper models. `transcribe` blocks: call it inside an admission slot."""

    def __init__(self, models: Sequence[ResolvedModel], config: SpeechConfig) -> None:
        if not models:
            raise ValueError("the speech service needs at least one model")
        self.config = config
        threads = config.cpu_threads or max(1, (os.cpu_count() or 1) // config.slots)
        self._models: dict[str, LoadedModel] = {}
        for model in models:
            if model.name in self._models:
                raise ValueError(f"two speech models are named {model.name!r}; give each a distinct directory name")
            log.info("loading speech model %s from %s (%s, %s, %d worker(s) x %d thread(s))", model.name,
                     model.path, config.device, config.compute_type, config.slots, threads)
            whisper = WhisperModel(str(model.path), device=config.device, compute_type=config.compute_type,
                                   cpu_threads=threads, num_workers=config.slots, local_files_only=True)
            self._models[model.name] = LoadedModel(model.name, model.source, bool(whisper.model.is_multilingual),
                                                   str(whisper.model.device), whisper)
        self.default_model = models[0].name

    @property
    def models(self) -> tuple[LoadedModel, ...]:
        return tuple(self._models.values())

    def resolve(self, options: TranscribeOptions, *, default_beam: int | None = None) -> TranscribeOptions:
        """Check options against the model and fill defaults; raises before any queueing."""
        name = options.model or self.default_model
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"speech model {quote(name)} is not served by this node; "
                                f"available: {', '.join(self._models)}")
        language = options.language.strip().lower()
        if language and language not in LANGUAGES:
            raise InvalidInput(f"language {quote(options.language)} is not one Whisper knows; use an ISO 639-1 code "
                               "such as en, de or fr, or leave it empty to detect the language")
        if not model.multilingual and (options.translate or language not in ("", "en")):
            raise InvalidInput(f"model {quote(name)} is English-only: it cannot "
                               f"{'translate' if options.translate else 'transcribe ' + language}; "
                               "choose a multilingual model such as 'base'")
        beam = options.beam_size or (default_beam or self.config.default_beam_size)
        if not 1 <= beam <= MAX_BEAM:
            raise InvalidInput(f"beam_size {options.beam_size} is out of range; use 1 to {MAX_BEAM} (0 for the default)")
        if len(options.initial_prompt) > MAX_PROMPT_CHARS:
            raise InvalidInput(f"initial_prompt has {len(options.initial_prompt)} characters; "
                               f"the limit is {MAX_PROMPT_CHARS}")
        return replace(options, model=name, language=language or ("" if model.multilingual else "en"),
                       beam_size=beam)

    def transcribe(self, samples: Samples, options: TranscribeOptions, *, quick: bool = False) -> Transcript:
        """Transcribe 16 kHz mono samples with resolved options. `quick` is for stream
        partials: greedy, no timestamps, no temperature fallback."""
        model = self._models[options.model]
        kwargs: dict[str, Any] = {}
        if quick:
            kwargs = {"without_timestamps": True, "temperature": 0.0, "condition_on_previous_text": False}
        segments, info = model.whisper.transcribe(
            samples, language=options.language or None, task="translate" if options.translate else "transcribe",
            beam_size=1 if quick else options.beam_size, word_timestamps=options.word_timestamps and not quick,
            vad_filter=options.vad_filter, initial_prompt=options.initial_prompt or None, **kwargs)
        out = tuple(_segment(i, s) for i, s in enumerate(segments))  # the generator does the decoding
        return Transcript(out, info.language, float(info.language_probability), samples.size / SAMPLE_RATE)


def _segment(index: int, seg: Any) -> Segment:
    words = tuple(Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (seg.words or ()))
    return Segment(index, float(seg.start), float(seg.end), seg.text, words,
                   float(seg.avg_logprob), float(seg.no_speech_prob))
