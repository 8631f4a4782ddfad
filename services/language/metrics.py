"""The language service's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROMPT_TOKENS = Counter("lanai_language_prompt_tokens", "Prompt tokens processed.", ["model"])
GENERATED_TOKENS = Counter("lanai_language_generated_tokens", "Tokens generated.", ["model"])
TIME_TO_FIRST_TOKEN = Histogram(
    "lanai_language_time_to_first_token_seconds", "From a request's arrival to its first generated token.",
    ["model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
TOKENS_PER_SECOND = Histogram(
    "lanai_language_tokens_per_second", "Generation speed of one request after its first token.",
    ["model"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
