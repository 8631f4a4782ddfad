"""Which voice a `--voice-models` name means: an embedded Piper voice (prepared in the model
cache), a folder holding a Piper voice, or an espeak-ng voice of the installed program."""

from __future__ import annotations

from pathlib import Path

from lanai.services import models
from lanai.services.voice.engine import VoiceSource


def resolve(home: Path, spec: str) -> VoiceSource:
    if models.embedded(spec) is not None:
        resolved = models.resolve(home, spec, "voice")
        return VoiceSource(resolved.name, "piper", resolved.path, resolved.source)
    path = Path(spec).expanduser()
    if path.is_dir():
        return VoiceSource(path.name, "piper", path.resolve(), "path")
    return VoiceSource(spec, "espeak-ng", None, "program:espeak-ng")  # the engine checks espeak-ng knows it
