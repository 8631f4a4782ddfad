"""Wyoming's framing read with bounds (mesh/doors/wyoming_wire.py), and who may connect to the door."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import cast

import pytest
from wyoming.audio import AudioChunk
from wyoming.event import async_write_event

from lanai.mesh.doors import LOOPBACK, wyoming_allow
from lanai.mesh.doors.wyoming_wire import MAX_HEADER_BYTES, ProtocolError, read_event
from lanai.mesh.premises import DEFAULT_ALLOWED


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


class _Sink:  # collects what wyoming's own writer sends (it uses only these three)
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, data: Iterable[bytes]) -> None:
        for piece in data:
            self.data += piece

    async def drain(self) -> None:
        pass


async def test_reads_what_the_wyoming_package_writes() -> None:
    sink = _Sink()
    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=b"\x01\x02" * 512, timestamp=64)
    await async_write_event(chunk.event(), cast(asyncio.StreamWriter, sink))
    reader = reader_of(bytes(sink.data))
    event = await read_event(reader, max_payload=4096)
    assert event is not None and AudioChunk.from_event(event) == chunk
    assert await read_event(reader, max_payload=4096) is None  # then a clean end


@pytest.mark.parametrize("data,says", [
    (b"{oops\n", "not valid JSON"),
    (b'"just a string"\n', "JSON object"),
    (b'{"type": ""}\n', "needs a 'type'"),
    (b'{"type": "x", "data": [1]}\n', "must be a JSON object"),
    (b'{"type": "x", "payload_length": 4097}\n', "over this door's limit of 4096"),
    (b'{"type": "x", "payload_length": true}\n', "byte count"),
    (b'{"type": "x", "data_length": 6}\n[1, 2]', "JSON object"),
    (b'{"type": "x", "payload_length": 10}\nshort', "ended inside a x event"),
    (b'{"type": "x"', "ended inside an event header"),
    (b"a" * (MAX_HEADER_BYTES + 10) + b"\n", "over 65536 bytes"),
])
async def test_malformed_events_say_what_was_wrong(data: bytes, says: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        await read_event(reader_of(data), max_payload=4096)
    assert says in str(caught.value)


async def test_extra_data_is_merged_into_the_header_data() -> None:
    extra = json.dumps({"text": "hello"}).encode()
    head = json.dumps({"type": "synthesize", "data": {"voice": {"name": "en-us"}}, "data_length": len(extra)})
    event = await read_event(reader_of(head.encode() + b"\n" + extra), max_payload=0)
    assert event is not None and event.data == {"voice": {"name": "en-us"}, "text": "hello"}


def test_who_may_connect() -> None:
    assert wyoming_allow((), keyed=True) == LOOPBACK
    assert wyoming_allow((), keyed=False) == DEFAULT_ALLOWED
    assert wyoming_allow(("192.168.1.20/32",), keyed=True) == ("192.168.1.20/32",)
