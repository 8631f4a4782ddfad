"""The four-utterance meeting that the stream failover tests, the chaos test and bench/chaos.py
stream in real time: each sentence's keyword must appear exactly once in the transcript."""

from __future__ import annotations

from collections.abc import Callable

from .test_speech import to_16k

UTTERANCES = (("Every morning the office printer jams at nine.", "morning"),
              ("The quick brown fox jumps over the lazy dog.", "lazy"),
              ("Our meeting notes stay on the machines in this building.", "building"),
              ("Tomorrow the weather will be sunny and warm.", "weather"))
KEYWORDS = tuple(keyword for _, keyword in UTTERANCES)


def meeting_pcm(speak: Callable[[str, str], bytes]) -> bytes:
    """16 kHz PCM: the four sentences, each followed by 1.2 s of silence (an utterance each).
    `speak(text, name)` returns a WAV of the text (conftest's `speak` fixture, or espeak-ng)."""
    return b"".join(to_16k(speak(text, f"utterance-{i}"), silence_after_s=1.2)
                    for i, (text, _) in enumerate(UTTERANCES))
