"""The doors people already use, on a routing node: an OpenAI-compatible HTTP API with a web
console (a Wyoming server for Home Assistant is next). Each is a client of the node's own gRPC
port, so placement, admission, keys and errors are the mesh's own."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lanai.mesh.doors.upstream import Upstream

if TYPE_CHECKING:
    from lanai.mesh.node import Node

log = logging.getLogger(__name__)


class Server(Protocol):
    async def stop(self) -> None: ...


@dataclass
class Doors:
    upstream: Upstream
    http: Server | None = None
    http_port: int = 0

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
        except BaseException:
            await doors.close()
            raise
        return doors

    async def close(self) -> None:
        for door in (self.http,):
            if door is not None:
                await door.stop()
        await self.upstream.close()
