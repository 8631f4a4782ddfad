"""What the router knows of lanai's RPCs, read from the registered services' proto
descriptors: which service a method belongs to, its streaming shape, and which model a
request asks for. Generic, so a new lanai service needs no router code."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from lanai.mesh import registry
from lanai.services.core.errors import InvalidInput

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


@functools.cache
def rpcs() -> Mapping[str, Rpc]:
    """Every method a router forwards, by path: those of the registered services' APIs
    (lanai.mesh.v1 is answered by every process itself). Built on first use."""
    found: dict[str, Rpc] = {}
    for entry in registry.entries():
        for service in entry.api().DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                found[path] = Rpc(path, entry.name, method.client_streaming, method.server_streaming,
                                  message_factory.GetMessageClass(method.input_type))
    return found


def grpc_services() -> tuple[str, ...]:
    """The full names of the gRPC services a router forwards ("lanai.speech.v1.Speech", ...)."""
    return tuple(sorted({path.split("/")[1] for path in rpcs()}))


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
