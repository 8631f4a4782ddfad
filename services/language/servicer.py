"""lanai.language.v1.Language: gRPC glue between requests and the language engine."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.services.core import metrics as core_metrics
from lanai.services.core.admission import Timing
from lanai.services.core.hosted import Board, HostedService, ModelFacts
from lanai.services.core.wire import served_by
from lanai.services.language import convert, metrics
from lanai.services.language.embed import Embedder
from lanai.services.language.engines import Engine
from lanai.services.language.types import Chunk, Message, Sampling, Usage

THROUGHPUT_UNIT = "tokens_per_second"
EMBED_UNIT = "texts_per_second"
MEASURE_PROMPT = "Write one sentence about the sea."


class LanguageService(HostedService):
    """The language service as a node hosts it: a generation engine, embedding models,
    admission control (a slot is a place in the batch; an Embed call holds one while it runs)
    and servicer."""

    name = "language"
    grpc_service = "lanai.language.v1.Language"

    def __init__(self, engine: Engine, embedder: Embedder, board: Board) -> None:
        self.engine = engine
        self.embedder = embedder
        super().__init__(board, engine.slots, engine.config.max_queue,
                         {**{m.name: THROUGHPUT_UNIT for m in engine.models},
                          **{m.name: EMBED_UNIT for m in embedder.models}})

    def models(self) -> Sequence[ModelFacts]:
        return [*(ModelFacts(m.name, m.name == self.engine.default_model, m.source, m.devices, THROUGHPUT_UNIT,
                             engine=self.engine.name, task="generate") for m in self.engine.models),
                *(ModelFacts(m.name, m.name == self.embedder.default_model, m.source, m.devices, EMBED_UNIT,
                             engine="onnxruntime", task="embed") for m in self.embedder.models)]

    def register(self, server: grpc.aio.Server) -> None:
        language_pb2_grpc.add_LanguageServicer_to_server(LanguageServicer(self), server)

    def close(self) -> None:
        self.engine.close()

    async def measure(self) -> None:
        """Seed each model's throughput with a short greedy generation (also compiles and warms
        the model, so the first client does not pay for it)."""
        for model in self.engine.models:
            tokens = self.engine.encode(model.name, [Message("user", MEASURE_PROMPT)])
            async for chunk in self.engine.generate(model.name, tokens, Sampling(max_tokens=16, temperature=0.0)):
                if chunk.usage is not None and chunk.usage.tokens_per_second > 0:
                    self.board.observe(self.name, model.name, chunk.usage.tokens_per_second)
        for encoder in self.embedder.models:
            started = time.perf_counter()
            await asyncio.to_thread(self.embedder.embed, encoder.name, [MEASURE_PROMPT] * 8)
            self.board.observe(self.name, encoder.name, 8 / (time.perf_counter() - started))

    async def stream(self, request: language_pb2.GenerateRequest, model: str,
                     context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[tuple[Chunk, Timing]]:
        """Validate, wait for a place in the batch, then generate `model` (resolved by the caller);
        yields chunks with the timing so far."""
        cfg = self.engine.config
        sampling = convert.sampling(request.sampling, cfg.default_max_tokens, cfg.max_tokens_limit)
        prompt = convert.prompt(request)
        # off the event loop: a prompt may be megabytes of text
        tokens = await asyncio.to_thread(self.engine.encode, model, prompt, request.continuation)
        # A continuation is part of the answer: its tokens are completion tokens and use up max_tokens.
        continued = (len(tokens) - len(await asyncio.to_thread(self.engine.encode, model, prompt))
                     if request.continuation else 0)
        if continued >= sampling.max_tokens:
            yield Chunk("", "length", Usage(len(tokens) - continued, continued, 0.0, 0.0)), Timing(0.0, 0.0)
            return
        sampling = dataclasses.replace(sampling, max_tokens=sampling.max_tokens - continued)
        async with self.admission.hold(tag=model, timeout=context.time_remaining()) as queued_s:
            core_metrics.QUEUE_SECONDS.labels(self.name).observe(queued_s)
            started = time.perf_counter()
            async for chunk in self.engine.generate(model, tokens, sampling):
                timing = Timing(queued_s, time.perf_counter() - started)
                if chunk.usage is not None:
                    self.observe(model, chunk.usage, timing)
                    if continued:
                        chunk = dataclasses.replace(chunk, usage=dataclasses.replace(
                            chunk.usage, prompt_tokens=chunk.usage.prompt_tokens - continued,
                            completion_tokens=chunk.usage.completion_tokens + continued))
                yield chunk, timing

    async def embed(self, request: language_pb2.EmbedRequest, model: str,
                    context: grpc.aio.ServicerContext[Any, Any]) -> language_pb2.EmbedResponse:
        texts = list(request.texts)
        self.embedder.check(texts)  # before any queueing
        result, timing = await self.admission.run(lambda: self.embedder.embed(model, texts), tag=model,
                                                  timeout=context.time_remaining())
        self.record(model, timing, speed=len(texts) / timing.compute_s if timing.compute_s > 0 else 0.0)
        return convert.embed_response(result, self.embedder.info(model), served_by(self.node_id, model, timing))

    def observe(self, model: str, usage: Usage, timing: Timing) -> None:
        """Record a finished generation in metrics and in the model's measured throughput."""
        # the queue time was recorded when the place in the batch was granted
        core_metrics.COMPUTE_SECONDS.labels(self.name, model).observe(timing.compute_s)
        metrics.PROMPT_TOKENS.labels(model).inc(usage.prompt_tokens)
        metrics.GENERATED_TOKENS.labels(model).inc(usage.completion_tokens)
        if usage.completion_tokens:
            metrics.TIME_TO_FIRST_TOKEN.labels(model).observe(usage.time_to_first_token_s)
        if usage.tokens_per_second > 0:
            metrics.TOKENS_PER_SECOND.labels(model).observe(usage.tokens_per_second)
            self.board.observe(self.name, model, usage.tokens_per_second)


class LanguageServicer(language_pb2_grpc.LanguageServicer):
    def __init__(self, service: LanguageService) -> None:
        self._service = service
        self._node_id = service.node_id

    async def Generate(self, request: language_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> language_pb2.GenerateResponse:
        model = self._service.engine.resolve(request.model)
        parts: list[str] = []
        async for chunk, timing in self._service.stream(request, model, context):
            parts.append(chunk.text)
            if chunk.usage is not None:
                return convert.response("".join(parts), chunk.finish, chunk.usage,
                                        served_by(self._node_id, model, timing))
        raise AssertionError("the engine ended a generation without a last chunk")

    async def Embed(self, request: language_pb2.EmbedRequest,
                    context: grpc.aio.ServicerContext[Any, Any]) -> language_pb2.EmbedResponse:
        return await self._service.embed(request, self._service.embedder.resolve(request.model), context)

    async def GenerateStream(self, request: language_pb2.GenerateRequest,
                             context: grpc.aio.ServicerContext[Any, Any]
                             ) -> AsyncIterator[language_pb2.GenerateStreamResponse]:
        model = self._service.engine.resolve(request.model)
        first = True
        async for chunk, timing in self._service.stream(request, model, context):
            last = chunk.usage is not None
            if not chunk.text and not last:
                continue
            yield language_pb2.GenerateStreamResponse(
                delta=chunk.text, finish_reason=convert.finish_reason(chunk.finish),
                usage=convert.usage(chunk.usage) if chunk.usage is not None else None,
                served_by=served_by(self._node_id, model, timing) if first or last else None)
            first = False
