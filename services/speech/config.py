"""Configuration of the speech service on one node (its fields with a flag are `lanai node` flags)."""

from __future__ import annotations

from dataclasses import dataclass

from lanai.services.core.options import half_the_cores, option


@dataclass(frozen=True)
class SpeechConfig:
    models: tuple[str, ...] = option(("base",), flag="--speech-models", help=(
        "embedded model names or model directories, comma-separated; the first is the default"))
    slots: int = option(factory=half_the_cores, flag="--speech-slots", help=(
        "transcriptions at once, each a CTranslate2 worker (default: half the cores, at least 2, at most the cores)"))
    max_queue: int = option(8, flag="--speech-queue", help="requests that may wait for a slot")
    max_streams: int = option(16, flag="--speech-streams", help="open StreamTranscribe sessions allowed")
    cpu_threads: int = option(0, flag="--speech-threads", help="CPU threads per slot (default: cores / slots)")
    device: str = option("cpu", flag="--speech-device", help="cpu, cuda or auto")
    compute_type: str = option("int8", flag="--speech-compute-type", help=(
        "CTranslate2 compute type (int8, float16, default, ...)"))
    max_audio_s: float = option(3 * 3600.0, flag="--max-audio-s", help=(
        "longest audio one Transcribe request may carry, seconds"))
    default_beam_size: int = 5
    """Beam width for files when the request says 0."""
