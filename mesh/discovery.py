"""Finding nodes: `static` (a list of addresses) and `mdns` (zeroconf on the LAN), behind one
small interface. Discovery only says where nodes are; the router checks them itself."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Protocol

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)
SERVICE_TYPE = "_lanai._tcp.local."
Found = Callable[[str, str, str, str], None]
"""found(address "ip:port" the router dials, source, node_id or "", mesh id or "")"""
Gone = Callable[[str], None]
"""gone(address)"""


class Discovery(Protocol):
    async def start(self, found: Found, gone: Gone) -> None: ...

    async def stop(self) -> None: ...


class StaticDiscovery:
    """A fixed list of host:port peers (networks without multicast, compose, tests). Host
    names are resolved, and retried until they resolve (containers start in any order)."""

    def __init__(self, peers: Sequence[str], retry_s: float = 2.0) -> None:
        self._peers = [p.strip() for p in peers if p.strip()]
        for peer in self._peers:
            host, _, port = peer.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"peer {peer!r} is not host:port")
        self._retry_s = retry_s
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, found: Found, gone: Gone) -> None:
        self._tasks = [asyncio.create_task(self._resolve(peer, found)) for peer in self._peers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _resolve(self, peer: str, found: Found) -> None:
        host, _, port = peer.rpartition(":")
        host = host.strip("[]")
        while True:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
                ip = str(infos[0][4][0])
                found(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", "static", "", "")
                return
            except OSError as exc:
                log.warning("peer %s does not resolve yet (%s); retrying in %.0f s", peer, exc, self._retry_s)
                await asyncio.sleep(self._retry_s)


class MdnsDiscovery:
    """Browses `_lanai._tcp.local.` with python-zeroconf bound to the given addresses only."""

    def __init__(self, zeroconf: AsyncZeroconf) -> None:
        self._zc = zeroconf
        self._browser: AsyncServiceBrowser | None = None
        self._addresses: dict[str, str] = {}  # mDNS instance name -> address
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self, found: Found, gone: Gone) -> None:
        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                if address := self._addresses.pop(name, None):
                    gone(address)
                return
            task = asyncio.ensure_future(self._resolve(name, found))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[on_change])

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
        for task in self._pending:
            task.cancel()

    async def _resolve(self, name: str, found: Found) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, 3000) or not info.port:
            log.info("mDNS: %s did not answer with an address", name)
            return
        addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses(IPVersion.V6Only)
        if not addresses:
            return
        ip = addresses[0]
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        # SRV names the client port; members talk on the mesh port the TXT record names.
        port = int(props["peer"]) if props.get("peer", "").isdigit() else info.port
        address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        self._addresses[name] = address
        found(address, "mdns", props.get("id", ""), props.get("mesh", ""))


class DnsDiscovery:
    """Every address a DNS name resolves to, followed as it changes: a Kubernetes headless
    Service lists one A record per ready pod. `server` pins a resolver (tests, split DNS)."""

    def __init__(self, name: str, port: int, *, server: str = "", interval_s: float = 2.0) -> None:
        import dns.asyncresolver  # only this backend needs dnspython

        self._name, self._port, self._interval = name, port, interval_s
        self._resolver = dns.asyncresolver.Resolver(configure=not server)
        if server:
            host, _, server_port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            self._resolver.nameservers = [host or server]
            self._resolver.port = int(server_port) if server_port else 53
        self._resolver.lifetime = 2.0
        self._known: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self, found: Found, gone: Gone) -> None:
        self._task = asyncio.create_task(self._follow(found, gone))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def resolve(self) -> set[str]:
        """The name's addresses as host:port now (empty when it does not exist yet)."""
        import dns.exception
        import dns.resolver

        addresses: set[str] = set()
        for record_type in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(self._name, record_type)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                continue
            except dns.exception.Timeout:
                log.warning("DNS: %s timed out; keeping the nodes already known", self._name)
                return set(self._known)
            addresses |= {f"[{r.to_text()}]:{self._port}" if record_type == "AAAA" else f"{r.to_text()}:{self._port}"
                          for r in answer}
        return addresses

    async def _follow(self, found: Found, gone: Gone) -> None:
        while True:
            current = await self.resolve()
            for address in sorted(current - self._known):
                found(address, "dns", "", "")
            for address in sorted(self._known - current):
                gone(address)
            self._known = current
            await asyncio.sleep(self._interval)
