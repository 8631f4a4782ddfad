"""lanai.mesh.resume: what a moved stream sends to its new node, and how the new node's answers
are put onto the original stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lanai.api.language.v1 import language_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.mesh.catalog import rpcs
from lanai.mesh.replay import ReplayableStream
from lanai.mesh.resume import resume_for
from lanai.mesh.resume.language import GenerationResume
from lanai.mesh.resume.speech import TranscriptionResume

STREAM = rpcs()["/lanai.speech.v1.Speech/StreamTranscribe"]
SECOND = 16000 * 2  # bytes of one second of 16 kHz 16-bit mono
CONFIG = speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
    format=speech_pb2.PcmFormat(sample_rate_hz=16000))).SerializeToString()


def audio(data: bytes) -> bytes:
    return speech_pb2.StreamTranscribeRequest(audio=data).SerializeToString()


async def client(*messages: bytes) -> AsyncIterator[bytes]:
    for message in messages:
        yield message


async def started(*messages: bytes) -> TranscriptionResume:
    feed = ReplayableStream(client(*messages))
    first = await feed.first()
    assert first is not None
    resume = resume_for(STREAM, first, feed)
    assert isinstance(resume, TranscriptionResume)
    return resume


async def sent_audio(resume: TranscriptionResume) -> tuple[bytes, bytes]:
    """(first message, all audio) of one attempt, read until the client's end."""
    messages = [m async for m in resume.request()]
    return messages[0], b"".join(speech_pb2.StreamTranscribeRequest.FromString(m).audio for m in messages[1:])


def final(utterance: int, start: float, end: float) -> bytes:
    return speech_pb2.StreamTranscribeResponse(
        utterance_id=utterance, is_final=True, end_of_utterance=True, text="hi", start_s=start, end_s=end,
        segments=[speech_pb2.Segment(start_s=start, end_s=end, words=[speech_pb2.Word(start_s=start, end_s=end)])],
    ).SerializeToString()


async def test_a_moved_transcription_replays_only_the_audio_after_the_last_final() -> None:
    pcm = bytes(range(256)) * (3 * SECOND // 256)  # 3 s
    resume = await started(CONFIG, audio(pcm[:SECOND]), audio(pcm[SECOND:]))
    config, first_attempt = await sent_audio(resume)
    assert config == CONFIG and first_attempt == pcm
    assert resume.relay(final(0, 0.2, 1.5)) == final(0, 0.2, 1.5)  # the first node's answers pass unchanged
    resume.moved()
    config, replayed = await sent_audio(resume)
    assert config == CONFIG and replayed == pcm[int(1.5 * 16000) * 2:]  # from the final's end, on a frame
    moved = speech_pb2.StreamTranscribeResponse.FromString(resume.relay(final(0, 0.25, 1.0)))
    assert moved.utterance_id == 1  # ids go on after the last final's
    assert (moved.start_s, moved.end_s) == pytest.approx((1.75, 2.5))  # on the original stream's clock
    assert moved.segments[0].start_s == pytest.approx(1.75) and moved.segments[0].words[0].end_s == pytest.approx(2.5)
    resume.close()


async def test_a_second_move_shifts_from_the_original_clock() -> None:
    resume = await started(CONFIG, audio(bytes(4 * SECOND)))
    await sent_audio(resume)
    resume.relay(final(0, 0.0, 1.0))
    resume.moved()
    await sent_audio(resume)
    resume.relay(final(0, 0.0, 1.0))  # the second node's first final: 1 s to 2 s of the stream
    resume.moved()
    _, replayed = await sent_audio(resume)
    assert len(replayed) == 2 * SECOND
    third = speech_pb2.StreamTranscribeResponse.FromString(resume.relay(final(0, 0.5, 1.0)))
    assert third.utterance_id == 2 and third.start_s == pytest.approx(2.5)
    resume.close()


async def test_a_stream_that_does_not_start_with_a_config_is_left_to_the_node() -> None:
    feed = ReplayableStream(client(audio(b"\x00\x00"), CONFIG))
    first = await feed.first()
    assert first is not None and resume_for(STREAM, first, feed) is None
    feed.close()


async def test_a_second_config_is_passed_on_for_the_node_to_refuse() -> None:
    resume = await started(CONFIG, audio(bytes(100)), CONFIG)
    messages = [m async for m in resume.request()]
    assert messages[-1] == CONFIG  # the node answers INVALID_ARGUMENT, as without a router
    resume.close()


async def test_old_audio_the_node_has_is_dropped_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no final for longer than REPLAY_S, a replay starts at most REPLAY_S back."""
    from lanai.mesh.resume import speech

    monkeypatch.setattr(speech, "REPLAY_S", 2.0)
    chunks = [audio(bytes([i]) * SECOND) for i in range(6)]  # 6 s, one byte value per second
    resume = await started(CONFIG, *chunks)
    await sent_audio(resume)  # the node took everything
    resume.moved()
    _, replayed = await sent_audio(resume)
    assert len(replayed) <= 2 * SECOND and replayed[-1] == 5
    moved = speech_pb2.StreamTranscribeResponse.FromString(resume.relay(final(0, 0.0, 0.5)))
    assert moved.start_s == pytest.approx(6 - len(replayed) / SECOND)  # times still on the original clock
    resume.close()


async def test_the_client_is_held_back_rather_than_audio_the_node_lacks_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanai.mesh.resume import speech

    monkeypatch.setattr(speech, "REPLAY_S", 1.0)
    resume = await started(CONFIG, *[audio(bytes(SECOND)) for _ in range(4)])
    await asyncio.sleep(0.05)  # the reader fills the buffer, then waits for the node
    attempt = resume.request()
    await anext(attempt)  # config
    first = speech_pb2.StreamTranscribeRequest.FromString(await anext(attempt)).audio
    assert first == bytes(len(first))
    rest = [speech_pb2.StreamTranscribeRequest.FromString(m).audio async for m in attempt]
    assert len(first) + sum(map(len, rest)) == 4 * SECOND  # nothing lost although 4 s > the 1 s kept
    resume.close()


def test_a_moved_generation_continues_from_the_text_sent() -> None:
    request = language_pb2.GenerateRequest(prompt="Once", sampling=language_pb2.SamplingOptions(max_tokens=50))
    resume = GenerationResume.start(request.SerializeToString())
    assert resume is not None
    assert resume.request() == request.SerializeToString()
    for delta in (" upon", " a time"):
        resume.relay(language_pb2.GenerateStreamResponse(delta=delta).SerializeToString())
    resume.moved()
    moved = language_pb2.GenerateRequest.FromString(resume.request())
    assert moved.prompt == "Once" and moved.continuation == " upon a time" and moved.sampling.max_tokens == 50
