"""The language service's registry entry (cheap to import: models load in `build`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from lanai.services.core.entry import ServiceEntry
from lanai.services.core.hosted import Board, HostedService
from lanai.services.language.config import LanguageConfig


def _api() -> ModuleType:
    from lanai.api.language.v1 import language_pb2
    return language_pb2


def _build(config: LanguageConfig, home: Path, board: Board) -> HostedService:
    from lanai.services import models
    from lanai.services.language.embed import Embedder
    from lanai.services.language.engines import choose, open_engine
    from lanai.services.language.servicer import LanguageService

    engine = choose(config.engine)
    resolved = [models.resolve(home, spec, "language", engine=engine) for spec in config.models]
    encoders = [models.resolve(home, spec, "language") for spec in config.embedding_models]
    return LanguageService(open_engine(resolved, config), Embedder(encoders, config), board)


ENTRY = ServiceEntry("language", LanguageConfig, _api, _build, "generation and embeddings (llama.cpp, mlx)")
