"""A service's registry entry: what lanai.mesh.registry needs to host it, importable without
loading any model or engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from lanai.services.core.hosted import Board, HostedService


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    """"speech": the `--services` name, the flag prefix and the NodeConfig key."""
    config: type[Any]
    """Its config dataclass; fields made with lanai.services.core.options.option are node flags."""
    api: Callable[[], ModuleType]
    """The generated *_pb2 module of its gRPC API (what routers forward is read from it)."""
    build: Callable[[Any, Path, Board], HostedService]
    """(config, model cache home, the node's load board) -> the hosted service. Loads models:
    slow, so the node runs it off the event loop."""
    description: str = ""
