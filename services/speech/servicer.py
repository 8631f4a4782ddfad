"""lanai.speech.v1.Speech: gRPC glue between requests and the speech engine."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import numpy as np

from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.services.core.admission import Timing
from lanai.services.core.errors import InvalidInput
from lanai.services.core.hosted import Board, HostedService, ModelFacts
from lanai.services.core.wire import served_by
from lanai.services.speech import convert, metrics
from lanai.services.speech.audio import SAMPLE_RATE, Samples, check_pcm, decode_encoded, decode_pcm
from lanai.services.speech.engine import LANGUAGES, SpeechEngine
from lanai.services.speech.streaming import SpeechStream, StreamSettings
from lanai.services.speech.types import TranscribeOptions, Transcript

THROUGHPUT_UNIT = "audio_seconds_per_second"


class SpeechService(HostedService):
    """The speech service as a node hosts it: engine, admission control and servicer."""

    name = "speech"
    grpc_service = "lanai.speech.v1.Speech"

    def __init__(self, engine: SpeechEngine, board: Board) -> None:
        self.engine = engine
        super().__init__(board, engine.config.slots, engine.config.max_queue,
                         {m.name: THROUGHPUT_UNIT for m in engine.models})

    def models(self) -> Sequence[ModelFacts]:
        return [ModelFacts(m.name, m.name == self.engine.default_model, m.source, (m.device,), THROUGHPUT_UNIT,
                           engine="faster-whisper", languages=LANGUAGES if m.multilingual else ("en",))
                for m in self.engine.models]

    def register(self, server: grpc.aio.Server) -> None:
        speech_pb2_grpc.add_SpeechServicer_to_server(SpeechServicer(self), server)

    async def measure(self) -> None:
        """Seed each model's throughput with a short self-measurement: 10 s of silence (Whisper's
        encoder always sees a 30 s window, so this mostly measures the machine's speed; 10 s
        is a typical request, where 3 s read as half the speed real requests then show)."""
        silence = np.zeros(10 * SAMPLE_RATE, np.float32)
        for model in self.engine.models:
            options = self.engine.resolve(TranscribeOptions(model=model.name))
            transcript, timing = await self.admission.run(
                functools.partial(self.engine.transcribe, silence, options, quick=True), tag=model.name)
            self.board.observe(self.name, model.name, transcript.duration_s / max(timing.compute_s, 1e-6))

    def observe(self, transcript: Transcript, model: str, timing: Timing) -> None:
        """Record a finished decode in metrics and in the model's measured throughput."""
        fast = transcript.duration_s > 0 and timing.compute_s > 0
        self.record(model, timing, speed=transcript.duration_s / timing.compute_s if fast else 0.0)
        metrics.AUDIO_SECONDS.labels(model).inc(transcript.duration_s)
        if fast:
            metrics.REAL_TIME_FACTOR.labels(model).observe(timing.compute_s / transcript.duration_s)


class SpeechServicer(speech_pb2_grpc.SpeechServicer):
    def __init__(self, service: SpeechService) -> None:
        self._service = service
        self._engine = service.engine
        self._node_id = service.node_id

    async def Transcribe(self, request: speech_pb2.TranscribeRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> speech_pb2.TranscribeResponse:
        options = self._engine.resolve(convert.options(request.options))
        decode = self._decoder(request.audio)

        def job() -> Transcript:
            return self._engine.transcribe(decode(), options)

        transcript, timing = await self._service.admission.run(job, tag=options.model,
                                                               timeout=context.time_remaining())
        self._service.observe(transcript, options.model, timing)
        return convert.transcribe_response(transcript, served_by(self._node_id, options.model, timing))

    async def StreamTranscribe(self, request_iterator: AsyncIterator[speech_pb2.StreamTranscribeRequest],
                               context: grpc.aio.ServicerContext[Any, Any]
                               ) -> AsyncIterator[speech_pb2.StreamTranscribeResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return  # closed before saying anything: nothing to transcribe
        if first.WhichOneof("payload") != "config":
            raise InvalidInput("the first StreamTranscribe message must carry config (format and options); "
                               "send StreamConfig before any audio")
        cfg = first.config
        settings = StreamSettings(convert.pcm_format(cfg.format), self._engine.resolve(convert.options(cfg.options)),
                                  not cfg.disable_partials, convert.partial_interval_s(cfg), convert.segmenter(cfg))
        model, admission = settings.options.model, self._service.admission
        admission.open_stream(self._engine.config.max_streams)
        try:
            async def run_final(job: Callable[[], Transcript]) -> tuple[Transcript, Timing]:
                done = await admission.run(job, tag=model, admitted=True)
                self._service.observe(done[0], model, done[1])
                return done

            stream = SpeechStream(self._engine, settings, run_final, functools.partial(admission.try_run, tag=model))
            async for result in stream.results(_audio_chunks(request_iterator)):
                yield convert.stream_response(result, served_by(self._node_id, model, result.timing))
        finally:
            admission.close_stream()

    def _decoder(self, audio: speech_pb2.Audio) -> Callable[[], Samples]:
        """Validate what is cheap now; the returned call decodes inside the slot."""
        limit = self._engine.config.max_audio_s
        source = audio.WhichOneof("source")
        if source == "encoded":
            return functools.partial(decode_encoded, audio.encoded, limit)
        if source == "pcm":
            fmt = convert.pcm_format(audio.pcm.format)
            check_pcm(audio.pcm.data, fmt, limit)
            return functools.partial(decode_pcm, audio.pcm.data, fmt, limit)
        raise InvalidInput("the request has no audio: set audio.encoded (a file's bytes) "
                           "or audio.pcm (raw samples and their format)")


async def _audio_chunks(requests: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for request in requests:
        kind = request.WhichOneof("payload")
        if kind == "config":
            raise InvalidInput("config was sent twice; send it once, as the first message, then only audio")
        if kind is None:
            raise InvalidInput("a StreamTranscribe message carries neither config nor audio")
        yield request.audio
