"""The doors' way in: one gRPC channel from a door to its own node, so every HTTP or Wyoming
call goes through the same router, placement, admission control and error table as a gRPC
client's; and the mesh's model catalogue the doors answer `/v1/models` and `describe` from."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from lanai.api.language.v1 import language_pb2_grpc
from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2_grpc
from lanai.api.vision.v1 import vision_pb2_grpc
from lanai.api.voice.v1 import voice_pb2_grpc
from lanai.mesh.router import CHANNEL_OPTIONS
from lanai.mesh.security.trust import Trust

CATALOG_TTL_S = 1.0
"""How long a door reuses the mesh's model list before asking its router again."""
_ANY_HOST = {"", "0.0.0.0", "::", "[::]"}


@dataclass(frozen=True)
class MeshModel:
    name: str
    service: str
    """The lanai service that serves it ("language")."""
    task: str
    """What it does within the service ("generate", "embed"; "" where a service has one task)."""
    nodes: tuple[str, ...]
    """Ids of the nodes that serve it and take work now."""
    is_default: bool
    engine: str
    languages: tuple[str, ...] = ()
    """What a speech model understands or a voice speaks (the first node's answer)."""


class Upstream:
    """A channel to this process's own node. On a mesh member it dials the mesh port with the
    node's own certificate (the door has checked the caller's API key itself, with the same
    Trust); on an --insecure node it dials the plaintext client port."""

    def __init__(self, host: str, port: int, mesh_port: int, trust: Trust | None, *, routes: bool) -> None:
        self._host = "127.0.0.1" if host in _ANY_HOST else host.strip("[]")
        self._port, self._mesh_port, self._trust, self._routes = port, mesh_port, trust, routes
        self._channel: grpc.aio.Channel | None = None
        self._generation = -1
        self._catalog: tuple[float, list[MeshModel]] = (float("-inf"), [])
        self._replaced: list[grpc.aio.Channel] = []

    @property
    def channel(self) -> grpc.aio.Channel:
        trust = self._trust
        if self._channel is None or (trust is not None and trust.generation != self._generation):
            old = self._channel
            target = f"{_bracket(self._host)}:{self._mesh_port if trust is not None else self._port}"
            if trust is None:
                self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            else:  # a renewed certificate makes a new channel; calls on the old one finish on it
                self._channel = grpc.aio.secure_channel(target, trust.channel_credentials(), options=[
                    *CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", trust.node_id)])
                self._generation = trust.generation
            if old is not None:
                self._replaced.append(old)
        return self._channel

    def speech(self) -> speech_pb2_grpc.SpeechAsyncStub:
        return speech_pb2_grpc.SpeechStub(self.channel)

    def vision(self) -> vision_pb2_grpc.VisionAsyncStub:
        return vision_pb2_grpc.VisionStub(self.channel)

    def language(self) -> language_pb2_grpc.LanguageAsyncStub:
        return language_pb2_grpc.LanguageStub(self.channel)

    def voice(self) -> voice_pb2_grpc.VoiceAsyncStub:
        return voice_pb2_grpc.VoiceStub(self.channel)

    async def nodes(self) -> list[mesh_pb2.NodeEntry]:
        """The nodes this node's router sees (itself only, on a node that does not route)."""
        if self._routes:
            reply = await mesh_pb2_grpc.MeshStub(self.channel).ListNodes(mesh_pb2.ListNodesRequest(), timeout=5)
            return list(reply.nodes)
        described = await mesh_pb2_grpc.NodeStub(self.channel).Describe(mesh_pb2.DescribeRequest(), timeout=5)
        return [mesh_pb2.NodeEntry(node_id=described.node_id, state=mesh_pb2.NODE_STATE_UP,
                                   discovered_by="local", description=described)]

    async def models(self, *, fresh: bool = False) -> list[MeshModel]:
        """Every model a node that takes work serves, cached for CATALOG_TTL_S."""
        at, known = self._catalog
        if fresh or time.monotonic() - at > CATALOG_TTL_S:
            known = models_of(await self.nodes())
            self._catalog = (time.monotonic(), known)
        return known

    async def find(self, service: str, name: str, task: str = "") -> MeshModel | None:
        """The model `name` of `service` (and `task`), asking the router again before saying no."""
        for fresh in (False, True):
            for model in await self.models(fresh=fresh):
                if model.service == service and model.name == name and (not task or model.task == task):
                    return model
        return None

    async def close(self) -> None:
        for channel in [*self._replaced, *([self._channel] if self._channel else [])]:
            await channel.close()
        self._replaced.clear()
        self._channel = None


def models_of(nodes: list[mesh_pb2.NodeEntry]) -> list[MeshModel]:
    """The models of the nodes that take work, one entry per (service, task, name)."""
    found: dict[tuple[str, str, str], MeshModel] = {}
    for node in nodes:
        if node.state not in (mesh_pb2.NODE_STATE_UP, mesh_pb2.NODE_STATE_SUSPECT):
            continue
        for service in node.description.services:
            for info in service.models:
                key = (service.name, info.task, info.name)
                seen = found.get(key)
                found[key] = MeshModel(info.name, service.name, info.task,
                                       (seen.nodes if seen else ()) + (node.node_id,),
                                       (seen.is_default if seen else False) or info.is_default, info.engine,
                                       seen.languages if seen else tuple(info.languages))
    return sorted(found.values(), key=lambda m: (m.service, m.task, m.name))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
