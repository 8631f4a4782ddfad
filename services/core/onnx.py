"""onnxruntime execution providers for a service's `--<service>-device` setting."""

from __future__ import annotations

from collections.abc import Sequence

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers(device: str, service: str, accelerated: Sequence[str] = (CUDA,)) -> list[str]:
    """Providers to use, best first; CPU always last as the fallback. "auto" takes those of
    `accelerated` this onnxruntime has; "cuda" insists on CUDA."""
    import onnxruntime as ort  # at start-up, when a model loads: lanai.services.core stays light

    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise ValueError(f"{service} device 'cuda' asked for, but this onnxruntime has no CUDA provider "
                             f"(it has {', '.join(available)}); install onnxruntime-gpu or use --{service}-device cpu")
        return [CUDA, CPU]
    if device != "auto":
        raise ValueError(f"unknown {service} device {device!r}; use auto, cpu or cuda")
    return [p for p in accelerated if p in available] + [CPU]
