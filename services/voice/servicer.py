"""lanai.voice.v1.Voice: gRPC glue between requests and the voice engine."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc
from lanai.services.core.admission import Timing
from lanai.services.core.hosted import Board, HostedService, ModelFacts
from lanai.services.core.wire import served_by
from lanai.services.voice import convert, metrics, text
from lanai.services.voice.config import VoiceConfig
from lanai.services.voice.engine import VoiceEngine
from lanai.services.voice.types import Audio

THROUGHPUT_UNIT = "audio_seconds_per_second"
MEASURE_TEXT = "Good morning, the weather is lovely today."
CHUNK_S = 0.5
"""A stream sends a long sentence's audio in pieces of this many seconds (a player's buffer)."""


class VoiceService(HostedService):
    """The voice service as a node hosts it: voices, admission control and servicer. A slot
    synthesises one sentence (a stream takes a slot per sentence, so one long answer does not
    hold a slot while others wait)."""

    name = "voice"
    grpc_service = "lanai.voice.v1.Voice"

    def __init__(self, engine: VoiceEngine, config: VoiceConfig, board: Board) -> None:
        self.engine = engine
        self.config = config
        super().__init__(board, config.slots, config.max_queue, {v.name: THROUGHPUT_UNIT for v in engine.voices})

    def models(self) -> Sequence[ModelFacts]:
        return [ModelFacts(v.name, v.name == self.engine.default_voice, v.source, (self.engine.device_of(v.name),),
                           THROUGHPUT_UNIT, engine=v.engine, languages=(v.language,)) for v in self.engine.voices]

    def register(self, server: grpc.aio.Server) -> None:
        voice_pb2_grpc.add_VoiceServicer_to_server(VoiceServicer(self), server)

    def close(self) -> None:
        self.engine.close()

    async def measure(self) -> None:
        """Seed each voice's throughput with one short sentence (also warms onnxruntime)."""
        for voice in self.engine.voices:
            audio, timing = await self.admission.run(
                functools.partial(self.engine.synthesize_sentence, MEASURE_TEXT, voice.name, 1.0), tag=voice.name)
            self.board.observe(self.name, voice.name, audio.duration_s / max(timing.compute_s, 1e-6))

    def observe(self, voice: str, audio: Audio, characters: int, timing: Timing) -> None:
        fast = audio.duration_s > 0 and timing.compute_s > 0
        self.record(voice, timing, speed=audio.duration_s / timing.compute_s if fast else 0.0)
        metrics.CHARACTERS.labels(voice).inc(characters)
        metrics.AUDIO_SECONDS.labels(voice).inc(audio.duration_s)
        if fast:
            metrics.REAL_TIME_FACTOR.labels(voice).observe(timing.compute_s / audio.duration_s)


class VoiceServicer(voice_pb2_grpc.VoiceServicer):
    def __init__(self, service: VoiceService) -> None:
        self._service = service
        self._engine = service.engine

    def _checked(self, request: voice_pb2.SynthesizeRequest) -> tuple[str, float]:
        voice = self._engine.resolve(request.model)
        rate = request.rate or 1.0
        self._engine.check(request.text, rate)
        return voice, rate

    async def Synthesize(self, request: voice_pb2.SynthesizeRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> voice_pb2.SynthesizeResponse:
        encoded = convert.encoding(request, stream=False)
        voice, rate = self._checked(request)
        audio, timing = await self._service.admission.run(
            functools.partial(self._engine.synthesize, request.text, voice, rate), tag=voice,
            timeout=context.time_remaining())
        self._service.observe(voice, audio, len(request.text), timing)
        body = convert.wav_bytes(audio) if encoded == convert.WAV else audio.pcm
        return voice_pb2.SynthesizeResponse(
            audio=body, format=convert.audio_format(encoded, audio.sample_rate), duration_s=audio.duration_s,
            characters=len(request.text), served_by=served_by(self._service.node_id, voice, timing))

    async def SynthesizeStream(self, request: voice_pb2.SynthesizeRequest,
                               context: grpc.aio.ServicerContext[Any, Any]
                               ) -> AsyncIterator[voice_pb2.SynthesizeStreamResponse]:
        arrived = time.perf_counter()
        encoded = convert.encoding(request, stream=True)
        voice, rate = self._checked(request)
        pieces = text.sentences(request.text)
        queue_s = compute_s = start_s = 0.0
        first = True
        for index, sentence in enumerate(pieces):
            audio, timing = await self._service.admission.run(
                functools.partial(self._engine.synthesize_sentence, sentence, voice, rate), tag=voice,
                timeout=context.time_remaining())
            self._service.observe(voice, audio, len(sentence), timing)
            queue_s, compute_s = queue_s + timing.queue_s, compute_s + timing.compute_s
            step = max(2, int(CHUNK_S * audio.sample_rate) * 2)
            chunks = [audio.pcm[at:at + step] for at in range(0, len(audio.pcm), step)] or [b""]
            for number, chunk in enumerate(chunks):
                message = voice_pb2.SynthesizeStreamResponse(audio=chunk, sentence=index, start_s=start_s,
                                                             text=sentence if number == 0 else "")
                if first:
                    message.format.CopyFrom(convert.audio_format(encoded, audio.sample_rate))
                    metrics.TIME_TO_FIRST_AUDIO.labels(voice).observe(time.perf_counter() - arrived)
                    first = False
                if index == len(pieces) - 1 and number == len(chunks) - 1:
                    message.served_by.CopyFrom(served_by(self._service.node_id, voice, Timing(queue_s, compute_s)))
                start_s += len(chunk) / 2 / audio.sample_rate
                yield message

    async def ListVoices(self, request: voice_pb2.ListVoicesRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> voice_pb2.ListVoicesResponse:
        return voice_pb2.ListVoicesResponse(voices=[
            convert.voice_info(v, v.name == self._engine.default_voice) for v in self._engine.voices])
