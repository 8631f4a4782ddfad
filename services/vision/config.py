"""Configuration of the vision service on one node (its fields with a flag are `lanai node` flags)."""

from __future__ import annotations

from dataclasses import dataclass

from lanai.services.core.options import half_the_cores, option


@dataclass(frozen=True)
class VisionConfig:
    models: tuple[str, ...] = option(("efficientnet-lite0", "mtcnn", "pp-ocrv4"), flag="--vision-models", help=(
        "embedded model names or model directories, comma-separated; the first of each task (classify, faces, "
        "ocr) is its default"))
    slots: int = option(factory=half_the_cores, flag="--vision-slots", help=(
        "images processed at once (default: half the cores, at least 2, at most the cores)"))
    max_queue: int = option(32, flag="--vision-queue", help="requests that may wait for a slot")
    max_streams: int = option(8, flag="--vision-streams", help="open StreamAnalyze (video) sessions allowed")
    cpu_threads: int = option(0, flag="--vision-threads", help="onnxruntime threads per slot (default: cores / slots)")
    device: str = option("auto", flag="--vision-device", help="auto (CUDA/CoreML when present), cpu or cuda")
    max_pixels: int = option(50_000_000, flag="--max-image-pixels", help=(
        "largest image accepted, width x height; larger ones are refused before decoding"))
    max_image_bytes: int = 32 * 1024 * 1024
    """Largest encoded image accepted."""
    default_max_side: int = 1600
    """Downscale before face detection and OCR when a request does not say (0: never)."""
    max_side_limit: int = 4096
    """The largest max_side a request may ask for."""
