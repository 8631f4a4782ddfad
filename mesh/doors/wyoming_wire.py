"""Wyoming's framing, read with bounds. An event is a JSON header line, then optional extra
JSON data and a binary payload whose lengths the header declares. The `wyoming` package's own
reader trusts those lengths and lets a bad header escape as KeyError; a door on the LAN reads
them against limits and answers a malformed event with an error naming what was wrong."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from lanai.services.core.errors import InvalidInput

MAX_HEADER_BYTES = 64 * 1024
"""Largest header line, and largest extra data: events carry names and text, audio travels as payload."""


class ProtocolError(InvalidInput):
    """A malformed Wyoming event; the connection cannot continue after it."""


async def read_event(reader: asyncio.StreamReader, max_payload: int) -> Event | None:
    """The next event, or None when the client closed the connection between events. The reader
    must have been opened with `limit=MAX_HEADER_BYTES`."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("the connection ended inside an event header") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"an event header is over {MAX_HEADER_BYTES} bytes; Wyoming headers are one "
                            "short JSON line") from None
    header = _json_object(line, "the event header")
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("an event header needs a 'type' string (e.g. \"describe\")")
    data = header.get("data")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ProtocolError(f"the 'data' of a {kind} event must be a JSON object")
    try:
        extra = _length(header, "data_length", MAX_HEADER_BYTES, kind)
        if extra:
            data.update(_json_object(await reader.readexactly(extra), f"the data of a {kind} event"))
        size = _length(header, "payload_length", max_payload, kind)
        payload = await reader.readexactly(size) if size else None
    except asyncio.IncompleteReadError:
        raise ProtocolError(f"the connection ended inside a {kind} event") from None
    return Event(type=kind, data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int, kind: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"'{key}' of a {kind} event must be a byte count, not {value!r}")
    if value > limit:
        raise ProtocolError(f"a {kind} event declares {key} {value}, over this door's limit of {limit} bytes; "
                            "send audio in chunks (Home Assistant sends 1024 samples at a time)")
    return value


def text_of(data: dict[str, Any], key: str, kind: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"'{key}' of a {kind} event must be a string" + (" and is required" if required else ""))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"'{key}' of a {kind} event is not valid Unicode (a lone surrogate)") from None
    return value


def count_of(data: dict[str, Any], key: str, kind: str) -> int:
    """A positive whole number (a sample rate, width or channel count) that fits 32 bits."""
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**32:
        raise ProtocolError(f"'{key}' of a {kind} event must be a positive whole number, not {value!r}")
    return value


def mapping_of(data: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"'{key}' of a {kind} event must be a JSON object")
    return value
