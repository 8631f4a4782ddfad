"""The Wyoming door (issue 15) with the real `wyoming` client, the way Home Assistant uses it:
describe, a transcription of a real WAV sent in 1024-sample chunks, synthesis whole and with the
text streamed in, and junk on a raw socket. A routing node with speech (tiny.en) and voice
(espeak-ng) on loopback; the mDNS announcement is tested across namespaces in tests/multihost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from lanai.api.mesh.v1 import mesh_pb2
from lanai.mesh.doors.openai_audio import resample
from lanai.mesh.doors.wyoming_door import WyomingServer
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.premises import Premises
from lanai.mesh.presence import MeshConfig
from lanai.services.speech.config import SpeechConfig

from .conftest import INSECURE, has_keywords, wav_pcm

SENTENCE = "The quick brown fox jumps over the lazy dog."
SAID = ("quick", "brown", "fox")
"""What tiny.en reliably hears of SENTENCE in espeak-ng's voice ("lazy dog" comes out as "lazy nog")."""
HA_RATE, HA_CHUNK = 16_000, 1024
"""What Home Assistant sends: 16 kHz 16-bit mono, 1024 samples an event."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def wyoming_node(lanai_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=lanai_home, services=("speech", "voice"), host="127.0.0.1", port=0, mesh_port=0,
                        metrics_port=None, http_port=None, wyoming_port=0, node_id="wyoming-node", security=INSECURE,
                        mesh=MeshConfig(router=True, discovery="none"), max_message_bytes=1024 * 1024,
                        configs={"speech": SpeechConfig(models=("tiny.en",))})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


def client(node: Node) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", node.wyoming_port)


async def until(c: AsyncTcpClient, *types: str, timeout: float = 120) -> list[Event]:
    """Every event up to and including the first of `types` (an error ends the wait too)."""
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(c.read_event(), timeout)
        assert event is not None, f"the door closed the connection after {[e.type for e in events]}"
        events.append(event)
        if event.type in types or Error.is_type(event.type):
            return events


async def transcribe(node: Node, pcm: np.ndarray, rate: int, **asked: str) -> list[Event]:
    async with client(node) as c:
        await c.write_event(Transcribe(**asked).event())  # type: ignore[arg-type]
        await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        data = pcm.astype("<i2").tobytes()
        for at in range(0, len(data), HA_CHUNK * 2):
            await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=data[at:at + HA_CHUNK * 2]).event())
        await c.write_event(AudioStop().event())
        events = await until(c, "transcript")
        if not Error.is_type(events[-1].type):
            events += await until(c, "transcript-stop", timeout=10)
        return events


async def synthesize(c: AsyncTcpClient, *requests: Event, end: str = "audio-stop") -> list[Event]:
    for request in requests:
        await c.write_event(request)
    return await until(c, end)


def audio_of(events: list[Event]) -> tuple[int, np.ndarray]:
    starts = [AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type)]
    assert starts and all(s.width == 2 and s.channels == 1 for s in starts)
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    return starts[0].rate, np.frombuffer(b"".join(c.audio for c in chunks), "<i2")


async def test_describe_lists_the_mesh_models_and_voices(wyoming_node: Node) -> None:
    async with client(wyoming_node) as c:
        await c.write_event(Describe().event())
        info = Info.from_event((await until(c, "info"))[-1])
        await c.write_event(Ping(text="hi").event())
        assert Pong.from_event((await until(c, "pong"))[-1]).text == "hi"
    (asr,), (tts,) = info.asr, info.tts
    assert asr.name == "lanai" and asr.installed and asr.supports_transcript_streaming
    assert [(m.name, m.languages) for m in asr.models] == [("tiny.en", ["en"])]
    voices = {v.name: v for v in tts.voices}
    assert "en-us" in voices and voices["en-us"].languages == ["en-US"] and tts.supports_synthesize_streaming
    assert tts.voices[0].description and "wyoming-node" in tts.voices[0].description


async def test_transcribes_a_wav_the_way_home_assistant_sends_it(wyoming_node: Node, fox_wav: bytes) -> None:
    rate, pcm = wav_pcm(fox_wav)
    ok = counted("transcribe", "ok")
    at_16k = np.frombuffer(resample(pcm.tobytes(), rate, HA_RATE), "<i2")
    events = await transcribe(wyoming_node, at_16k, HA_RATE, name="tiny.en", language="en")
    kinds = [e.type for e in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"], kinds
    transcript = Transcript.from_event(events[-2])
    chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
    assert has_keywords(transcript.text), transcript.text
    assert chunks and "".join(chunks) == transcript.text  # the streamed pieces add up to the whole
    assert transcript.language == "en"
    assert TranscriptStart.is_type(kinds[0]) and TranscriptStop.is_type(kinds[-1])
    assert counted("transcribe", "ok") == ok + 1


async def test_default_model_at_the_wav_rate_with_a_regional_language(wyoming_node: Node, fox_wav: bytes) -> None:
    rate, pcm = wav_pcm(fox_wav)  # espeak-ng's 22.05 kHz, no Transcribe name: the default model
    events = await transcribe(wyoming_node, pcm, rate, language="en-US")
    assert has_keywords(Transcript.from_event(events[-2]).text)


async def test_synthesis_then_transcription_round_trip(wyoming_node: Node) -> None:
    async with client(wyoming_node) as c:
        events = await synthesize(c, Synthesize(text=SENTENCE).event())
        rate, audio = audio_of(events)
        assert [e.type for e in events][0] == "audio-start" and len(audio) / rate > 1.5
        # The same connection takes the next request; a voice asked for by language.
        events = await synthesize(c, Synthesize(text="Hello.", voice=SynthesizeVoice(language="en-US")).event())
        assert audio_of(events)[1].size > 0
    heard = await transcribe(wyoming_node, audio, rate)
    assert has_keywords(Transcript.from_event(heard[-2]).text, SAID)


async def test_streamed_text_is_spoken_sentence_by_sentence(wyoming_node: Node) -> None:
    async with client(wyoming_node) as c:
        events = await synthesize(
            c, SynthesizeStart(voice=SynthesizeVoice(name="en-us")).event(),
            SynthesizeChunk(text="Hello there. The quick brown").event(),
            SynthesizeChunk(text=" fox jumps over").event(),
            SynthesizeChunk(text=" the lazy dog.").event(),
            Synthesize(text="Hello there. The quick brown fox jumps over the lazy dog.").event(),  # for old servers
            SynthesizeStop().event(), end="synthesize-stopped")
    kinds = [e.type for e in events]
    assert kinds.count("audio-start") == 2 and kinds.count("audio-stop") == 2, kinds  # one per sentence, no repeat
    assert SynthesizeStopped.is_type(kinds[-1]) and kinds[-2] == "audio-stop"
    heard = await transcribe(wyoming_node, *reversed(audio_of(events)))  # type: ignore[arg-type]
    assert has_keywords(Transcript.from_event(heard[-2]).text, ("hello", "quick"))


def counted(kind: str, code: str) -> float:
    return REGISTRY.get_sample_value("lanai_wyoming_requests_total", {"kind": kind, "code": code}) or 0.0


async def test_unknown_model_and_voice_get_not_found(wyoming_node: Node, fox_wav: bytes) -> None:
    rate, pcm = wav_pcm(fox_wav)
    before = counted("transcribe", "not_found"), counted("synthesize", "not_found")
    events = await transcribe(wyoming_node, pcm[:rate], rate, name="large-v9")
    error = Error.from_event(events[-1])
    assert error.code == "not_found" and "large-v9" in error.text
    for voice in (SynthesizeVoice(name="nobody"), SynthesizeVoice(language="tlh")):
        async with client(wyoming_node) as c:
            error = Error.from_event((await synthesize(c, Synthesize(text="Hi.", voice=voice).event()))[-1])
        assert error.code == "not_found" and ("nobody" in error.text or "tlh" in error.text), error
    assert (counted("transcribe", "not_found"), counted("synthesize", "not_found")) == (before[0] + 1, before[1] + 2)


JUNK = [
    (b"this is not json\n", "not valid JSON"),
    (b'["a list"]\n', "JSON object"),
    (b'{"data": {}}\n', "needs a 'type'"),
    (b'{"type": "audio-chunk", "payload_length": 99999999999}\n', "over this door's limit"),
    (b'{"type": "describe", "data_length": -1}\n', "byte count"),
    (b'{"type": "describe", "data_length": 10}\n{"x"', "ended inside a describe event"),
    (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 2}\nab',
     "before audio-start"),
    (b'{"type": "audio-start", "data": {"rate": "fast", "width": 2, "channels": 1}}\n', "'rate'"),
    (b'{"type": "audio-stop"}\n', "without audio-start"),
    (b'{"type": "synthesize", "data": {"text": 5}}\n', "'text'"),
    (b'{"type": "synthesize-chunk", "data": {"text": "x"}}\n', "before synthesize-start"),
    (b'{"type": "' + b"x" * 70_000 + b'"}\n', "over 65536 bytes"),
    (b"[" * 20_000 + b"\n", "nested too deeply"),
    (b'{"type": "audio-start", "data": {"rate": 99999999999, "width": 2, "channels": 1}}\n', "positive whole"),
    (b'{"type": "audio-start", "data": {"rate": 16000, "width": -1, "channels": 1}}\n', "positive whole"),
    (b'{"type": "synthesize", "data": {"text": "\\ud800"}}\n', "not valid Unicode"),
    (b'{"type": "describe", "data": []}\n', "must be a JSON object"),
    (b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
     b'{"type": "audio-chunk", "data": {"rate": 8000, "width": 2, "channels": 1}, "payload_length": 2}\nab',
     "audio-start said 16000 Hz"),
    (b'{"type": "audio-start", "data": {"rate": 16000, "width": 3, "channels": 1}}\n'
     b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 3, "channels": 1}, "payload_length": 3}\nabc'
     b'{"type": "audio-stop"}\n', "width"),
]


@pytest.mark.parametrize("junk,says", JUNK)
async def test_junk_gets_an_error_event_and_the_door_stays_up(wyoming_node: Node, junk: bytes, says: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", wyoming_node.wyoming_port)
    try:
        writer.write(junk)
        writer.write_eof()  # a cut-off event ends with the connection
        await writer.drain()
        header = json.loads(await asyncio.wait_for(reader.readline(), 30))
        assert header["type"] in ("transcript-start", "error"), header
        while header["type"] != "error":  # an audio-start is answered with transcript-start first
            if header.get("data_length"):
                await reader.readexactly(header["data_length"])
            header = json.loads(await asyncio.wait_for(reader.readline(), 30))
        data = header.get("data") or json.loads(await reader.readexactly(header["data_length"]))
        assert data["code"] == "invalid_argument" and says in data["text"], data
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then the door hangs up
    finally:
        writer.close()
    async with client(wyoming_node) as c:  # and serves the next client
        await c.write_event(Describe().event())
        assert (await until(c, "info"))[-1].type == "info"


async def open_streams(node: Node) -> int:
    assert node.doors is not None
    return sum(s.open_streams for n in await node.doors.upstream.nodes() if n.state == mesh_pb2.NODE_STATE_UP
               for s in n.last_load.services if s.service == "speech")


async def test_a_client_that_leaves_mid_transcription_frees_the_stream(wyoming_node: Node, long_wav: bytes) -> None:
    rate, pcm = wav_pcm(long_wav)
    c = client(wyoming_node)
    await c.connect()
    await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
    await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[: rate * 3].tobytes()).event())
    for _ in range(25):  # the router's view comes with the node's load reports, every 0.5 s
        if await open_streams(wyoming_node) >= 1:
            break
        await asyncio.sleep(0.2)
    assert await open_streams(wyoming_node) >= 1
    await c.disconnect()  # gone without audio-stop
    for _ in range(50):
        await asyncio.sleep(0.2)
        if await open_streams(wyoming_node) == 0:
            break
    assert await open_streams(wyoming_node) == 0


async def test_a_connection_from_outside_the_allow_list_is_refused(wyoming_node: Node) -> None:
    assert wyoming_node.doors is not None
    server = WyomingServer(wyoming_node.doors.upstream, "127.0.0.1", 0, allow=Premises.parse("10.0.0.0/8"),
                           max_payload=1024)
    await server.start()
    try:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Describe().event())  # what Home Assistant sends as soon as it connects
            error = Error.from_event((await until(c, "info"))[-1])
            assert await c.read_event() is None
    finally:
        await server.stop()
    assert error.code == "permission_denied" and "--wyoming-allow" in error.text


async def test_a_node_shutting_down_tells_its_wyoming_clients(wyoming_node: Node, fox_wav: bytes) -> None:
    assert wyoming_node.doors is not None
    server = WyomingServer(wyoming_node.doors.upstream, "127.0.0.1", 0, allow=Premises.parse("127.0.0.0/8"),
                           max_payload=64 * 1024)
    await server.start()
    rate, pcm = wav_pcm(fox_wav)
    async with AsyncTcpClient("127.0.0.1", server.port) as c:
        await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[:rate].tobytes()).event())
        assert (await until(c, "transcript-start"))[-1].type == "transcript-start"
        await server.stop()  # mid-transcription
        error = Error.from_event((await until(c, "transcript"))[-1])
    assert error.code == "unavailable" and "shutting down" in error.text
