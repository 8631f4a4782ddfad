"""Connecting this process to a Ray cluster, with Ray's usage statistics off."""

from __future__ import annotations

import logging
import time
from typing import Any

from lanai.services.core.privacy import keep_on_premises

NAMESPACE = "lanai"
"""The Ray namespace lanai's actors live in (named actors are unique per namespace)."""
PREFIX = "lanai-"
"""Every lanai actor's name starts with this; discovery ignores other actors in the namespace."""


def last_line(exc: BaseException | None) -> str:
    """The line of a Ray exception that says what went wrong (Ray puts a traceback above it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class RayUnavailable(RuntimeError):
    """No Ray here (the extra is not installed) or no cluster at the address."""


def ray_module() -> Any:
    keep_on_premises()  # RAY_USAGE_STATS_ENABLED=0 before Ray reads it
    try:
        import ray
    except ImportError:
        raise RayUnavailable("Ray is not installed: pip install 'lanai[ray]' (Linux; a Ray cluster's machines "
                             "need the same Ray and Python versions)") from None
    return ray


def connect(address: str, namespace: str = NAMESPACE) -> Any:
    """Join the cluster at `address` as a driver: "auto" (this machine is a Ray node),
    "ray://HEAD:10001" (Ray Client, from any machine that reaches the head) or "HOST:6379"
    (a Ray node's GCS). Returns the ray module."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    problem: BaseException | None = None
    for attempt in range(4):
        try:
            # An address is given, so this never starts a cluster (nor its dashboard) of its own.
            ray.init(address=address or "auto", namespace=namespace, log_to_driver=False,
                     logging_level=logging.WARNING)
            return ray
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the message says what
            problem = exc
            if ray.is_initialized():
                ray.shutdown()
            if isinstance(exc, ConnectionError):  # nothing answers: asking again only waits longer
                break
            # The head's Ray Client server starts a server process per connection, and that start
            # sometimes fails (its logs: gRPC's epoll in the new process; psutil.ZombieProcess): a
            # new connection gets a new one.
            if attempt < 3:
                time.sleep(1.0 + attempt)
    raise RayUnavailable(f"no Ray cluster at {address or 'auto'} ({last_line(problem)}); "
                         "start one with `ray start --head --disable-usage-stats` (docs/ray.md) or pass its "
                         "address: ray://HEAD:10001")
