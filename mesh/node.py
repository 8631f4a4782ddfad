"""The node process: hosts services behind admission control with health, reflection,
Node/Describe + WatchLoad and /metrics, and drains gracefully."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh import __version__, metrics
from lanai.mesh.hardware import detect
from lanai.mesh.hosted import HostedService
from lanai.mesh.load import LoadBoard
from lanai.mesh.node_service import NodeServicer
from lanai.mesh.status import LanaiInterceptor
from lanai.services import models as model_cache
from lanai.services.speech.config import SpeechConfig

log = logging.getLogger(__name__)
KNOWN_SERVICES = ("speech",)


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    """Model cache and node identity ($LANAI_HOME)."""
    services: tuple[str, ...] = ("speech",)
    host: str = "0.0.0.0"
    port: int = 50051
    """gRPC port; 0 picks a free one."""
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 9464
    """Prometheus /metrics port; 0 picks a free one, None disables it."""
    node_id: str = ""
    """Empty: the id stored in `home` (made on first start)."""
    max_message_bytes: int = 64 * 1024 * 1024
    """Largest request message; larger ones get RESOURCE_EXHAUSTED from gRPC."""
    grace_s: float = 30.0
    """On shutdown, how long in-flight work may take to finish."""
    speech: SpeechConfig = field(default_factory=SpeechConfig)


def stored_node_id(home: Path) -> str:
    """The id this machine's node keeps across restarts (made once, then read back)."""
    path = home / "node-id"
    try:
        if node_id := path.read_text().strip():
            return node_id
    except FileNotFoundError:
        pass
    node_id = f"{socket.gethostname().split('.')[0][:24]}-{secrets.token_hex(3)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(node_id + "\n")
    return node_id


class Node:
    """A started node. Use `await Node.start(config)`, then `await node.stop()`."""

    def __init__(self, config: NodeConfig, node_id: str, server: grpc.aio.Server, port: int,
                 metrics_port: int, board: LoadBoard, services: list[HostedService], health: HealthServicer) -> None:
        self.config, self.node_id, self.port, self.metrics_port = config, node_id, port, metrics_port
        self.services = services
        self._server, self._board, self._health = server, board, health

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        os.environ["HF_HUB_OFFLINE"] = "1"  # serving never downloads: models come from the cache or a path
        unknown = set(config.services) - set(KNOWN_SERVICES)
        if unknown or not config.services:
            raise ValueError(f"unknown service(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                             f"this node can host: {', '.join(KNOWN_SERVICES)}")
        node_id = config.node_id or stored_node_id(config.home)
        board = LoadBoard(node_id)
        services = await asyncio.to_thread(_load_services, config, board)
        metrics_port = 0
        if config.metrics_port is not None:
            metrics_port = metrics.start_metrics_server(config.metrics_host, config.metrics_port)
        metrics.NODE_INFO.labels(node_id, __version__, "node").set(1)

        size = config.max_message_bytes
        server = grpc.aio.server(interceptors=[LanaiInterceptor(node_id)], options=[
            ("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0)])
        for service in services:
            service.register(server)
        mesh_pb2_grpc.add_NodeServicer_to_server(NodeServicer(board, detect(), services, metrics_port), server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        names = [s.grpc_service for s in services] + [
            mesh_pb2.DESCRIPTOR.services_by_name["Node"].full_name, health_pb2.DESCRIPTOR.services_by_name[
                "Health"].full_name, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server)
        port = server.add_insecure_port(f"{_bracket(config.host)}:{config.port}")
        if port == 0:
            raise OSError(f"could not bind gRPC port {config.host}:{config.port}; is another node using it?")
        await server.start()
        for name in [""] + [s.grpc_service for s in services]:
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("node %s serving %s on %s:%d (metrics on port %s)", node_id, ", ".join(config.services),
                 config.host, port, metrics_port or "off")
        return cls(config, node_id, server, port, metrics_port, board, services, health)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: report NOT_SERVING and draining, refuse new work, let in-flight work finish
        within the grace period, then close."""
        grace = self.config.grace_s if grace_s is None else grace_s
        log.info("node %s draining (grace %.0f s)", self.node_id, grace)
        await self._health.enter_graceful_shutdown()
        self._board.drain()
        await self._server.stop(grace)
        for service in self.services:
            service.admission.shutdown()
        log.info("node %s stopped", self.node_id)

    async def wait(self) -> None:
        await self._server.wait_for_termination()


def _load_services(config: NodeConfig, board: LoadBoard) -> list[HostedService]:
    """Load models (slow: run off the event loop) and build the hosted services."""
    services: list[HostedService] = []
    if "speech" in config.services:
        from lanai.services.speech.engine import SpeechEngine
        from lanai.services.speech.servicer import SpeechService

        resolved = [model_cache.resolve(config.home, spec, "speech") for spec in config.speech.models]
        services.append(SpeechService(SpeechEngine(resolved, config.speech), board))
    return services


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
