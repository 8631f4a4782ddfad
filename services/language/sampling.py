"""Per-request token sampling for mlx-lm's batch generator: each request has its own random
key (so a seed gives the same text whatever else shares the batch) and its own filters."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from mlx_lm.sample_utils import apply_top_k, apply_top_p, make_repetition_penalty

from lanai.services.language.types import Sampling

REPETITION_CONTEXT = 64
"""Recent tokens the repetition penalty looks at."""


def sampler(s: Sampling) -> Callable[[mx.array], mx.array]:
    """Log-probabilities (1 x vocab) to the next token id (1,)."""
    if s.temperature == 0:
        return lambda logprobs: mx.argmax(logprobs, axis=-1)
    key = mx.random.key(s.seed if s.seed is not None else random.getrandbits(63))
    scale = 1 / s.temperature

    def sample(logprobs: mx.array) -> mx.array:
        nonlocal key
        key, draw = mx.random.split(key)
        if 0 < s.top_k < logprobs.shape[-1]:
            logprobs = apply_top_k(logprobs, s.top_k)
        if s.top_p < 1.0:
            logprobs = apply_top_p(logprobs, s.top_p)
        return mx.random.categorical(logprobs * scale, key=draw)

    return sample


def logits_processors(s: Sampling) -> list[Callable[[Any, mx.array], mx.array]]:
    if s.repetition_penalty == 1.0:
        return []
    return [make_repetition_penalty(s.repetition_penalty, REPETITION_CONTEXT)]
