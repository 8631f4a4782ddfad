"""Configuration of the language service on one node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LanguageConfig:
    models: tuple[str, ...] = ("smollm2-135m",)
    """Embedded model names or mlx-lm model directories; the first is the default."""
    slots: int = 8
    """Generations decoded together in one batch (continuous batching)."""
    max_queue: int = 32
    """Requests that may wait for a place in the batch before RESOURCE_EXHAUSTED."""
    default_max_tokens: int = 512
    """Tokens generated when a request says 0."""
    max_tokens_limit: int = 2048
    """The most tokens one request may ask for."""
    device: str = "auto"
    """"auto" (Metal on Apple silicon, else CPU), "cpu" or "gpu"."""
    blas: str = "auto"
    """Linux CPU: "auto" preloads Debian's OpenBLAS when present (mlx's CPU wheel bundles a BLAS
    ~30x slower), "off" keeps the bundled one (for comparison), or a path to a libblas.so.3."""
