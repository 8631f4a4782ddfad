"""Which language engine serves on a machine: mlx on Apple silicon (Metal, unified memory),
llama.cpp everywhere else (CPU, and NVIDIA GPUs through a CUDA build). Imports nothing heavy:
the model cache asks it which formats to prepare."""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from lanai.services.core.errors import ModelNotFound, quote

if TYPE_CHECKING:
    from lanai.services.language.config import LanguageConfig
    from lanai.services.language.types import Chunk, LoadedModel, Message, Sampling
    from lanai.services.models import ResolvedModel

MLX, LLAMA_CPP = "mlx", "llama.cpp"
ENGINES = (MLX, LLAMA_CPP)
CHOICES = ("auto", *ENGINES)
MLX_SLOTS = 8
"""Batching 8 on mlx's CPU build (OpenBLAS) gave 4x one stream's tokens/s (docs/language.md)."""
LLAMA_CPP_SLOTS = 4
"""llama.cpp's default slots (n_parallel); measured in docs/language.md."""


def apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def choose(setting: str) -> str:
    """The engine a `--language-engine` setting means on this machine."""
    if setting == "auto":
        return MLX if apple_silicon() else LLAMA_CPP
    if setting not in ENGINES:
        raise ValueError(f"unknown language engine {setting!r}; choose from {', '.join(CHOICES)}")
    return setting


def machine_engines() -> tuple[str, ...]:
    """The engines `auto` uses here: the formats `lanai models prepare` makes by default."""
    return (choose("auto"),)


class Engine(Protocol):
    """What the language servicer needs of an engine (mlx_engine.MlxEngine, llamacpp_engine.LlamaCppEngine)."""

    name: str
    config: LanguageConfig
    default_model: str
    models: list[LoadedModel]
    slots: int
    """Generations it decodes at once: the admission controller's slots."""

    def resolve(self, name: str) -> str: ...

    def encode(self, model: str, prompt: str | Sequence[Message], continuation: str = "") -> list[int]:
        """Token ids of a raw prompt, or of chat messages rendered with the model's chat template,
        with `continuation` (text the answer already has) after it, tokenized together.
        InvalidInput when they do not fit the context. Blocking."""

    def generate(self, model: str, tokens: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        """Chunks of new text, the last with finish and usage. Leaving the iteration early
        (the client went away) stops the generation and frees its slot."""

    def close(self) -> None: ...


def resolve_name(name: str, default: str, served: Collection[str]) -> str:
    """A request's model name: "" is the default; an unknown one is ModelNotFound listing `served`."""
    if not name:
        return default
    if name not in served:
        raise ModelNotFound(f"language model {quote(name)} is not served here; this node has: {', '.join(served)}")
    return name


def open_engine(models: Sequence[ResolvedModel], config: LanguageConfig) -> Engine:
    """The engine `config.engine` names (auto: this machine's), with `models` loaded."""
    if choose(config.engine) == MLX:
        from lanai.services.language.mlx_engine import MlxEngine
        return MlxEngine(models, config)
    from lanai.services.language.llamacpp_engine import LlamaCppEngine
    return LlamaCppEngine(models, config)
