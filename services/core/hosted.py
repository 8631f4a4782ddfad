"""What a node needs from a service it hosts, and the base the services share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import grpc

from lanai.services.core import metrics
from lanai.services.core.admission import AdmissionController, Timing


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
    languages: tuple[str, ...] = ()
    """What a speech model understands or a voice speaks; () where that does not apply."""


class Board(Protocol):
    """Where a service reports its load and measured speed (the node's load board, which
    routers watch)."""

    node_id: str

    def add(self, controller: AdmissionController, models: dict[str, str]) -> None: ...

    def changed(self) -> None: ...

    def observe(self, service: str, model: str, value: float) -> None: ...


class HostedService:
    """A service as a node hosts it: its engine, admission control (reporting to the node's
    board) and its gRPC servicer. Subclasses name themselves, describe their models and
    register their servicer; the rest is shared."""

    name: ClassVar[str]
    """"speech", "vision", "language", ..."""
    grpc_service: ClassVar[str]
    """Full gRPC service name, e.g. "lanai.speech.v1.Speech"."""

    def __init__(self, board: Board, slots: int, max_queue: int, units: Mapping[str, str]) -> None:
        """`units`: each model's throughput unit ("audio_seconds_per_second")."""
        self.board = board
        self.admission = AdmissionController(self.name, slots, max_queue, on_change=board.changed)
        board.add(self.admission, dict(units))

    @property
    def node_id(self) -> str:
        return self.board.node_id

    def models(self) -> Sequence[ModelFacts]:
        raise NotImplementedError

    def register(self, server: grpc.aio.Server) -> None:
        """Add the servicer to the gRPC server."""
        raise NotImplementedError

    async def measure(self) -> None:
        """Seed each model's measured throughput with a short run at start-up."""

    def close(self) -> None:
        """Release the engine (threads, models) once the server has stopped; the node shuts
        the admission pool down itself."""

    def record(self, model: str, timing: Timing, *, speed: float = 0.0) -> None:
        """Record a finished job: its queue and compute time, and (when `speed` > 0) the
        model's measured throughput, in its unit, that placement weighs this node by."""
        metrics.QUEUE_SECONDS.labels(self.name).observe(timing.queue_s)
        metrics.COMPUTE_SECONDS.labels(self.name, model).observe(timing.compute_s)
        if speed > 0:
            self.board.observe(self.name, model, speed)
