"""What the node host needs from a service it hosts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from lanai.mesh.admission import AdmissionController
from lanai.mesh.load import LoadBoard


@dataclass(frozen=True)
class ModelFacts:
    """What Describe says about one loaded model."""

    name: str
    is_default: bool
    source: str
    devices: tuple[str, ...]
    throughput_unit: str
    """Unit of the measured throughput, e.g. "audio_seconds_per_second"."""
    engine: str = ""
    """The runtime serving it: "faster-whisper", "onnxruntime", "llama.cpp", "mlx"."""
    task: str = ""
    """Vision's "classify"/"faces"/"ocr", language's "generate"/"embed"; "" for speech."""


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


def admission_for(service: str, slots: int, max_queue: int, board: LoadBoard,
                  units: Mapping[str, str]) -> AdmissionController:
    """A service's admission controller, reporting to the node's load board with its models
    (`units`: each model's throughput unit)."""
    admission = AdmissionController(service, slots, max_queue, on_change=board.changed)
    board.add(admission, dict(units))
    return admission
