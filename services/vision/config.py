"""Configuration of the vision service on one node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VisionConfig:
    models: tuple[str, ...] = ("efficientnet-lite0", "mtcnn", "pp-ocrv4")
    """Embedded model names or model directories; the first of each task is its default."""
    slots: int = 2
    """Images processed at once."""
    max_queue: int = 32
    """Requests that may wait for a slot before RESOURCE_EXHAUSTED."""
    cpu_threads: int = 0
    """onnxruntime intra-op threads per slot; 0 divides the machine's cores among the slots."""
    device: str = "auto"
    """"auto" (CUDA or CoreML when onnxruntime has them, else CPU), "cpu" or "cuda"."""
    max_pixels: int = 50_000_000
    """Largest image accepted (width x height); larger ones are refused before decoding."""
    max_image_bytes: int = 32 * 1024 * 1024
    """Largest encoded image accepted."""
    default_max_side: int = 1600
    """Downscale before face detection and OCR when a request does not say (0: never)."""
    max_side_limit: int = 4096
    """The largest max_side a request may ask for."""
