"""The speech service's registry entry (cheap to import: models load in `build`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from lanai.services.core.entry import ServiceEntry
from lanai.services.core.hosted import Board, HostedService
from lanai.services.speech.config import SpeechConfig


def _api() -> ModuleType:
    from lanai.api.speech.v1 import speech_pb2
    return speech_pb2


def _build(config: SpeechConfig, home: Path, board: Board) -> HostedService:
    from lanai.services import models
    from lanai.services.speech.engine import SpeechEngine
    from lanai.services.speech.servicer import SpeechService

    resolved = [models.resolve(home, spec, "speech") for spec in config.models]
    return SpeechService(SpeechEngine(resolved, config), board)


ENTRY = ServiceEntry("speech", SpeechConfig, _api, _build, "transcription (faster-whisper)")
