"""The doors people already use, on a routing node: an OpenAI-compatible HTTP API with a web
console, and a Wyoming server for Home Assistant. Each is a client of the node's own gRPC port,
so placement, admission, keys and errors are the mesh's own."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lanai.mesh.doors.upstream import Upstream

if TYPE_CHECKING:
    from lanai.mesh.node import Node

log = logging.getLogger(__name__)
WYOMING_SERVICE = "_wyoming._tcp.local."
"""What Home Assistant browses for."""


class Server(Protocol):
    async def stop(self) -> None: ...


@dataclass
class Doors:
    upstream: Upstream
    http: Server | None = None
    http_port: int = 0
    wyoming: Server | None = None
    wyoming_port: int = 0

    @classmethod
    async def open(cls, node: Node) -> Doors:
        config = node.config
        doors = cls(Upstream(config.host, node.port, node.mesh_port, node.trust, routes=node.router is not None))
        try:
            if config.http_port is not None:
                from lanai.mesh.doors import console, openai_audio, openai_text
                from lanai.mesh.doors.http import Door, HttpServer
                door = Door(doors.upstream, node.trust, config.security.require_keys)
                server = HttpServer(openai_text.routes(door) + openai_audio.routes(door) + console.routes(door),
                                    config.host, config.http_port, config.max_message_bytes, node.trust,
                                    tls=node.trust is not None and config.security.client_tls)
                await server.start()
                doors.http, doors.http_port = server, server.port
                log.info("node %s: OpenAI-compatible API and console on %s://%s:%d/", node.node_id,
                         "https" if node.trust is not None and config.security.client_tls else "http",
                         config.host, server.port)
            if config.wyoming_port is not None:
                await doors._open_wyoming(node)
        except BaseException:
            await doors.close()
            raise
        return doors

    async def _open_wyoming(self, node: Node) -> None:
        from lanai.mesh.doors.wyoming_door import MAX_PAYLOAD_BYTES, WyomingServer
        from lanai.mesh.premises import Premises
        config = node.config
        assert config.wyoming_port is not None
        keyed = node.trust is not None and config.security.require_keys
        allow = wyoming_allow(config.wyoming_allow, keyed=keyed)
        premises = Premises.parse(allow)
        server = WyomingServer(self.upstream, config.host, config.wyoming_port, allow=premises,
                               max_payload=min(config.max_message_bytes, MAX_PAYLOAD_BYTES))
        await server.start()
        self.wyoming, self.wyoming_port = server, server.port
        announced = False
        if any(not net.is_loopback for net in premises.networks):  # else Home Assistant elsewhere could not use it
            try:
                announced = await node.presence.announce(WYOMING_SERVICE, f"lanai-{node.node_id}", server.port)
            except Exception as exc:  # noqa: BLE001 - the door works without the announcement
                log.warning("node %s: could not announce the Wyoming door over mDNS (%s); add it in Home Assistant "
                            "by host and port", node.node_id, exc)
        log.info("node %s: Wyoming (Home Assistant) on %s:%d%s, accepting %s", node.node_id, config.host,
                 server.port, ", announced as " + WYOMING_SERVICE if announced else " (not announced)",
                 ", ".join(allow))
        if keyed and config.wyoming_allow:
            log.warning("node %s: Wyoming has no API keys: every device in %s can use this mesh's speech and voice "
                        "through port %d", node.node_id, ", ".join(allow), server.port)

    async def close(self) -> None:
        for door in (self.http, self.wyoming):
            if door is not None:
                await door.stop()
        await self.upstream.close()


LOOPBACK = ("127.0.0.0/8", "::1/128")


def wyoming_allow(asked: tuple[str, ...], *, keyed: bool) -> tuple[str, ...]:
    """Who may connect to the Wyoming door, which has no keys: whom the operator named; else only
    this machine on a node that requires keys (naming Home Assistant's address is a decision),
    else the premises' private networks."""
    from lanai.mesh.premises import DEFAULT_ALLOWED
    return asked or (LOOPBACK if keyed else DEFAULT_ALLOWED)
