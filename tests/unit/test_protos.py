"""The wire contract: every message of every lanai proto survives a binary round trip with every
field set, and every file and service lives in its `lanai.<domain>.v1` package."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

DOMAINS = ("common", "speech", "vision", "language", "voice", "mesh")
MODULES: dict[str, ModuleType] = {d: importlib.import_module(f"lanai.api.{d}.v1.{d}_pb2") for d in DOMAINS}
MAX_DEPTH = 6  # recursive message types are filled this deep


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    if descriptor.GetOptions().map_entry:
        return  # synthesised map entries are covered through their map field
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


ALL_MESSAGES = [m for module in MODULES.values()
                for top in module.DESCRIPTOR.message_types_by_name.values() for m in _messages(top)]


def _enum_value(enum: EnumDescriptor) -> int:
    non_zero = [v.number for v in enum.values if v.number != 0]
    assert non_zero, f"{enum.full_name} has no value besides 0"
    return non_zero[0]


_SIGNED = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
           FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64}
_UNSIGNED = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
             FieldDescriptor.TYPE_FIXED64}


def _scalar(field: FieldDescriptor) -> Any:
    """A non-default value of the field's type (floats exactly representable as float32)."""
    if field.type in _SIGNED:
        return -(field.number + 6)
    if field.type in _UNSIGNED:
        return field.number + 6
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return 1.5 + field.number
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return 0.1 + field.number
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"{field.name} \u00e9\u4e2d"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xff" + field.name.encode()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_value(field.enum_type)
    raise AssertionError(f"unhandled field type {field.type} of {field.full_name}")


def _is_repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5.29; `label` is gone in 7
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _fill(message: Message, depth: int = 0) -> dict[str, Any]:
    """Set every field of `message` (one member per oneof); returns what was set, as a tree of field names."""
    chosen_oneofs: set[str] = set()
    was_set: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in chosen_oneofs:
                continue
            chosen_oneofs.add(oneof.name)
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and depth >= MAX_DEPTH and not field.message_type.GetOptions().map_entry:
            continue
        if is_message and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            container = getattr(message, field.name)
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                was_set[field.name] = _fill(container[_scalar(key_field)], depth + 1)
            else:
                container[_scalar(key_field)] = _scalar(value_field)
                was_set[field.name] = None
        elif is_message and _is_repeated(field):
            was_set[field.name] = _fill(getattr(message, field.name).add(), depth + 1)
        elif is_message:
            child = getattr(message, field.name)
            child.SetInParent()
            was_set[field.name] = _fill(child, depth + 1)
        elif _is_repeated(field):
            getattr(message, field.name).append(_scalar(field))
            was_set[field.name] = None
        else:
            setattr(message, field.name, _scalar(field))
            was_set[field.name] = None
    return was_set


def _present(message: Message) -> dict[str, Any]:
    """The fields present in `message`, as a tree like `_fill`'s."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            out[field.name] = None
        elif field.message_type.GetOptions().map_entry:
            inner = next(iter(value.values()))
            out[field.name] = _present(inner) if isinstance(inner, Message) else None
        elif _is_repeated(field):
            out[field.name] = _present(value[0])
        else:
            out[field.name] = _present(value)
    return out


def test_every_domain_has_messages() -> None:
    for domain, module in MODULES.items():
        assert module.DESCRIPTOR.message_types_by_name, f"{domain} defines no message"
    assert len({m.full_name for m in ALL_MESSAGES}) == len(ALL_MESSAGES)


@pytest.mark.parametrize("descriptor", ALL_MESSAGES, ids=lambda d: d.full_name)
def test_message_round_trips_with_every_field_set(descriptor: Descriptor) -> None:
    cls = GetMessageClass(descriptor)
    original = cls()
    was_set = _fill(original)
    assert len(was_set) == len(descriptor.fields) - sum(len(o.fields) - 1 for o in descriptor.oneofs)

    wire = original.SerializeToString()
    parsed = cls.FromString(wire)
    assert parsed == original
    assert _present(parsed) == was_set  # nothing set was lost (a default value would be dropped silently)
    for oneof in descriptor.oneofs:
        assert parsed.WhichOneof(oneof.name) == oneof.fields[0].name
    assert parsed.SerializeToString(deterministic=True) == original.SerializeToString(deterministic=True)
    if descriptor.fields:
        assert wire, "a message with every field set serialised to nothing"


@pytest.mark.parametrize("domain", DOMAINS)
def test_files_and_services_are_in_their_versioned_package(domain: str) -> None:
    file = MODULES[domain].DESCRIPTOR
    package = f"lanai.{domain}.v1"
    assert file.package == package
    assert file.name == f"lanai/{domain}/v1/{domain}.proto"
    for service in file.services_by_name.values():
        assert service.full_name == f"{package}.{service.name}"
        for method in service.methods:
            for message in (method.input_type, method.output_type):
                assert message.full_name.startswith("lanai."), f"{method.full_name} uses {message.full_name}"


def test_every_service_domain_has_a_service() -> None:
    services = {d: list(MODULES[d].DESCRIPTOR.services_by_name) for d in DOMAINS}
    assert services["common"] == []
    for domain in ("speech", "vision", "language", "mesh"):
        assert services[domain], f"lanai.{domain}.v1 defines no service"


@pytest.mark.parametrize("domain", DOMAINS)
def test_enums_have_an_unspecified_zero(domain: str) -> None:
    def enums(module: ModuleType) -> Iterator[EnumDescriptor]:
        yield from module.DESCRIPTOR.enum_types_by_name.values()
        for message in ALL_MESSAGES:
            if message.file is module.DESCRIPTOR:
                yield from message.enum_types

    for enum in enums(MODULES[domain]):
        zero = enum.values_by_number[0]
        assert zero.name.endswith("_UNSPECIFIED"), f"{enum.full_name}: value 0 is {zero.name}"
