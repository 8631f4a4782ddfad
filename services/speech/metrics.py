"""The speech service's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

AUDIO_SECONDS = Counter("lanai_speech_audio_seconds", "Seconds of audio transcribed.", ["model"])
REAL_TIME_FACTOR = Histogram(
    "lanai_speech_real_time_factor", "Compute time divided by audio duration (below 1 is faster than real time).",
    ["model"], buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))
