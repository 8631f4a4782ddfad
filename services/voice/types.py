"""What the voice engine returns: plain data, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_WIDTH = 2
"""Bytes per sample of every Audio: signed 16-bit little-endian, mono."""


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    """What clients ask for: "en-us" (an espeak-ng voice), "joe" (a Piper voice)."""
    engine: str
    """"espeak-ng" or "piper"."""
    language: str
    """BCP-47-ish: "en-US"."""
    sample_rate: int
    source: str
    """"program:espeak-ng", "embedded:<package>" or "path"."""
    description: str


@dataclass(frozen=True)
class Audio:
    pcm: bytes
    """Signed 16-bit little-endian mono samples."""
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_WIDTH / self.sample_rate if self.sample_rate else 0.0
