"""The node process: hosts services behind admission control with health, reflection,
Node/Describe + WatchLoad and /metrics, and drains gracefully."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh import __version__, catalog, identity, metrics, registry
from lanai.mesh.hardware import detect
from lanai.mesh.doors import Doors
from lanai.mesh.drain import OpenStreams
from lanai.mesh.load import LoadBoard
from lanai.mesh.mesh_service import MeshServicer, RoutingInterceptor
from lanai.mesh.presence import MeshConfig, MeshPresence, is_loopback
from lanai.mesh.router import ACCEPT_KEEPALIVE, Router
from lanai.mesh.node_service import NodeServicer
from lanai.mesh.security.auth import AuthInterceptor
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security.enrol import open_trust, renew_through_issuer
from lanai.mesh.security.membership import MembershipServicer
from lanai.mesh.security.trust import Trust
from lanai.mesh.status import LanaiInterceptor
from lanai.services import models as model_cache
from lanai.services.core.hosted import HostedService
from lanai.services.core.privacy import keep_on_premises

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    home: Path = field(default_factory=model_cache.default_home)
    """Model cache and node identity ($LANAI_HOME, else ~/.cache/lanai)."""
    services: tuple[str, ...] = field(default_factory=registry.names)
    """The services hosted (lanai.mesh.registry names); none: a router only."""
    host: str = "0.0.0.0"
    port: int = 50051
    """Client gRPC port (TLS and API keys in a secure mesh); 0 picks a free one."""
    mesh_port: int = 50052
    """Members' gRPC port (mutual TLS with mesh certificates only); 0 picks one. Unused when insecure."""
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 9464
    """Prometheus /metrics port; 0 picks a free one, None disables it."""
    http_port: int | None = field(default_factory=lambda: _port_from_env("LANAI_HTTP_PORT", 8080))
    """OpenAI-compatible HTTP API and web console (HTTPS when the client port has TLS); 0 picks
    a free one, None turns it off (default $LANAI_HTTP_PORT, else 8080; -1 there means off)."""
    wyoming_port: int | None = None
    """Wyoming server for Home Assistant (e.g. 10300), announced as _wyoming._tcp over mDNS; 0
    picks a free one, None (the default) turns it off."""
    wyoming_allow: tuple[str, ...] = ()
    """Networks the Wyoming door accepts connections from (it has no keys); empty: loopback only
    on a node that requires API keys, else the premises' private networks."""
    node_id: str = ""
    """Empty: the id stored in `home` (made on first start)."""
    max_message_bytes: int = 64 * 1024 * 1024
    """Largest request message; larger ones get RESOURCE_EXHAUSTED from gRPC."""
    grace_s: float = 30.0
    """On shutdown, how long in-flight work may take to finish."""
    configs: Mapping[str, Any] = field(default_factory=dict)
    """Service name -> its config (the service's config dataclass); a service missing here runs
    on its defaults (see `config_of`)."""
    mesh: MeshConfig = field(default_factory=MeshConfig)
    """Router, discovery and announcement; the default routes and joins the LAN over mDNS (tests
    and embedders pass presence.LONE)."""
    security: SecurityConfig = field(default_factory=SecurityConfig)
    """Mesh membership, TLS and client keys (the default: a secure node that needs keys)."""

    def config_of(self, service: str) -> Any:
        """The config `service` runs with: the one given, else its defaults."""
        given = self.configs.get(service)
        return given if given is not None else registry.entry(service).config()


