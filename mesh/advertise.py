"""Announcing a node over mDNS, on interfaces chosen so that virtual bridges never are by default."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from lanai.mesh import API_VERSION
from lanai.mesh.discovery import SERVICE_TYPE

log = logging.getLogger(__name__)
VIRTUAL_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "vmnet", "vboxnet", "cni", "flannel", "cali",
                    "weave", "podman", "lxc", "lxd", "tun", "tap", "utun", "zt", "tailscale", "wg", "awdl", "llw")


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[str, ...]


def local_interfaces() -> list[Interface]:
    return [Interface(a.nice_name, tuple(str(ip.ip) for ip in a.ips if isinstance(ip.ip, str)))
            for a in ifaddr.get_adapters()]


def choose_addresses(interfaces: Iterable[Interface], *, interface: str = "", advertise_address: str = "") -> list[str]:
    """The IPv4 addresses to announce and listen for mDNS on. Pinned by `advertise_address`
    or `interface`; otherwise every interface that is not loopback or virtual."""
    if advertise_address:
        ipaddress.ip_address(advertise_address)  # raises ValueError with the bad value
        return [advertise_address]
    chosen = [i for i in interfaces if (i.name == interface if interface else not i.name.startswith(VIRTUAL_PREFIXES))]
    if interface and not chosen:
        raise ValueError(f"no network interface named {interface!r}")
    addresses = [a for i in chosen for a in i.addresses if not ipaddress.ip_address(a).is_loopback]
    if not addresses:
        raise ValueError("no LAN address to announce the node on; pin one with --advertise-address or --interface")
    return addresses


def open_zeroconf(addresses: Sequence[str]) -> AsyncZeroconf:
    """Zeroconf bound to these addresses only (its default is every interface of the machine)."""
    return AsyncZeroconf(interfaces=list(addresses), ip_version=IPVersion.V4Only)


def service_info(node_id: str, addresses: Sequence[str], port: int, services: Sequence[str],
                 metrics_port: int, *, mesh: str = "", mesh_port: int = 0) -> ServiceInfo:
    """SRV carries the client gRPC port; TXT only static facts (live load travels over WatchLoad):
    in a secure mesh also the mesh id (routers skip other meshes' nodes without calling them) and
    the mesh port members call."""
    properties = {"api": API_VERSION, "id": node_id, "services": ",".join(services), "metrics": str(metrics_port)}
    if mesh:
        properties |= {"mesh": mesh, "peer": str(mesh_port)}
    return ServiceInfo(SERVICE_TYPE, f"{node_id}.{SERVICE_TYPE}", port=port,
                       addresses=[socket.inet_aton(a) for a in addresses], server=f"{node_id}.local.",
                       properties=properties)


async def advertise(zc: AsyncZeroconf, info: ServiceInfo) -> None:
    # The instance name is the node id: re-registering after a restart takes the same name.
    await (await zc.async_register_service(info, cooperating_responders=True))
    log.info("mDNS: announced %s on %s port %d", info.name, ", ".join(info.parsed_addresses()), info.port)
