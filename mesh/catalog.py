"""What the router knows of lanai's RPCs, read from the proto descriptors: which service a
method belongs to, its streaming shape, and which model a request asks for. Generic, so a
new lanai service needs no router code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from lanai.api.language.v1 import language_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.api.vision.v1 import vision_pb2
from lanai.services.errors import InvalidInput

ROUTED_MODULES = (speech_pb2, vision_pb2, language_pb2)
"""The services a router forwards (lanai.mesh.v1 is answered by every process itself)."""
MODEL_FIELD = "model"
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Rpc:
    path: str
    """"/lanai.speech.v1.Speech/Transcribe"."""
    service: str
    """The lanai service name, "speech"."""
    client_streaming: bool
    server_streaming: bool
    request_type: type[Message]


def _build() -> dict[str, Rpc]:
    rpcs: dict[str, Rpc] = {}
    for module in ROUTED_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                rpcs[path] = Rpc(path, service.full_name.split(".")[1], method.client_streaming,
                                 method.server_streaming, message_factory.GetMessageClass(method.input_type))
    return rpcs


RPCS = _build()
GRPC_SERVICES = tuple(sorted({p.split("/")[1] for p in RPCS}))


def requested_model(rpc: Rpc, raw: bytes) -> str:
    """The model a (first) request message names, "" for the node's default.
    Looks for a string field `model` in the message and its set sub-messages."""
    try:
        message = rpc.request_type.FromString(raw)
    except DecodeError:
        raise InvalidInput(f"the request is not a valid {rpc.request_type.DESCRIPTOR.full_name} message") from None
    return _find_model(message, 0)


def _find_model(message: Any, depth: int) -> str:
    for field, value in message.ListFields():
        if field.name == MODEL_FIELD and isinstance(value, str):
            return value
    if depth < _MAX_DEPTH:
        for field, value in message.ListFields():
            if field.message_type is not None and not getattr(field, "is_repeated", False):
                if found := _find_model(value, depth + 1):
                    return found
    return ""
