"""Fast BLAS for mlx on Linux CPUs.

The `mlx[cpu]` wheel bundles the reference BLAS: float32 matmuls run ~30x slower than with
OpenBLAS. Loading Debian's OpenBLAS with RTLD_GLOBAL *before* mlx is imported puts its
`cblas_*` symbols ahead of the bundled ones (mlx is loaded later, with its own library in
its local scope), so mlx uses it without LD_PRELOAD or a re-exec."""

from __future__ import annotations

import ctypes
import glob
import logging
import platform
import sys

log = logging.getLogger(__name__)
DEBIAN_OPENBLAS = "/usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3"
_loaded: str | None = None


def find_openblas() -> str | None:
    """Debian's OpenBLAS (package libopenblas0-pthread), if installed."""
    found = sorted(glob.glob(DEBIAN_OPENBLAS))
    return found[0] if found else None


def preload(setting: str) -> str | None:
    """Load the BLAS `setting` asks for ("auto", "off" or a path) ahead of mlx; returns what was
    loaded. Only meaningful on Linux and before the first `import mlx` in the process."""
    global _loaded
    if _loaded is not None or setting == "off" or platform.system() != "Linux":
        return _loaded
    path = find_openblas() if setting == "auto" else setting
    if path is None:
        log.warning("language: Debian's OpenBLAS is not installed (apt install libopenblas0-pthread); "
                    "mlx falls back to its bundled reference BLAS, roughly 10x slower on CPU")
        return None
    if "mlx.core" in sys.modules:
        log.warning("language: mlx was imported before OpenBLAS could be loaded; generation will be slow")
        return None
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise ValueError(f"could not load the BLAS library {path}: {exc}") from None
    _loaded = path
    log.info("language: using %s for mlx's CPU matmuls", path)
    return path
