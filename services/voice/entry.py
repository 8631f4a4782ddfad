"""The voice service's registry entry (cheap to import: voices load in `build`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from lanai.services.core.entry import ServiceEntry
from lanai.services.core.hosted import Board, HostedService
from lanai.services.core.options import cores
from lanai.services.voice.config import VoiceConfig


def _api() -> ModuleType:
    from lanai.api.voice.v1 import voice_pb2
    return voice_pb2


def _build(config: VoiceConfig, home: Path, board: Board) -> HostedService:
    from lanai.services.voice.engine import VoiceEngine
    from lanai.services.voice.servicer import VoiceService
    from lanai.services.voice.sources import resolve

    sources = [resolve(home, spec) for spec in config.models]
    threads = config.threads or max(1, cores() // config.slots)  # the slots share the machine's cores
    return VoiceService(VoiceEngine(sources, threads=threads, max_chars=config.max_chars, device=config.device),
                        config, board)


ENTRY = ServiceEntry("voice", VoiceConfig, _api, _build, "text to speech (espeak-ng, Piper on onnxruntime)")
