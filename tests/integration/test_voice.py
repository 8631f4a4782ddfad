"""The voice service on a real node, with real voices (espeak-ng, and the Piper voice on
onnxruntime), checked by ear: what it says is transcribed back with Whisper tiny.en."""

from __future__ import annotations

import asyncio
import io
import math
import time
import urllib.request
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.services.voice.config import VoiceConfig

from .conftest import INSECURE, _prepare

VOICES = ("en-us", "joe")
SENTENCE = "The weather in the building is lovely this morning."
KEYWORDS = ("weather", "building", "morning", "lovely")
LONG = ("Good morning and welcome to the office. The printer on the second floor is working again. "
        "Lunch today is soup and fresh bread in the kitchen. The meeting about the budget moves to three o'clock. "
        "Please remember to lock the front door when you leave. Tomorrow the weather will be sunny and warm.")
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def voice_home(lanai_home: Path) -> Path:
    return _prepare(lanai_home, "joe")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def voice_node(voice_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=voice_home, services=("voice",), host="127.0.0.1", port=0, metrics_host="127.0.0.1",
                        metrics_port=0, node_id="voice-node", security=INSECURE, mesh=LONE,
                        configs={"voice": VoiceConfig(models=VOICES, slots=2, max_queue=4, max_chars=600)})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def voice(voice_node: Node) -> AsyncIterator[voice_pb2_grpc.VoiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{voice_node.port}") as channel:
        yield voice_pb2_grpc.VoiceStub(channel)


async def transcript(node: Node, wav: bytes) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        reply = await speech_pb2_grpc.SpeechStub(channel).Transcribe(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)), timeout=60)
    return reply.text.lower()


def heard(text: str, keywords: tuple[str, ...] = KEYWORDS) -> int:
    return sum(word in text for word in keywords)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("name", VOICES)
async def test_what_it_says_is_heard_back(voice: voice_pb2_grpc.VoiceStub, node: Node, name: str) -> None:
    reply = await voice.Synthesize(voice_pb2.SynthesizeRequest(text=SENTENCE, model=name), timeout=60)
    assert reply.format.encoding == voice_pb2.AUDIO_ENCODING_WAV and reply.format.channels == 1
    with wave.open(io.BytesIO(reply.audio)) as clip:
        assert clip.getframerate() == reply.format.sample_rate == 22050
        assert clip.getnframes() / clip.getframerate() == pytest.approx(reply.duration_s, abs=0.01)
    assert 1.5 < reply.duration_s < 8, reply.duration_s
    assert reply.served_by.model == name and reply.served_by.node_id == "voice-node"
    assert reply.characters == len(SENTENCE)
    text = await transcript(node, reply.audio)
    assert heard(text) >= 3, text


@pytest.mark.asyncio(loop_scope="session")
async def test_raw_pcm_and_rate(voice: voice_pb2_grpc.VoiceStub) -> None:
    normal = await voice.Synthesize(voice_pb2.SynthesizeRequest(
        text=SENTENCE, model="joe", encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE), timeout=60)
    fast = await voice.Synthesize(voice_pb2.SynthesizeRequest(
        text=SENTENCE, model="joe", rate=2.0, encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE), timeout=60)
    assert normal.format.encoding == voice_pb2.AUDIO_ENCODING_PCM_S16LE
    assert len(normal.audio) == round(normal.duration_s * 22050) * 2
    assert fast.duration_s < normal.duration_s * 0.7, (fast.duration_s, normal.duration_s)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("name", VOICES)
async def test_a_stream_sends_audio_before_the_whole_text_is_synthesised(voice: voice_pb2_grpc.VoiceStub,
                                                                        name: str) -> None:
    started = time.perf_counter()
    arrivals, messages = [], []
    async for message in voice.SynthesizeStream(voice_pb2.SynthesizeRequest(text=LONG, model=name), timeout=120):
        arrivals.append(time.perf_counter() - started)
        messages.append(message)
    assert messages[0].format.sample_rate == 22050 and messages[0].format.encoding == voice_pb2.AUDIO_ENCODING_PCM_S16LE
    assert [m.sentence for m in messages] == sorted(m.sentence for m in messages)
    sentences = [m.text for m in messages if m.text]
    assert len(sentences) == 6 and sentences[0] == "Good morning and welcome to the office."
    assert messages[-1].served_by.model == name
    assert not any(m.HasField("served_by") for m in messages[:-1])
    # the first sentence's audio arrives while most of the text is still to be synthesised
    assert arrivals[0] < arrivals[-1] * 0.5, (arrivals[0], arrivals[-1])
    # chunks are contiguous on the answer's clock
    for before, after in zip(messages, messages[1:]):
        assert after.start_s == pytest.approx(before.start_s + len(before.audio) / 2 / 22050, abs=1e-3)
    assert messages[-1].served_by.compute_ms > 0