class Node:
    """A started node. Use `await Node.start(config)`, then `await node.stop()`."""

    def __init__(self, config: NodeConfig, node_id: str, server: grpc.aio.Server, port: int, mesh_port: int,
                 metrics_server: metrics.MetricsServer | None, board: LoadBoard, services: list[HostedService],
                 health: HealthServicer, presence: MeshPresence, trust: Trust | None) -> None:
        self.config, self.node_id, self.port, self.mesh_port = config, node_id, port, mesh_port
        self.trust = trust
        self.metrics_port = metrics_server.port if metrics_server else 0
        self._metrics_server = metrics_server
        self.services = services
        self.presence = presence
        self._server, self._board, self._health = server, board, health
        self.streams: OpenStreams | None = None
        self.doors: Doors | None = None
        self.http_port = 0
        self.wyoming_port = 0

    @property
    def router(self) -> Router | None:
        return self.presence.router

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        keep_on_premises()
        os.environ["HF_HUB_OFFLINE"] = "1"  # serving never downloads: models come from the cache or a path
        unknown = set(config.services) - set(registry.names())
        if unknown or not (config.services or config.mesh.router):
            raise ValueError(f"unknown service(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                             f"this node can host: {', '.join(registry.names())}")
        node_id = config.node_id or identity.node_id(config.home)
        trust = await _open_trust(config, node_id)
        presence = MeshPresence(config.mesh, node_id, trust)
        board = LoadBoard(node_id)
        services = await asyncio.to_thread(_load_services, config, board)
        for service in services:
            await service.measure()  # seeds the throughput placement weighs this node by
        metrics_server = None
        if config.metrics_port is not None:
            metrics_server = metrics.start_metrics_server(config.metrics_host, config.metrics_port,
                                                          token=config.security.metrics_token)
            metrics_server.ca_pem = trust.ca_pem if trust is not None else b""
            if presence.router is not None:
                metrics_server.sd = presence.router.sd_targets
                presence.router.metrics_port = metrics_server.port
        metrics_port = metrics_server.port if metrics_server else 0
        role = "node" if services else "router"
        metrics.NODE_INFO.labels(node_id, __version__, role).set(1)

        size = config.max_message_bytes
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if trust is not None:  # outermost: nothing runs for a caller it refuses
            interceptors.append(AuthInterceptor(trust, require_keys=config.security.require_keys))
        lanai_interceptor = LanaiInterceptor(node_id, routes=presence.router is not None)
        interceptors.append(lanai_interceptor)
        if presence.router is not None:
            interceptors.append(RoutingInterceptor(presence.router))
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0), *ACCEPT_KEEPALIVE])
        for service in services:
            service.register(server)
        node_servicer = NodeServicer(board, detect(), services, metrics_port, trust=trust)
        mesh_pb2_grpc.add_NodeServicer_to_server(node_servicer, server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        names = [s.grpc_service for s in services] + [
            mesh_pb2.DESCRIPTOR.services_by_name["Node"].full_name, health_pb2.DESCRIPTOR.services_by_name[
                "Health"].full_name, reflection.SERVICE_NAME]
        if presence.router is not None:
            mesh_pb2_grpc.add_MeshServicer_to_server(MeshServicer(presence.router), server)
            names = sorted(set(names) | set(catalog.grpc_services())) + [mesh_pb2.DESCRIPTOR.services_by_name["Mesh"].full_name]
        mesh_port = 0
        if trust is not None:
            membership = MembershipServicer(trust, config.mesh_port)
            mesh_pb2_grpc.add_MembershipServicer_to_server(membership, server)
            names.append(mesh_pb2.DESCRIPTOR.services_by_name["Membership"].full_name)
            mesh_port = _bind(server, config.host, config.mesh_port, trust.server_credentials(require_client_auth=True))
            membership.mesh_port = mesh_port
        reflection.enable_server_reflection(names, server)
        client_tls = trust.server_credentials(require_client_auth=False) \
            if trust is not None and config.security.client_tls else None
        port = _bind(server, config.host, config.port, client_tls)
        node_servicer.client_port = port
        await server.start()
        for name in [""] + [s.grpc_service for s in services]:
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if trust is not None:
            trust.start()
            _write_endpoint(trust, config, port, mesh_port, metrics_port)
        await presence.start(config.host, port, [s.name for s in services], metrics_port, mesh_port)
        log.info("%s %s serving %s on %s:%d (%s; mesh port %s; metrics on port %s)", role, node_id,
                 ", ".join(config.services) or "the mesh", config.host, port, _door(config, trust),
                 mesh_port or "none", metrics_port or "off")
        node = cls(config, node_id, server, port, mesh_port, metrics_server, board, services, health, presence,
                   trust)
        node.streams = lanai_interceptor.streams
        try:
            node.doors = await Doors.open(node)
        except BaseException:
            await node.stop(grace_s=0)
            raise
        node.http_port, node.wyoming_port = node.doors.http_port, node.doors.wyoming_port
        return node

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: report NOT_SERVING and draining, refuse new work, let in-flight work finish
        within the grace period, then close."""
        grace = self.config.grace_s if grace_s is None else grace_s
        log.info("node %s draining (grace %.0f s)", self.node_id, grace)
        await self.presence.leave()
        if self.doors is not None:  # HTTP finishes its requests; Wyoming's connections end with `unavailable`
            await self.doors.close()
        await self._health.enter_graceful_shutdown()
        self._board.drain()
        if self.streams is not None and self.streams.open:
            log.info("node %s: moving %d open stream(s) to other nodes", self.node_id, self.streams.open)
        if self.streams is not None:
            self.streams.move_all()  # routers move them; only unary work and direct clients' streams use the grace
        await self._server.stop(grace)
        await self.presence.close()
        if self.trust is not None:
            await self.trust.close()
        for service in self.services:
            service.admission.shutdown()
            service.close()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        log.info("node %s stopped", self.node_id)

    async def wait(self) -> None:
        await self._server.wait_for_termination()


def _port_from_env(name: str, default: int) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"${name} must be a port number (or -1 for off), not {text!r}") from None
    return None if port < 0 else port


def _load_services(config: NodeConfig, board: LoadBoard) -> list[HostedService]:
    """Load models (slow: run off the event loop) and build the hosted services."""
    return [registry.entry(name).build(config.config_of(name), config.home, board) for name in config.services]


async def _open_trust(config: NodeConfig, node_id: str) -> Trust | None:
    security = config.security
    loopback = is_loopback(config.host)
    if security.insecure:
        log.warning("node %s runs --insecure: plaintext, no mesh membership, no API keys. Any device on the network "
                    "can read its traffic, call it and join it. Use this only on a lab network", node_id)
        return None
    if not security.client_tls and not loopback:
        raise ValueError(f"a client port without TLS is only allowed on loopback, not {config.host}; use --insecure "
                         "to run a whole lab mesh in plaintext")
    trust = await open_trust(config.home, node_id, security, listen=config.host)
    if not trust.holds_ca:
        trust.renew_from = lambda csr: renew_through_issuer(trust.dir, trust, csr)
    if not security.require_keys and not loopback:
        log.warning("node %s needs no API key: anyone who can reach %s:%d may use this mesh", node_id, config.host,
                    config.port)
    return trust


def _bind(server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None) -> int:
    address = f"{_bracket(host)}:{port}"
    bound = server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
    if bound == 0:
        raise OSError(f"could not bind gRPC port {host}:{port}; is another node using it?")
    return bound


def _door(config: NodeConfig, trust: Trust | None) -> str:
    if trust is None:
        return "INSECURE: plaintext, open"
    tls = "TLS" if config.security.client_tls else "plaintext"
    return f"mesh {trust.short_id}, clients {tls}, {'API keys required' if config.security.require_keys else 'open'}"


def _write_endpoint(trust: Trust, config: NodeConfig, port: int, mesh_port: int, metrics_port: int) -> None:
    """Where this node listens, for `lanai mesh invite` on the same machine (it puts it in tokens)."""
    trust.dir.write(trust.dir.endpoint, json.dumps({
        "node_id": trust.node_id, "host": config.host, "port": port, "mesh_port": mesh_port,
        "metrics_port": metrics_port, "advertise_address": config.mesh.advertise_address,
        "interface": config.mesh.interface}).encode())


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
