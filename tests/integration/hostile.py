"""Hostile requests for any lanai method, made from its descriptors: a new RPC or field is covered
without editing the tests. Each case is a list of raw messages (one for a unary request)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf import message_factory

from lanai.api.language.v1 import language_pb2
from lanai.api.mesh.v1 import mesh_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.api.vision.v1 import vision_pb2

MODULES = (speech_pb2, vision_pb2, language_pb2, mesh_pb2)
MARK = "ZQZQZ"
BAD_UTF8 = b"\xff\xfe\xc3\x28\xa0"
"""Same length as MARK: swapped in after serialising, so a string field carries invalid UTF-8."""
HUGE = 1_000_000
FOLLOWING = 300
_DEPTH = 3
_T = FieldDescriptor


@dataclass(frozen=True)
class Method:
    path: str
    client_streaming: bool
    server_streaming: bool
    input: Descriptor


def methods() -> list[Method]:
    found = []
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                found.append(Method(f"/{service.full_name}/{m.name}", m.client_streaming, m.server_streaming,
                                    m.input_type))
    return found


def _fill(message: Message, text: str, number: str, depth: int = 0, repeat: int = 1) -> None:
    """Set every field (in a oneof, the last one set wins): strings to `text`, numbers to the
    `number` extreme ("max", "min" or "nan"), bytes to a few junk bytes, sub-messages likewise."""
    for field in message.DESCRIPTOR.fields:
        repeated = field.is_repeated
        if field.type == _T.TYPE_MESSAGE:
            if depth >= _DEPTH or field.message_type.GetOptions().map_entry:
                continue
            if repeated:
                for _ in range(min(repeat, 3)):
                    _fill(getattr(message, field.name).add(), text, number, depth + 1)
            else:
                _fill(getattr(message, field.name), text, number, depth + 1)
            continue
        value = _value(field, text, number)
        if value is None:
            continue
        if repeated:
            getattr(message, field.name).extend([value] * repeat)
        else:
            setattr(message, field.name, value)


def _value(field: FieldDescriptor, text: str, number: str) -> object:
    kind = field.type
    if kind == _T.TYPE_STRING:
        return text
    if kind == _T.TYPE_BYTES:
        return b"\x00\xffjunk" * 8
    if kind == _T.TYPE_BOOL:
        return True
    if kind in (_T.TYPE_FLOAT, _T.TYPE_DOUBLE):
        return {"max": float("inf"), "min": -3.0e38, "nan": float("nan")}[number]
    if kind == _T.TYPE_ENUM:
        return {"max": 2**31 - 1, "min": -(2**31), "nan": 1}[number]
    signed = kind in (_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32, _T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64)
    bits = 32 if kind in (_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32, _T.TYPE_UINT32, _T.TYPE_FIXED32) else 64
    if number == "max":
        return 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    if number == "min":
        return -(2 ** (bits - 1)) if signed else 0
    return 1


def _message(descriptor: Descriptor, text: str, number: str, repeat: int = 1) -> bytes:
    message = message_factory.GetMessageClass(descriptor)()
    _fill(message, text, number, repeat=repeat)
    return message.SerializeToString()


def unary_cases(descriptor: Descriptor) -> Iterator[tuple[str, bytes]]:
    """(name, raw message) for one request message type."""
    plain = _message(descriptor, "hello", "nan")
    yield "empty", b""
    yield "undecodable bytes", b"\xff\xff\xff\xff\xff\x0f\x01"
    yield "wire type 7", b"\x0f\x00"
    if len(plain) > 4:
        yield "truncated", plain[: len(plain) - 3]
    yield "plain values", plain
    marked = _message(descriptor, MARK, "nan")
    if MARK.encode() in marked:
        yield "invalid utf-8 in strings", marked.replace(MARK.encode(), BAD_UTF8)
    huge = _message(descriptor, "x" * HUGE, "nan")
    if len(huge) > HUGE:
        yield "1 MB strings", huge
    yield "largest numbers", _message(descriptor, "hello", "max")
    yield "smallest numbers", _message(descriptor, "hello", "min")
    many = _message(descriptor, "a", "nan", repeat=5000)
    if len(many) > 5000:
        yield "5000 repeated values", many


def cases(method: Method) -> Iterator[tuple[str, list[bytes]]]:
    """(name, messages) for a method: one message for unary requests; for client streams each
    case alone, after a plausible message, twice over, and with the client still writing when
    the server answers (the order in which gRPC's asyncio client loses the server's status)."""
    plain = _message(method.input, "hello", "nan")
    for name, raw in unary_cases(method.input):
        yield name, [raw]
        if method.client_streaming:
            yield f"{name} after a plausible message", [plain, raw]
            yield f"{name} twice", [raw, raw]
            yield f"{name}, then {FOLLOWING} more", [raw] + [plain] * FOLLOWING


def method_descriptor(path: str) -> MethodDescriptor:
    service, name = path[1:].split("/")
    for module in MODULES:
        for s in module.DESCRIPTOR.services_by_name.values():
            if s.full_name == service:
                return s.methods_by_name[name]
    raise KeyError(path)