BAD = {
    "empty text": (voice_pb2.SynthesizeRequest(text=""), Code.INVALID_ARGUMENT, "empty"),
    "only spaces": (voice_pb2.SynthesizeRequest(text="   \n "), Code.INVALID_ARGUMENT, "empty"),
    "too long": (voice_pb2.SynthesizeRequest(text="word " * 200), Code.INVALID_ARGUMENT, "600"),
    "unknown voice": (voice_pb2.SynthesizeRequest(text="hi", model="klingon"), Code.NOT_FOUND, "en-us"),
    "negative rate": (voice_pb2.SynthesizeRequest(text="hi", rate=-1), Code.INVALID_ARGUMENT, "rate"),
    "rate too slow": (voice_pb2.SynthesizeRequest(text="hi", rate=0.1), Code.INVALID_ARGUMENT, "0.25"),
    "rate too fast": (voice_pb2.SynthesizeRequest(text="hi", rate=5), Code.INVALID_ARGUMENT, "4"),
    "rate not a number": (voice_pb2.SynthesizeRequest(text="hi", rate=math.nan), Code.INVALID_ARGUMENT, "rate"),
    "unknown encoding": (voice_pb2.SynthesizeRequest(text="hi", encoding=7), Code.INVALID_ARGUMENT,  # type: ignore[arg-type]
                         "AUDIO_ENCODING_WAV"),
}


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("case", BAD)
async def test_bad_input_gets_its_status_on_both_calls(voice: voice_pb2_grpc.VoiceStub, case: str) -> None:
    request, code, says = BAD[case]
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await voice.Synthesize(request, timeout=30)
    assert unary.value.code() == code and says in unary.value.details(), unary.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as stream:
        async for _ in voice.SynthesizeStream(request, timeout=30):
            pass
    assert stream.value.code() == code and says in stream.value.details(), stream.value.details()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_stream_cannot_be_a_wav(voice: voice_pb2_grpc.VoiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in voice.SynthesizeStream(voice_pb2.SynthesizeRequest(
                text="hi", encoding=voice_pb2.AUDIO_ENCODING_WAV), timeout=30):
            pass
    assert refused.value.code() == Code.INVALID_ARGUMENT and "Synthesize" in refused.value.details()


@pytest.mark.asyncio(loop_scope="session")
async def test_hostile_text_is_spoken_not_run(voice: voice_pb2_grpc.VoiceStub) -> None:
    for text in ("--help; rm -rf / && echo $(whoami)", "-v de `reboot`", "\x00\x01 | cat /etc/passwd"):
        reply = await voice.Synthesize(voice_pb2.SynthesizeRequest(text=text), timeout=30)
        assert reply.duration_s > 0.3, text


@pytest.mark.asyncio(loop_scope="session")
async def test_voices_and_metrics(voice: voice_pb2_grpc.VoiceStub, voice_node: Node) -> None:
    listed = await voice.ListVoices(voice_pb2.ListVoicesRequest(), timeout=10)
    assert [(v.name, v.engine, v.is_default) for v in listed.voices] == [("en-us", "espeak-ng", True),
                                                                       ("joe", "piper", False)]
    await voice.Synthesize(voice_pb2.SynthesizeRequest(text=SENTENCE, model="joe"), timeout=60)
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{voice_node.metrics_port}/metrics", timeout=10).read().decode())
    for metric in ('lanai_voice_characters_total{model="joe"}', 'lanai_voice_audio_seconds_total{model="joe"}',
                   'lanai_voice_real_time_factor_count{model="joe"}', "lanai_voice_time_to_first_audio_seconds_count",
                   'lanai_requests_total{code="OK",method="Synthesize",node="voice-node",service="voice"}'):
        line = next((row for row in body.splitlines() if row.startswith(metric)), "")
        assert line and float(line.split()[-1]) > 0, metric
