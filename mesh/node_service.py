"""lanai.mesh.v1.Node: Describe (static facts) and WatchLoad (live load stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from typing import Any

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh import API_VERSION, __version__
from lanai.mesh.hardware import Hardware
from lanai.services.core.hosted import HostedService
from lanai.mesh.load import LoadBoard, Snapshot, Throughput
from lanai.mesh.security.trust import Trust
from lanai.services.core.errors import InvalidInput

DEFAULT_HEARTBEAT_MS = 1000


class NodeServicer(mesh_pb2_grpc.NodeServicer):
    def __init__(self, board: LoadBoard, hardware: Hardware, services: Sequence[HostedService],
                 metrics_port: int, *, trust: Trust | None = None, client_port: int = 0) -> None:
        self._board = board
        self._hardware = hardware
        self._services = services
        self._metrics_port = metrics_port
        self._trust = trust
        self.client_port = client_port
        """Set once the port is bound."""

    async def Describe(self, request: mesh_pb2.DescribeRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> mesh_pb2.DescribeResponse:
        hw = self._hardware
        return mesh_pb2.DescribeResponse(
            node_id=self._board.node_id, version=__version__, api_version=API_VERSION,
            hardware=mesh_pb2.Hardware(
                os=hw.os, arch=hw.arch, cpu_count=hw.cpu_count, memory_bytes=hw.memory_bytes,
                accelerators=[mesh_pb2.Accelerator(kind=a.kind, name=a.name, memory_bytes=a.memory_bytes)
                              for a in hw.accelerators]),
            services=[mesh_pb2.ServiceInfo(
                name=s.name, grpc_service=s.grpc_service, slots=s.admission.slots, max_queue=s.admission.max_queue,
                models=[mesh_pb2.ModelInfo(name=m.name, is_default=m.is_default, source=m.source,
                                           devices=list(m.devices), engine=m.engine, task=m.task, languages=list(m.languages),
                                           throughput=_throughput(self._board.throughput(s.name, m.name)))
                        for m in s.models()]) for s in self._services],
            metrics_port=self._metrics_port, draining=self._board.draining,
            mesh_id=self._trust.mesh_id if self._trust else "", client_port=self.client_port)

    async def WatchLoad(self, request: mesh_pb2.WatchLoadRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[mesh_pb2.LoadReport]:
        heartbeat_ms = request.heartbeat_ms or DEFAULT_HEARTBEAT_MS
        if not 50 <= heartbeat_ms <= 60000:
            raise InvalidInput(f"heartbeat_ms {heartbeat_ms} is out of range; use 50 to 60000 (0 for 1000)")
        async for snapshot in self._board.watch(heartbeat_ms / 1000):
            report = load_report(self._board.node_id, snapshot)
            if self._trust is not None:
                report.policy_version = self._trust.policy.version
            yield report


def load_report(node_id: str, snap: Snapshot) -> mesh_pb2.LoadReport:
    services = []
    for name, load in snap.services.items():
        models = [mesh_pb2.ModelLoad(model=model, in_flight=load.in_flight_by_tag.get(model, 0),
                                     queued=load.queued_by_tag.get(model, 0), throughput=_throughput(tp))
                  for model, tp in snap.throughput.get(name, {}).items()]
        services.append(mesh_pb2.ServiceLoad(
            service=name, slots=load.slots, in_flight=load.in_flight, queued=load.queued, max_queue=load.max_queue,
            free_slots=load.slots - load.in_flight, open_streams=load.open_streams, models=models))
    return mesh_pb2.LoadReport(node_id=node_id, sequence=snap.sequence, unix_ms=snap.unix_ms,
                               services=services, draining=snap.draining)


def _throughput(tp: Throughput) -> mesh_pb2.Throughput:
    return mesh_pb2.Throughput(unit=tp.unit, value=tp.value, samples=tp.samples)
