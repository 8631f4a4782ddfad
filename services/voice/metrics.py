"""The voice service's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHARACTERS = Counter("lanai_voice_characters", "Characters of text synthesised.", ["model"])
AUDIO_SECONDS = Counter("lanai_voice_audio_seconds", "Seconds of audio synthesised.", ["model"])
REAL_TIME_FACTOR = Histogram(
    "lanai_voice_real_time_factor", "Synthesis time divided by the audio's duration (below 1 is faster than "
    "real time).", ["model"], buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0))
TIME_TO_FIRST_AUDIO = Histogram(
    "lanai_voice_time_to_first_audio_seconds", "From a SynthesizeStream call's arrival to its first audio chunk.",
    ["model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
