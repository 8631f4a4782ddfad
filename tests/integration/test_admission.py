"""Admission control on a real node: one slot, a queue of two."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.node import Node

from .conftest import has_keywords, says_lazy_dog

pytestmark = pytest.mark.asyncio(loop_scope="session")


def transcribe(channel: grpc.aio.Channel, wav: bytes, timeout: float | None = None):  # type: ignore[no-untyped-def]
    return speech_pb2_grpc.SpeechStub(channel).Transcribe(
        speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)), timeout=timeout)


async def wait_for_load(channel: grpc.aio.Channel, predicate) -> mesh_pb2.ServiceLoad:  # type: ignore[no-untyped-def]
    """The first speech load report that satisfies `predicate` (reports come on every change)."""
    async for report in mesh_pb2_grpc.NodeStub(channel).WatchLoad(mesh_pb2.WatchLoadRequest(heartbeat_ms=100)):
        speech = next(s for s in report.services if s.service == "speech")
        if predicate(speech):
            return speech
    raise AssertionError("load stream ended")


async def test_requests_beyond_slots_queue_and_all_succeed(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    responses = await asyncio.gather(*(transcribe(channel, fox_wav) for _ in range(3)))  # 1 slot + 2 queued
    assert all(has_keywords(r.text) for r in responses)
    waits = sorted(r.served_by.queue_ms for r in responses)
    assert waits[-1] > 0.5 * min(r.served_by.compute_ms for r in responses), waits


async def test_beyond_slots_plus_queue_is_refused_at_once(channel: grpc.aio.Channel, long_wav: bytes) -> None:
    first = asyncio.ensure_future(transcribe(channel, long_wav))
    await wait_for_load(channel, lambda s: s.in_flight == 1)
    queued = [asyncio.ensure_future(transcribe(channel, long_wav)) for _ in range(2)]
    await wait_for_load(channel, lambda s: s.queued == 2)
    refused = await asyncio.gather(*(transcribe(channel, long_wav) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
               for e in refused), refused
    assert "at capacity" in refused[0].details()  # type: ignore[union-attr]
    assert not first.done(), "refusals must not wait for the running request"
    for response in await asyncio.gather(first, *queued):
        assert says_lazy_dog(response.text)


async def test_deadline_is_honoured_while_queued(channel: grpc.aio.Channel, node: Node, long_wav: bytes,
                                                 fox_wav: bytes) -> None:
    running = asyncio.ensure_future(transcribe(channel, long_wav))
    await wait_for_load(channel, lambda s: s.in_flight == 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await transcribe(channel, fox_wav, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    load = await wait_for_load(channel, lambda s: s.queued == 0)
    assert load.queued == 0  # the expired request left the queue
    assert says_lazy_dog((await running).text)


async def test_watch_load_reports_in_flight_work(channel: grpc.aio.Channel, long_wav: bytes) -> None:
    running = asyncio.ensure_future(transcribe(channel, long_wav))
    busy = await wait_for_load(channel, lambda s: s.in_flight == 1)
    assert busy.free_slots == 0 and busy.slots == 1
    assert {m.model: m.in_flight for m in busy.models} == {"tiny.en": 1}
    await running
    idle = await wait_for_load(channel, lambda s: s.in_flight == 0)
    assert idle.free_slots == 1
    assert idle.models[0].throughput.samples >= 1 and idle.models[0].throughput.value > 0
