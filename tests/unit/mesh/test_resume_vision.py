"""The router's side of a moved StreamAnalyze (mesh/resume/vision.py): the config again, then only
the newest frame; frames it or the lost node never analysed are counted as dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from lanai.api.vision.v1 import vision_pb2
from lanai.mesh.replay import ReplayableStream
from lanai.mesh.resume.vision import AnalysisResume

CONFIG = vision_pb2.StreamAnalyzeRequest(config=vision_pb2.AnalyzeConfig(analyses=["faces"])).SerializeToString()


def frame(i: int) -> bytes:
    return vision_pb2.StreamAnalyzeRequest(frame=vision_pb2.VideoFrame(encoded=b"jpeg", capture_time_us=i)
                                           ).SerializeToString()


def result(sequence: int, dropped: int = 0) -> bytes:
    return vision_pb2.StreamAnalyzeResponse(sequence=sequence, dropped=dropped).SerializeToString()


async def resume_over(gate: asyncio.Event, count: int) -> AnalysisResume:
    async def client() -> AsyncIterator[bytes]:
        yield CONFIG
        for i in range(count):
            yield frame(i)
        await gate.wait()
    feed = ReplayableStream(client())
    first = await feed.first()
    assert first is not None
    resume = AnalysisResume.start(first, feed)
    assert resume is not None
    for _ in range(20):
        await asyncio.sleep(0)  # let it read what the client sent
    return resume


async def test_the_newest_frame_numbered_and_the_rest_counted_as_dropped() -> None:
    gate = asyncio.Event()
    resume = await resume_over(gate, 5)
    attempt = resume.request()
    assert await anext(attempt) == CONFIG
    sent = vision_pb2.StreamAnalyzeRequest.FromString(await anext(attempt))
    assert sent.frame.sequence == 5 and sent.frame.capture_time_us == 4
    relayed = vision_pb2.StreamAnalyzeResponse.FromString(resume.relay(result(5)))
    assert relayed.dropped == 4  # the four the router replaced before any node took them
    gate.set()
    assert [m async for m in attempt] == []
    resume.close()


async def test_frames_lost_with_the_node_are_counted_after_the_move() -> None:
    gate = asyncio.Event()
    resume = await resume_over(gate, 1)
    attempt = resume.request()
    await anext(attempt), await anext(attempt)  # config and frame 1, never answered
    resume.moved()
    again = resume.request()
    assert await anext(again) == CONFIG  # the new node gets the config first
    assert vision_pb2.StreamAnalyzeResponse.FromString(resume.relay(result(2))).dropped == 1
    gate.set()
    resume.close()


def test_a_stream_that_does_not_start_with_a_config_is_the_nodes_to_refuse() -> None:
    assert AnalysisResume.start(frame(0), ReplayableStream(_never())) is None
    assert AnalysisResume.start(b"\xff\xff", ReplayableStream(_never())) is None


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""
