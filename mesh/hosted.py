"""What the node host needs from a service it hosts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from lanai.mesh.admission import AdmissionController


@dataclass(frozen=True)
class ModelFacts:
    """What Describe says about one loaded model."""

    name: str
    is_default: bool
    source: str
    devices: tuple[str, ...]
    throughput_unit: str
    """Unit of the measured throughput, e.g. "audio_seconds_per_second"."""


class HostedService(Protocol):
    name: str
    """"speech", "vision" or "language"."""
    grpc_service: str
    """Full gRPC service name, e.g. "lanai.speech.v1.Speech"."""
    admission: AdmissionController

    def models(self) -> Sequence[ModelFacts]: ...

    async def measure(self) -> None:
        """Seed each model's measured throughput with a short run at start-up."""

    def register(self, server: grpc.aio.Server) -> None:
        """Add the servicer to the gRPC server."""

    def close(self) -> None:
        """Release the engine (threads, models) once the server has stopped."""
