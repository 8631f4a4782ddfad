"""The node process: hosts services behind admission control with health, reflection,
Node/Describe + WatchLoad and /metrics, and drains gracefully."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh import __version__, identity, metrics
from lanai.mesh.hardware import detect
from lanai.mesh.hosted import HostedService
from lanai.mesh.catalog import GRPC_SERVICES
from lanai.mesh.load import LoadBoard
from lanai.mesh.mesh_service import MeshServicer, RoutingInterceptor
from lanai.mesh.presence import MeshConfig, MeshPresence
from lanai.mesh.router import ACCEPT_KEEPALIVE, Router
from lanai.mesh.node_service import NodeServicer
from lanai.mesh.status import LanaiInterceptor
from lanai.services import models as model_cache
from lanai.services.language.config import LanguageConfig
from lanai.services.speech.config import SpeechConfig
from lanai.services.vision.config import VisionConfig

log = logging.getLogger(__name__)
KNOWN_SERVICES = ("speech", "vision", "language")


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
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    """Router, discovery and announcement; the default is a lone node (the CLI joins the mesh)."""


class Node:
    """A started node. Use `await Node.start(config)`, then `await node.stop()`."""

    def __init__(self, config: NodeConfig, node_id: str, server: grpc.aio.Server, port: int,
                 metrics_server: metrics.MetricsServer | None, board: LoadBoard, services: list[HostedService],
                 health: HealthServicer, presence: MeshPresence) -> None:
        self.config, self.node_id, self.port = config, node_id, port
        self.metrics_port = metrics_server.port if metrics_server else 0
        self._metrics_server = metrics_server
        self.services = services
        self.presence = presence
        self._server, self._board, self._health = server, board, health

    @property
    def router(self) -> Router | None:
        return self.presence.router

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        os.environ["HF_HUB_OFFLINE"] = "1"  # serving never downloads: models come from the cache or a path
        unknown = set(config.services) - set(KNOWN_SERVICES)
        if unknown or not (config.services or config.mesh.router):
            raise ValueError(f"unknown service(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                             f"this node can host: {', '.join(KNOWN_SERVICES)}")
        node_id = config.node_id or identity.node_id(config.home)
        presence = MeshPresence(config.mesh, node_id)
        board = LoadBoard(node_id)
        services = await asyncio.to_thread(_load_services, config, board)
        for service in services:
            await service.measure()  # seeds the throughput placement weighs this node by
        metrics_server = None
        if config.metrics_port is not None:
            metrics_server = metrics.start_metrics_server(config.metrics_host, config.metrics_port)
            if presence.router is not None:
                metrics_server.sd = presence.router.sd_targets
                presence.router.metrics_port = metrics_server.port
        metrics_port = metrics_server.port if metrics_server else 0
        role = "node" if services else "router"
        metrics.NODE_INFO.labels(node_id, __version__, role).set(1)

        size = config.max_message_bytes
        interceptors: list[grpc.aio.ServerInterceptor] = [LanaiInterceptor(node_id, routes=presence.router is not None)]
        if presence.router is not None:
            interceptors.append(RoutingInterceptor(presence.router))
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0), *ACCEPT_KEEPALIVE])
        for service in services:
            service.register(server)
        mesh_pb2_grpc.add_NodeServicer_to_server(NodeServicer(board, detect(), services, metrics_port), server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        names = [s.grpc_service for s in services] + [
            mesh_pb2.DESCRIPTOR.services_by_name["Node"].full_name, health_pb2.DESCRIPTOR.services_by_name[
                "Health"].full_name, reflection.SERVICE_NAME]
        if presence.router is not None:
            mesh_pb2_grpc.add_MeshServicer_to_server(MeshServicer(presence.router), server)
            names = sorted(set(names) | set(GRPC_SERVICES)) + [mesh_pb2.DESCRIPTOR.services_by_name["Mesh"].full_name]
        reflection.enable_server_reflection(names, server)
        port = server.add_insecure_port(f"{_bracket(config.host)}:{config.port}")
        if port == 0:
            raise OSError(f"could not bind gRPC port {config.host}:{config.port}; is another node using it?")
        await server.start()
        for name in [""] + [s.grpc_service for s in services]:
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await presence.start(config.host, port, [s.name for s in services], metrics_port)
        log.info("%s %s serving %s on %s:%d (metrics on port %s)", role, node_id,
                 ", ".join(config.services) or "the mesh", config.host, port, metrics_port or "off")
        return cls(config, node_id, server, port, metrics_server, board, services, health, presence)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: report NOT_SERVING and draining, refuse new work, let in-flight work finish
        within the grace period, then close."""
        grace = self.config.grace_s if grace_s is None else grace_s
        log.info("node %s draining (grace %.0f s)", self.node_id, grace)
        await self.presence.leave()
        await self._health.enter_graceful_shutdown()
        self._board.drain()
        await self._server.stop(grace)
        await self.presence.close()
        for service in self.services:
            service.admission.shutdown()
            service.close()
        if self._metrics_server is not None:
            self._metrics_server.stop()
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
    if "vision" in config.services:
        from lanai.services.vision.engine import VisionEngine
        from lanai.services.vision.servicer import VisionService

        resolved = [model_cache.resolve(config.home, spec, "vision") for spec in config.vision.models]
        services.append(VisionService(VisionEngine(resolved, config.vision), board))
    if "language" in config.services:
        from lanai.services.language.engine import LanguageEngine
        from lanai.services.language.servicer import LanguageService

        resolved = [model_cache.resolve(config.home, spec, "language") for spec in config.language.models]
        services.append(LanguageService(LanguageEngine(resolved, config.language), board))
    return services


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
