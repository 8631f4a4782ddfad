"""The vision service's registry entry (cheap to import: models load in `build`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from lanai.services.core.entry import ServiceEntry
from lanai.services.core.hosted import Board, HostedService
from lanai.services.vision.config import VisionConfig


def _api() -> ModuleType:
    from lanai.api.vision.v1 import vision_pb2
    return vision_pb2


def _build(config: VisionConfig, home: Path, board: Board) -> HostedService:
    from lanai.services import models
    from lanai.services.vision.engine import VisionEngine
    from lanai.services.vision.servicer import VisionService

    resolved = [models.resolve(home, spec, "vision") for spec in config.models]
    return VisionService(VisionEngine(resolved, config), board)


ENTRY = ServiceEntry("vision", VisionConfig, _api, _build, "classification, faces and OCR (onnxruntime)")
