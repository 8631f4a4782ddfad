"""Configuration of the speech service on one node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeechConfig:
    models: tuple[str, ...] = ("base",)
    """Embedded model names or model directories; the first is the default."""
    slots: int = 1
    """Transcriptions run at once (each a CTranslate2 worker)."""
    max_queue: int = 8
    """Requests that may wait for a slot before RESOURCE_EXHAUSTED."""
    max_streams: int = 16
    """Open StreamTranscribe sessions at once."""
    cpu_threads: int = 0
    """Threads per slot; 0 divides the machine's cores among the slots."""
    device: str = "cpu"
    """"cpu", "cuda" or "auto"."""
    compute_type: str = "int8"
    """CTranslate2 compute type ("int8", "float16", "default", ...)."""
    max_audio_s: float = 3 * 3600.0
    """Longest audio one Transcribe request may carry."""
    default_beam_size: int = 5
    """Beam width for files when the request says 0."""
