"""The voice engine: the node's voices loaded once (espeak-ng voices as the program, Piper voices
as onnxruntime sessions), request checks, and synthesis as blocking calls. No protobuf here."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


from lanai.services.core.errors import InvalidInput, ModelNotFound, ModelNotPrepared, quote
from lanai.services.core.onnx import providers
from lanai.services.voice import espeak, text as texts
from lanai.services.voice.espeak import EspeakVoice
from lanai.services.voice.piper import PiperVoice
from lanai.services.voice.types import Audio, VoiceInfo

log = logging.getLogger(__name__)
KINDS = ("espeak-ng", "piper")
MIN_RATE, MAX_RATE = 0.25, 4.0
PAUSE_S = 0.2
"""Silence after each sentence: a stream's sentences then sound like one clip's."""


@dataclass(frozen=True)
class VoiceSource:
    """One voice the node was configured with (services/voice/sources.py makes them)."""

    name: str
    """What clients ask for: "en-us", "joe", ..."""
    kind: str
    """"espeak-ng" or "piper"."""
    path: Path | None = None
    """Piper: the folder holding exactly one *.onnx and its *.onnx.json."""
    source: str = ""


class _Voice(Protocol):
    info: VoiceInfo

    def synthesize(self, text: str, rate: float = 1.0) -> Audio: ...


def piper_files(name: str, folder: Path) -> tuple[Path, Path]:
    """The .onnx and .onnx.json of the Piper voice in `folder`."""
    models = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if len(models) != 1 or not models[0].with_name(models[0].name + ".json").is_file():
        found = ", ".join(p.name for p in models) or "none"
        raise ModelNotPrepared(f"Piper voice {name!r}: {folder} must hold exactly one .onnx file and its .onnx.json "
                               f"(found .onnx: {found}); prepare it again (lanai models prepare {name}) or point to "
                               "a folder with one voice")
    return models[0], models[0].with_name(models[0].name + ".json")


class VoiceEngine:
    """Holds the node's voices. `synthesize` and `synthesize_sentence` block and may run from
    several threads at once (subprocesses and shared onnxruntime sessions)."""

    def __init__(self, sources: Sequence[VoiceSource], *, threads: int = 0, max_chars: int = 5000,
                 device: str = "cpu") -> None:
        if not sources:
            raise ValueError("the voice service needs at least one voice")
        self.max_chars = max_chars
        self._voices: dict[str, _Voice] = {}
        wanted = providers(device, "voice") if any(s.kind == "piper" for s in sources) else []
        program = espeak.find_program()  # Piper voices need it too, for their phonemes
        for source in sources:
            if source.name in self._voices:
                raise ValueError(f"two voices are named {source.name!r}; give each a distinct name")
            if source.kind == "espeak-ng":
                voice: _Voice = EspeakVoice(source.name, program)
            elif source.kind == "piper":
                if source.path is None:
                    raise ValueError(f"Piper voice {source.name!r} has no folder")
                model, config = piper_files(source.name, source.path)
                voice = PiperVoice(source.name, model, config, threads=threads, providers=wanted, program=program,
                                   source=source.source or "path")
            else:
                raise ValueError(f"voice {source.name!r} is of unknown kind {source.kind!r}; use {' or '.join(KINDS)}")
            self._voices[source.name] = voice
            log.info("voice: loaded %s (%s, %s, %d Hz) on %s", source.name, voice.info.engine, voice.info.language,
                     voice.info.sample_rate, self.device_of(source.name))
        self.default_voice = sources[0].name

    @property
    def voices(self) -> list[VoiceInfo]:
        return [v.info for v in self._voices.values()]

    def device_of(self, voice: str) -> str:
        """Where a voice runs: "cuda" for a Piper voice on the GPU, else "cpu"."""
        found = self._voices[voice]
        return found.device if isinstance(found, PiperVoice) else "cpu"

    def resolve(self, voice: str) -> str:
        """The voice a request runs on: the named one, or the default for ""."""
        if not voice:
            return self.default_voice
        if voice not in self._voices:
            raise ModelNotFound(f"voice {quote(voice)} is not served by this node; it has: {', '.join(self._voices)} "
                                "(leave the voice empty for the default)")
        return voice

    def check(self, text: str, rate: float) -> None:
        """Refuse a request before it queues: no words, too much text, or a rate out of range."""
        if not text.strip():
            raise InvalidInput("text is empty: send the words to speak")
        if len(text) > self.max_chars:
            raise InvalidInput(f"text has {len(text)} characters; the limit is {self.max_chars}: split it into "
                               "several requests (SynthesizeStream starts speaking each as soon as its first "
                               "sentence is ready)")
        if not texts.sentences(text):
            raise InvalidInput(f"text {quote(text)} holds nothing to speak (only punctuation); send words")
        rate = rate or 1.0
        if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
            raise InvalidInput(f"rate {rate} is out of range: use {MIN_RATE} to {MAX_RATE} times the normal speed "
                               "(1.0 is normal, 0 means 1.0)")

    def synthesize(self, text: str, voice: str, rate: float) -> Audio:
        """The whole text, sentence by sentence, each followed by a short pause."""
        name = self.resolve(voice)
        parts = [self.synthesize_sentence(s, name, rate) for s in texts.sentences(text)]
        return Audio(b"".join(p.pcm for p in parts), self._voices[name].info.sample_rate)

    def synthesize_sentence(self, sentence: str, voice: str, rate: float) -> Audio:
        """One sentence (a piece of `text.sentences`), followed by a short pause: for streaming."""
        found = self._voices[self.resolve(voice)]
        audio = found.synthesize(sentence, rate or 1.0)
        pause = bytes(2 * int(PAUSE_S * audio.sample_rate))
        return Audio(audio.pcm + pause, audio.sample_rate)

    def close(self) -> None:
        self._voices.clear()
