"""Bad input gets the right status and a message that says what to do; the node stays up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.node import Node

from .conftest import has_keywords, make_wav, wav_pcm

pytestmark = pytest.mark.asyncio(loop_scope="session")
Code = grpc.StatusCode


def encoded(data: bytes, **options: object) -> speech_pb2.TranscribeRequest:
    return speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=data),
                                        options=speech_pb2.TranscriptionOptions(**options))  # type: ignore[arg-type]


def pcm(data: bytes, rate: int = 16000, width: int = 2, channels: int = 1) -> speech_pb2.TranscribeRequest:
    fmt = speech_pb2.PcmFormat(sample_rate_hz=rate, sample_width_bytes=width, channels=channels)
    return speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(pcm=speech_pb2.RawPcm(format=fmt, data=data)))


BAD_UNARY: dict[str, tuple[Callable[[bytes], speech_pb2.TranscribeRequest], Code, str]] = {
    "not audio": (lambda wav: encoded(b"this is a text file, not audio " * 50), Code.INVALID_ARGUMENT, "could not be read"),
    "truncated wav": (lambda wav: encoded(wav[: len(wav) // 3]), Code.INVALID_ARGUMENT, "truncated"),
    "empty file": (lambda wav: encoded(b""), Code.INVALID_ARGUMENT, "empty"),
    "no audio at all": (lambda wav: speech_pb2.TranscribeRequest(), Code.INVALID_ARGUMENT, "no audio"),
    "header only": (lambda wav: encoded(wav[:44]), Code.INVALID_ARGUMENT, "truncated"),
    "pcm not whole frames": (lambda wav: pcm(b"\x00" * 1001), Code.INVALID_ARGUMENT, "whole number"),
    "pcm stereo mismatch": (lambda wav: pcm(b"\x00" * 1002, channels=2), Code.INVALID_ARGUMENT, "frames"),
    "pcm no rate": (lambda wav: pcm(b"\x00" * 1000, rate=0), Code.INVALID_ARGUMENT, "sample_rate_hz"),
    "pcm bad width": (lambda wav: pcm(b"\x00" * 999, width=3), Code.INVALID_ARGUMENT, "sample_width_bytes"),
    "pcm empty": (lambda wav: pcm(b""), Code.INVALID_ARGUMENT, "empty"),
    "too long": (lambda wav: encoded(make_wav(__import__("numpy").zeros(16000 * 41, "<i2"), 16000)),
                 Code.INVALID_ARGUMENT, "limit of 40 s"),
    "too long pcm": (lambda wav: pcm(bytes(16000 * 2 * 41)), Code.INVALID_ARGUMENT, "limit of 40 s"),
    "over message size": (lambda wav: encoded(b"\x00" * (5 * 1024 * 1024)), Code.RESOURCE_EXHAUSTED, "larger than max"),
    "unknown model": (lambda wav: encoded(wav, model="large-v9"), Code.NOT_FOUND, "available: tiny.en"),
    "unknown language": (lambda wav: encoded(wav, language="klingon"), Code.INVALID_ARGUMENT, "ISO 639-1"),
    "english-only model": (lambda wav: encoded(wav, language="de"), Code.INVALID_ARGUMENT, "English-only"),
    "translate on english-only": (lambda wav: encoded(wav, task=speech_pb2.TASK_TRANSLATE), Code.INVALID_ARGUMENT,
                                  "English-only"),
    "beam too wide": (lambda wav: encoded(wav, beam_size=99), Code.INVALID_ARGUMENT, "beam_size"),
    "unknown task": (lambda wav: encoded(wav, task=7), Code.INVALID_ARGUMENT, "task"),
    "prompt too long": (lambda wav: encoded(wav, initial_prompt="x" * 1001), Code.INVALID_ARGUMENT, "initial_prompt"),
}


async def assert_still_serving(channel: grpc.aio.Channel, wav: bytes) -> None:
    response = await speech_pb2_grpc.SpeechStub(channel).Transcribe(encoded(wav))
    assert has_keywords(response.text)


@pytest.mark.parametrize("case", list(BAD_UNARY))
async def test_bad_unary_input(channel: grpc.aio.Channel, fox_wav: bytes, case: str) -> None:
    make, code, words = BAD_UNARY[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await speech_pb2_grpc.SpeechStub(channel).Transcribe(make(fox_wav))
    assert caught.value.code() == code, caught.value.details()
    assert words in (caught.value.details() or ""), caught.value.details()
    await mesh_pb2_grpc.NodeStub(channel).Describe(mesh_pb2.DescribeRequest())


async def test_node_transcribes_after_every_bad_input(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    for make, _, _ in BAD_UNARY.values():
        with pytest.raises(grpc.aio.AioRpcError):
            await speech_pb2_grpc.SpeechStub(channel).Transcribe(make(fox_wav))
    await assert_still_serving(channel, fox_wav)


CONFIG = speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
    format=speech_pb2.PcmFormat(sample_rate_hz=16000)))
AUDIO = speech_pb2.StreamTranscribeRequest(audio=b"\x00\x00" * 1600)

BAD_STREAMS: dict[str, tuple[list[speech_pb2.StreamTranscribeRequest], Code, str]] = {
    "audio before config": ([AUDIO, CONFIG], Code.INVALID_ARGUMENT, "first StreamTranscribe message"),
    "config twice": ([CONFIG, AUDIO, CONFIG], Code.INVALID_ARGUMENT, "sent twice"),
    "empty message": ([CONFIG, speech_pb2.StreamTranscribeRequest()], Code.INVALID_ARGUMENT, "neither"),
    "no sample rate": ([speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig())],
                       Code.INVALID_ARGUMENT, "sample_rate_hz"),
    "unknown model": ([speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
        format=speech_pb2.PcmFormat(sample_rate_hz=16000), options=speech_pb2.TranscriptionOptions(model="nope")))],
        Code.NOT_FOUND, "available"),
    "silence out of range": ([speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
        format=speech_pb2.PcmFormat(sample_rate_hz=16000), end_of_utterance_silence_ms=9999))],
        Code.INVALID_ARGUMENT, "100 to 5000"),
}


@pytest.mark.parametrize("case", list(BAD_STREAMS))
async def test_bad_stream(node: Node, channel: grpc.aio.Channel, fox_wav: bytes, case: str) -> None:
    """Uses grpc's sync client: the asyncio client reports INTERNAL instead of the server's status
    when a write races the server's early end (grpc/grpc#36066)."""
    messages, code, words = BAD_STREAMS[case]

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{node.port}") as sync_channel:
            try:
                list(speech_pb2_grpc.SpeechStub(sync_channel).StreamTranscribe(iter(messages), timeout=30))
            except grpc.RpcError as error:
                return error
        raise AssertionError("the stream was accepted")

    error = await asyncio.to_thread(call)
    assert error.code() == code, error.details()
    assert words in (error.details() or ""), error.details()
    await assert_still_serving(channel, fox_wav)


async def test_truncated_flac_is_refused_or_transcribed(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    """A FLAC cut in half states its full length in STREAMINFO: it must not pass as complete."""
    from .test_speech import encode

    rate, samples = wav_pcm(fox_wav)
    flac = encode(samples, rate, "flac", "flac")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await speech_pb2_grpc.SpeechStub(channel).Transcribe(encoded(flac[: len(flac) // 2]))
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert "truncated" in (caught.value.details() or "")
