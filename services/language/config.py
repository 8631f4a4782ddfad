"""Configuration of the language service on one node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LanguageConfig:
    models: tuple[str, ...] = ("qwen2.5-coder-0.5b",)
    """Generation models: embedded names, GGUF files (llama.cpp) or mlx-lm model directories;
    the first is the default."""
    embedding_models: tuple[str, ...] = ("minilm-l6",)
    """Embedding models (embedded names or folders with model.onnx and tokenizer.json); the first
    is the default. Empty: this node answers no Embed calls."""
    engine: str = "auto"
    """"auto" (mlx on Apple silicon, llama.cpp elsewhere), "mlx" or "llama.cpp"."""
    slots: int = 0
    """Generations decoded together (continuous batching); 0: the engine's default."""
    threads: int = 0
    """CPU threads for generation (llama.cpp) and embeddings; 0: every core."""
    max_queue: int = 32
    """Requests that may wait for a place in the batch before RESOURCE_EXHAUSTED."""
    default_max_tokens: int = 512
    """Tokens generated when a request says 0."""
    max_tokens_limit: int = 2048
    """The most tokens one request may ask for."""
    context_length: int = 0
    """llama.cpp: tokens of context per slot (prompt and answer); 0: 2048."""
    max_embed_texts: int = 256
    """The most texts one Embed call may carry."""
    device: str = "auto"
    """"auto" (Metal on Apple silicon; llama.cpp: a GPU when its build has one), "cpu", or "gpu"
    ("cuda" is the same)."""
    blas: str = "auto"
    """mlx on Linux CPU: "auto" preloads Debian's OpenBLAS when present (mlx's CPU wheel bundles a BLAS
    ~30x slower), "off" keeps the bundled one (for comparison), or a path to a libblas.so.3."""
