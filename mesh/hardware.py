"""What machine a node runs on, for Node/Describe."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Accelerator:
    kind: str
    """"cuda", "metal", ..."""
    name: str
    memory_bytes: int = 0


@dataclass(frozen=True)
class Hardware:
    os: str
    arch: str
    cpu_count: int
    memory_bytes: int
    accelerators: tuple[Accelerator, ...]


def detect() -> Hardware:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    accelerators: list[Accelerator] = []
    try:
        import ctranslate2  # the speech engine's runtime also tells whether CUDA is usable

        accelerators += [Accelerator("cuda", f"cuda:{i}") for i in range(ctranslate2.get_cuda_device_count())]
    except Exception:  # noqa: BLE001 - no CUDA runtime: no accelerator to report
        pass
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        accelerators.append(Accelerator("metal", "apple-silicon"))
    return Hardware(platform.system().lower(), platform.machine(), os.cpu_count() or 1, memory, tuple(accelerators))
