"""A process's part in the mesh: its router (if it runs one), how it finds nodes, and its
mDNS announcement."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from lanai.mesh.advertise import advertise, choose_addresses, local_interfaces, open_zeroconf, service_info
from lanai.mesh.discovery import Discovery, DnsDiscovery, MdnsDiscovery, StaticDiscovery
from lanai.mesh.placement import DEFAULT_POLICY
from lanai.mesh.premises import DEFAULT_ALLOWED
from lanai.mesh.router import Router, RouterConfig
from lanai.mesh.security.trust import Trust

log = logging.getLogger(__name__)
DISCOVERY = ("mdns", "static", "dns", "ray", "none")
"""Backends; a router may combine them, comma-separated (`mdns,ray`: Macs on the LAN and a Ray cluster)."""


@dataclass(frozen=True)
class MeshConfig:
    router: bool = True
    """Run a router in this process, so clients may call any node."""
    policy: str = DEFAULT_POLICY
    allow: tuple[str, ...] = DEFAULT_ALLOWED
    """The premises policy: networks the router may send work to."""
    discovery: str = "mdns"
    """"mdns", "static", "dns", "ray", several of them comma-separated, or "none"."""
    peers: tuple[str, ...] = ()
    """host:port of other nodes, for static discovery."""
    dns_name: str = ""
    """NAME[:PORT] whose A/AAAA records are the nodes, for dns discovery (PORT: the nodes' mesh port,
    50052, by default; their client port, 50051, when --insecure)."""
    dns_server: str = ""
    """IP[:PORT] of the resolver for dns discovery; empty for the system's."""
    ray_address: str = "auto"
    """The Ray cluster for ray discovery: "auto" (this machine is a Ray node), ray://HEAD:10001."""
    ray_namespace: str = "lanai"
    """The Ray namespace whose lanai actors ray discovery follows."""
    interface: str = ""
    """Announce and browse on this interface only."""
    advertise_address: str = ""
    """Announce and browse on this address only (overrides interface)."""
    heartbeat_ms: int = 500

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(b.strip() for b in self.discovery.split(",") if b.strip() and b.strip() != "none")

    def validate(self) -> None:
        unknown = [b for b in self.discovery.split(",") if b.strip() not in DISCOVERY]
        if unknown or ("none" in self.discovery and self.backends):
            raise ValueError(f"unknown discovery {self.discovery!r}; choose from {', '.join(DISCOVERY)}, or several "
                             "comma-separated (none alone)")
        if "static" in self.backends and not self.peers:
            raise ValueError("static discovery needs --peers host:port,...")
        if "dns" in self.backends and not self.dns_name:
            raise ValueError("dns discovery needs --dns NAME[:PORT] (e.g. a Kubernetes headless Service)")


LONE = MeshConfig(router=False, discovery="none")
"""A node on its own: no router, nothing announced or browsed (tests, a program embedding a node)."""


class MeshPresence:
    def __init__(self, config: MeshConfig, node_id: str, trust: Trust | None = None) -> None:
        config.validate()
        self.config = config
        self.node_id = node_id
        self.trust = trust
        self.router = Router(node_id, RouterConfig(config.policy, config.allow, config.heartbeat_ms), trust=trust) \
            if config.router else None
        self._discoveries: list[Discovery] = []
        self._zeroconf: AsyncZeroconf | None = None
        self._addresses: list[str] = []

    async def start(self, host: str, port: int, services: Sequence[str], metrics_port: int,
                    mesh_port: int = 0) -> None:
        """Join the mesh once the gRPC server is listening on `port` (clients) and `mesh_port`
        (members; 0 for an --insecure node, whose members call `port`)."""
        cfg, router = self.config, self.router
        member_port = mesh_port or port
        if router is not None and services:
            local = "127.0.0.1" if host in ("0.0.0.0", "::", "127.0.0.1", "localhost") else host
            router.found(f"{local}:{member_port}", "local", self.node_id)
            # Ready means routable: the router has described its own node and follows its load.
            await router.wait_until_up(f"{local}:{member_port}", timeout=30)
        backends = cfg.backends
        if "static" in backends and router is not None:
            self._discoveries.append(StaticDiscovery(cfg.peers))
        if "dns" in backends and router is not None:
            name, _, dns_port = cfg.dns_name.partition(":")
            default = 50051 if self.trust is None else 50052
            self._discoveries.append(DnsDiscovery(name, int(dns_port or default), server=cfg.dns_server))
        if "ray" in backends and router is not None:
            from lanai.mesh.raycluster.discovery import RayDiscovery  # Ray is an optional extra

            self._discoveries.append(RayDiscovery(cfg.ray_address, cfg.ray_namespace))
        if "mdns" in backends:
            # A node listening on loopback is reachable only there: announce it only there.
            pinned = cfg.advertise_address or (host if is_loopback(host) and not cfg.interface else "")
            addresses = choose_addresses(local_interfaces(), interface=cfg.interface, advertise_address=pinned)
            self._zeroconf, self._addresses = open_zeroconf(addresses), addresses
            if services:
                mesh = self.trust.short_id if self.trust is not None else ""
                await advertise(self._zeroconf, service_info(self.node_id, addresses, port, services, metrics_port,
                                                             mesh=mesh, mesh_port=mesh_port))
            if router is not None:
                self._discoveries.append(MdnsDiscovery(self._zeroconf))
        if router is not None:
            for discovery in self._discoveries:
                await discovery.start(router.found, router.gone)

    async def announce(self, service_type: str, instance: str, port: int,
                       properties: dict[str, str] | None = None) -> bool:
        """Announce another service of this process (the Wyoming door) on the mesh's own mDNS
        instance, so on the same interfaces; False where this node does not use mDNS."""
        if self._zeroconf is None:
            return False
        await advertise(self._zeroconf, ServiceInfo(
            service_type, f"{instance}.{service_type}", port=port, addresses=[socket.inet_aton(a) for a in self._addresses],
            server=f"{self.node_id}.local.", properties=properties or {}))
        return True

    async def leave(self) -> None:
        """Say goodbye on mDNS and stop discovering (first step of a shutdown)."""
        for discovery in self._discoveries:
            await discovery.stop()
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()

    async def close(self) -> None:
        if self.router is not None:
            await self.router.close()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
