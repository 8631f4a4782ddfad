"""Configuration of the language service on one node (its fields with a flag are `lanai node` flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lanai.services.core.options import names, option
from lanai.services.language.engines import CHOICES, LLAMA_CPP_SLOTS, MLX_SLOTS

DEFAULT_MODELS = ("qwen2.5-coder-0.5b",)


def _models() -> tuple[str, ...]:
    """$LANAI_LANGUAGE_MODELS when set (the test suite uses the small, fast smollm2-135m), else the default."""
    return names(os.environ.get("LANAI_LANGUAGE_MODELS", "")) or DEFAULT_MODELS


@dataclass(frozen=True)
class LanguageConfig:
    models: tuple[str, ...] = option(factory=_models, flag="--language-models", help=(
        "generation models: embedded names, GGUF files (llama.cpp) or mlx-lm model directories, comma-separated; "
        f"the first is the default (default $LANAI_LANGUAGE_MODELS, else {','.join(DEFAULT_MODELS)}; "
        "smollm2-135m is the small, fast one)"))
    embedding_models: tuple[str, ...] = option(("minilm-l6",), flag="--language-embedding-models", help=(
        "embedding models (embedded names or folders with model.onnx and tokenizer.json), comma-separated, "
        "'' for none; the first is the default"))
    engine: str = option("auto", flag="--language-engine", choices=CHOICES, help=(
        "auto: mlx on Apple silicon, llama.cpp elsewhere"))
    slots: int = option(0, flag="--language-slots", help=(
        f"generations decoded together (default: the engine's; llama.cpp {LLAMA_CPP_SLOTS}, mlx {MLX_SLOTS})"))
    threads: int = option(0, flag="--language-threads", help=(
        "CPU threads for generation (llama.cpp) and embeddings (default: every core)"))
    max_queue: int = option(32, flag="--language-queue", help="requests that may wait for a place in the batch")
    default_max_tokens: int = 512
    """Tokens generated when a request says 0."""
    max_tokens_limit: int = option(2048, flag="--max-tokens", help="most tokens one request may ask for")
    context_length: int = option(0, flag="--language-context", help=(
        "llama.cpp: context tokens per slot, prompt and answer (default 2048)"))
    max_embed_texts: int = 256
    """The most texts one Embed call may carry."""
    device: str = option("auto", flag="--language-device", help=(
        "auto (mlx: Metal on Apple silicon; llama.cpp: a GPU when its build has one), cpu, or gpu (cuda is the "
        "same)"))
    blas: str = option("auto", flag="--language-blas", help=(
        "mlx on Linux CPU: auto preloads Debian's OpenBLAS when installed (mlx's CPU wheel bundles a BLAS ~30x "
        "slower), off keeps the bundled one, or a path to a libblas.so.3"))

    def __post_init__(self) -> None:
        if self.device == "cuda":
            object.__setattr__(self, "device", "gpu")
