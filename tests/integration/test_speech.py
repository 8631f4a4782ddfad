"""Transcription against a real node with tiny.en: files, PCM, formats, and live streams."""

from __future__ import annotations

import asyncio
import io
import time

import av
import grpc
import numpy as np
import pytest

from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.node import Node

from .conftest import has_keywords, wav_pcm

pytestmark = pytest.mark.asyncio(loop_scope="session")


def request(audio: speech_pb2.Audio, **options: object) -> speech_pb2.TranscribeRequest:
    return speech_pb2.TranscribeRequest(audio=audio, options=speech_pb2.TranscriptionOptions(**options))  # type: ignore[arg-type]


async def test_transcribes_a_wav_file(channel: grpc.aio.Channel, node: Node, fox_wav: bytes) -> None:
    response = await speech_pb2_grpc.SpeechStub(channel).Transcribe(
        request(speech_pb2.Audio(encoded=fox_wav), word_timestamps=True))
    assert has_keywords(response.text), response.text
    assert response.language == "en"
    assert 4.5 < response.audio_duration_s < 6.0
    assert response.segments and response.segments[0].start_s < response.segments[-1].end_s
    assert any(w.text.strip().lower().startswith("lazy") for s in response.segments for w in s.words)
    served = response.served_by
    assert (served.node_id, served.model) == (node.node_id, "tiny.en")
    assert served.compute_ms > 0


async def test_transcribes_raw_pcm(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    rate, pcm = wav_pcm(fox_wav)
    stereo = np.repeat(pcm, 2)  # the same signal on both channels
    audio = speech_pb2.Audio(pcm=speech_pb2.RawPcm(
        format=speech_pb2.PcmFormat(sample_rate_hz=rate, sample_width_bytes=2, channels=2), data=stereo.tobytes()))
    response = await speech_pb2_grpc.SpeechStub(channel).Transcribe(request(audio))
    assert has_keywords(response.text), response.text
    assert abs(response.audio_duration_s - pcm.size / rate) < 0.05


@pytest.mark.parametrize("container,codec", [("flac", "flac"), ("ogg", "libopus"), ("mp3", "libmp3lame"), ("adts", "aac")])
async def test_transcribes_encoded_formats(channel: grpc.aio.Channel, fox_wav: bytes, container: str,
                                          codec: str) -> None:
    rate, pcm = wav_pcm(fox_wav)
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder to make the test file")
    response = await speech_pb2_grpc.SpeechStub(channel).Transcribe(
        request(speech_pb2.Audio(encoded=encode(pcm, rate, container, codec))))
    assert has_keywords(response.text), f"{container}: {response.text}"


def encode(pcm: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    buf = io.BytesIO()
    out_rate = 16000 if codec == "libopus" else rate  # Opus takes 8/12/16/24/48 kHz only
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate, layout="mono")
        stream.bit_rate = 128_000  # lossy codecs at a decent rate: the test is about decoding, not artefacts
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=out_rate,
                                      frame_size=stream.codec_context.frame_size or None)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def stream_requests(pcm16k: bytes, *, pace: bool, sent: list[float], chunk_s: float = 0.1,
                    config: speech_pb2.StreamConfig | None = None):  # type: ignore[no-untyped-def]
    async def gen():  # type: ignore[no-untyped-def]
        yield speech_pb2.StreamTranscribeRequest(config=config or speech_pb2.StreamConfig(
            format=speech_pb2.PcmFormat(sample_rate_hz=16000), options=speech_pb2.TranscriptionOptions()))
        step = int(16000 * chunk_s) * 2
        for offset in range(0, len(pcm16k), step):
            if pace:
                await asyncio.sleep(chunk_s)
            yield speech_pb2.StreamTranscribeRequest(audio=pcm16k[offset:offset + step])
        sent.append(time.monotonic())
    return gen()


def to_16k(wav: bytes, silence_after_s: float = 0.0) -> bytes:
    from lanai.services.speech.audio import decode_encoded

    samples = decode_encoded(wav, 1e9)
    samples = np.concatenate([samples, np.zeros(int(16000 * silence_after_s), np.float32)])
    return (samples * 32767).astype("<i2").tobytes()


async def test_stream_shows_partials_while_sending_then_a_final(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    sent: list[float] = []
    events: list[tuple[float, speech_pb2.StreamTranscribeResponse]] = []
    call = speech_pb2_grpc.SpeechStub(channel).StreamTranscribe(
        stream_requests(to_16k(fox_wav, silence_after_s=1.0), pace=True, sent=sent))
    async for response in call:
        events.append((time.monotonic(), response))
    finals = [r for _, r in events if r.is_final]
    partials = [(t, r) for t, r in events if not r.is_final]
    assert partials, "no partial hypothesis arrived"
    assert partials[0][0] < sent[0], "the first partial only arrived after the client had sent everything"
    assert events.index(partials[0]) < events.index(next(e for e in events if e[1].is_final))
    assert len(finals) == 1 and finals[0].end_of_utterance
    assert has_keywords(finals[0].text), finals[0].text
    assert finals[0].segments and finals[0].segments[-1].end_s <= finals[0].end_s + 0.05
    assert finals[0].served_by.model == "tiny.en"


async def test_stream_separates_utterances_and_flushes_on_half_close(channel: grpc.aio.Channel, speak) -> None:  # type: ignore[no-untyped-def]
    first = to_16k(speak("Good morning, this is the first sentence.", "first"), silence_after_s=1.2)
    second = to_16k(speak("And here comes the second one about the weather.", "second"))  # no silence: flush
    sent: list[float] = []
    responses = [r async for r in speech_pb2_grpc.SpeechStub(channel).StreamTranscribe(
        stream_requests(first + second, pace=False, sent=sent))]
    finals = [r for r in responses if r.is_final]
    assert [f.utterance_id for f in finals] == [0, 1], [(f.utterance_id, f.text) for f in finals]
    assert "first" in finals[0].text.lower() and "weather" in finals[1].text.lower()
    assert all(f.end_of_utterance for f in finals)
    assert finals[0].end_s <= finals[1].start_s + 0.25
    assert finals[1].end_s == pytest.approx((len(first) + len(second)) / 2 / 16000, abs=0.05)


async def test_stream_without_partials_and_with_resampling(channel: grpc.aio.Channel, fox_wav: bytes) -> None:
    rate, pcm = wav_pcm(fox_wav)  # 22.05 kHz: the node resamples
    config = speech_pb2.StreamConfig(format=speech_pb2.PcmFormat(sample_rate_hz=rate), disable_partials=True)
    sent: list[float] = []
    step = 4410 * 2
    data = pcm.tobytes() + bytes(rate * 2)  # one second of silence after the speech

    async def gen():  # type: ignore[no-untyped-def]
        yield speech_pb2.StreamTranscribeRequest(config=config)
        for offset in range(0, len(data), step - 1):  # odd chunk sizes split frames
            yield speech_pb2.StreamTranscribeRequest(audio=data[offset:offset + step - 1])

    responses = [r async for r in speech_pb2_grpc.SpeechStub(channel).StreamTranscribe(gen())]
    assert responses and all(r.is_final for r in responses)
    assert has_keywords(" ".join(r.text for r in responses))
    del sent
