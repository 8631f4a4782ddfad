"""Language values as plain data (no protobuf, no mlx)."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("system", "user", "assistant")
FINISH_STOP, FINISH_LENGTH, FINISH_CANCELLED = "stop", "length", "cancelled"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    devices: tuple[str, ...]
    context_length: int


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    """1 is off."""
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float
    """From the start of compute (a place in the batch) to the first generated token."""
    tokens_per_second: float
    """Generated tokens per second after the first."""


@dataclass(frozen=True)
class Chunk:
    """New text of one generation; the last chunk has `finish` and `usage`."""

    text: str
    finish: str = ""
    usage: Usage | None = None
