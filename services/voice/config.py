"""Configuration of the voice service on one node (its fields with a flag are `lanai node` flags)."""

from __future__ import annotations

from dataclasses import dataclass

from lanai.services.core.options import half_the_cores, option


@dataclass(frozen=True)
class VoiceConfig:
    models: tuple[str, ...] = option(("en-us",), flag="--voice-models", help=(
        "voices, comma-separated: espeak-ng voice names (en-us, en-gb, de, ...; `espeak-ng --voices` lists them), "
        "embedded Piper voices (joe, opt-in: `lanai models install joe`) or folders holding a Piper .onnx and its "
        ".onnx.json; the first is the default"))
    slots: int = option(factory=half_the_cores, flag="--voice-slots", help=(
        "sentences synthesised at once (default: half the cores, at least 2, at most the cores)"))
    max_queue: int = option(16, flag="--voice-queue", help="requests that may wait for a slot")
    threads: int = option(0, flag="--voice-threads", help="onnxruntime threads per slot (default: cores / slots)")
    device: str = option("cpu", flag="--voice-device", help="Piper voices: cpu, cuda or auto")
    max_chars: int = option(5000, flag="--voice-max-chars", help="longest text one request may carry, characters")
