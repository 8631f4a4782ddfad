"""lanai.vision.v1.Vision: gRPC glue between requests and the vision engine."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
import numpy as np
from PIL import Image

from lanai.api.common.v1 import common_pb2
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.services.core.admission import Timing
from lanai.services.core.errors import InvalidInput
from lanai.services.core.hosted import Board, HostedService, ModelFacts
from lanai.services.core.wire import served_by
from lanai.services.vision import convert, metrics, video
from lanai.services.vision.engine import VisionEngine
from lanai.services.vision.image import Picture, decode

THROUGHPUT_UNIT = "images_per_second"
R = TypeVar("R")


class VisionService(HostedService):
    """The vision service as a node hosts it: engine, admission control and servicer."""

    name = "vision"
    grpc_service = "lanai.vision.v1.Vision"

    def __init__(self, engine: VisionEngine, board: Board) -> None:
        self.engine = engine
        super().__init__(board, engine.config.slots, engine.config.max_queue,
                         {m.name: THROUGHPUT_UNIT for m in engine.models})

    def models(self) -> Sequence[ModelFacts]:
        return [ModelFacts(m.name, self.engine.defaults.get(m.task) == m.name, m.source, m.devices, THROUGHPUT_UNIT,
                           engine="onnxruntime", task=m.task)
                for m in self.engine.models]

    def register(self, server: grpc.aio.Server) -> None:
        vision_pb2_grpc.add_VisionServicer_to_server(VisionServicer(self), server)

    async def measure(self) -> None:
        """Seed each model's throughput with one run on a small synthetic photo-like image
        (also warms onnxruntime's first-run allocations, so the first client is not slower)."""
        rng = np.random.default_rng(0)
        gradient = np.linspace(0, 255, 320, dtype=np.float32)
        rgb = np.clip(gradient[None, :, None] * 0.6 + rng.normal(64, 32, (240, 320, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG")
        for model in self.engine.models:
            job = functools.partial(self._run_task, model.task, buffer.getvalue(), model.name)
            _, timing = await self.admission.run(job, tag=model.name)
            self.board.observe(self.name, model.name, 1 / max(timing.compute_s, 1e-6))

    def _run_task(self, task: str, data: bytes, model: str) -> object:
        cfg = self.engine.config
        picture = decode(data, max_pixels=cfg.max_pixels, max_side=cfg.default_max_side)
        if task == "classify":
            return self.engine.classify(picture, model, convert.DEFAULT_TOP_K, 0.0)
        if task == "faces":
            return self.engine.faces(picture, model, 0.0)
        return self.engine.read_text(picture, model, 0.0)

    def observe(self, task: str, model: str, timing: Timing) -> None:
        """Record a finished image in metrics and in the model's measured throughput."""
        self.record(model, timing, speed=1 / timing.compute_s if timing.compute_s > 0 else 0.0)
        metrics.IMAGES.labels(task, model).inc()
        metrics.SECONDS.labels(task).observe(timing.compute_s)


class VisionServicer(vision_pb2_grpc.VisionServicer):
    def __init__(self, service: VisionService) -> None:
        self._service = service
        self._engine = service.engine
        self._node_id = service.node_id

    async def Classify(self, request: vision_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> vision_pb2.ClassifyResponse:
        model = self._engine.resolve("classify", request.options.model)
        top_k, threshold = convert.top_k(request.top_k), convert.min_confidence(request.options)
        labels, picture, served = await self._run("classify", model, request.image, request.options, context,
                                                  lambda p: self._engine.classify(p, model, top_k, threshold))
        return convert.classify_response(labels, picture, served)

    async def DetectFaces(self, request: vision_pb2.DetectFacesRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> vision_pb2.DetectFacesResponse:
        model = self._engine.resolve("faces", request.options.model)
        threshold = convert.min_confidence(request.options)
        faces, picture, served = await self._run("faces", model, request.image, request.options, context,
                                                 lambda p: self._engine.faces(p, model, threshold))
        return convert.faces_response(faces, picture, served)

    async def ReadText(self, request: vision_pb2.ReadTextRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> vision_pb2.ReadTextResponse:
        model = self._engine.resolve("ocr", request.options.model)
        threshold = convert.min_confidence(request.options)
        lines, picture, served = await self._run("ocr", model, request.image, request.options, context,
                                                 lambda p: self._engine.read_text(p, model, threshold))
        return convert.text_response(lines, picture, served)

    async def StreamAnalyze(self, request_iterator: AsyncIterator[vision_pb2.StreamAnalyzeRequest],
                            context: grpc.aio.ServicerContext[Any, Any]
                            ) -> AsyncIterator[vision_pb2.StreamAnalyzeResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return  # closed before saying anything
        if first.WhichOneof("payload") != "config":
            raise InvalidInput("the first StreamAnalyze message must carry config (the analyses); send "
                               "AnalyzeConfig before any frame")
        settings = self._settings(first.config)
        cfg, admission = self._engine.config, self._service.admission
        admission.open_stream(cfg.max_streams)
        models = ",".join(settings.models[a] for a in settings.analyses)
        task = "+".join(settings.analyses)
        received, analysed, dropped = (metrics.VIDEO_FRAMES.labels(task, o) for o in ("received", "analysed", "dropped"))
        latency = metrics.VIDEO_SECONDS.labels(task)
        try:
            async def frames() -> AsyncIterator[video.Frame]:
                count = 0
                async for message in request_iterator:
                    count += 1
                    received.inc()
                    yield convert.frame(message, count)

            def check(frame: video.Frame, previous_us: int) -> None:
                video.check_frame(frame, previous_us=previous_us, max_pixels=cfg.max_pixels,
                                  max_bytes=cfg.max_image_bytes)

            async def analyse(frame: video.Frame) -> object:
                done = await admission.run(lambda: self._analyse(frame, settings), tag=settings.models[
                    settings.analyses[0]], admitted=True)
                for task in settings.analyses:
                    self._service.observe(task, settings.models[task], done[1])
                return done

            async for done in video.analyse_stream(frames(), analyse, settings, check):
                (found, picture), timing = cast(tuple[tuple[dict[str, list[Any]], Picture], Timing], done.result)
                analysed.inc()
                dropped.inc(done.dropped)
                latency.observe(time.monotonic() - done.frame.arrived)
                yield convert.analyze_response(done, picture, served_by(self._node_id, models, timing), found)
        finally:
            admission.close_stream()

    def _settings(self, config: vision_pb2.AnalyzeConfig) -> video.Settings:
        analyses = video.analyses_of(list(config.analyses))
        unknown = sorted(set(config.models) - set(analyses))
        if unknown:
            raise InvalidInput(f"models names {unknown[0]!r}, which is not one of the analyses asked for "
                               f"({', '.join(analyses)})")
        models = {a: self._engine.resolve(a, config.models.get(a, "")) for a in analyses}
        limits = self._engine.config
        if config.max_side > limits.max_side_limit:
            raise InvalidInput(f"max_side {config.max_side} is too large; use at most {limits.max_side_limit} "
                               f"(0 for {limits.default_max_side})")
        confidence = convert.min_confidence(vision_pb2.ImageOptions(min_confidence=config.min_confidence))
        interval, max_wait = video.rate_limits(config.max_results_per_second, config.max_latency_ms)
        return video.Settings(analyses, models, convert.top_k(config.top_k), confidence,
                              config.max_side or limits.default_max_side, interval, max_wait)

    def _analyse(self, frame: video.Frame, settings: video.Settings) -> tuple[dict[str, list[Any]], Picture]:
        """One frame, every analysis asked for (in a slot)."""
        picture = video.to_picture(frame, max_pixels=self._engine.config.max_pixels, max_side=settings.max_side)
        found: dict[str, list[Any]] = {}
        for task in settings.analyses:
            model = settings.models[task]
            if task == "faces":
                found[task] = self._engine.faces(picture, model, settings.min_confidence)
            elif task == "classify":
                found[task] = self._engine.classify(picture, model, settings.top_k, settings.min_confidence)
            else:
                found[task] = self._engine.read_text(picture, model, settings.min_confidence)
        return found, picture

    async def _run(self, task: str, model: str, image: vision_pb2.Image, options: vision_pb2.ImageOptions,
                   context: grpc.aio.ServicerContext[Any, Any], infer: Callable[[Picture], R]
                   ) -> tuple[R, Picture, common_pb2.ServedBy]:
        """Check what is cheap now; decode and infer inside a slot (decoding is real work too)."""
        cfg = self._engine.config
        if len(image.encoded) > cfg.max_image_bytes:
            raise InvalidInput(f"the image is {len(image.encoded):,} bytes; this node accepts at most "
                               f"{cfg.max_image_bytes:,}: compress or downscale it")
        if options.max_side > cfg.max_side_limit:
            raise InvalidInput(f"max_side {options.max_side} is too large; use at most {cfg.max_side_limit} "
                               f"(0 for {cfg.default_max_side})")
        max_side = options.max_side or cfg.default_max_side

        def job() -> tuple[R, Picture]:
            picture = decode(image.encoded, max_pixels=cfg.max_pixels, max_side=max_side)
            return infer(picture), picture

        (result, picture), timing = await self._service.admission.run(job, tag=model,
                                                                      timeout=context.time_remaining())
        self._service.observe(task, model, timing)
        return result, picture, served_by(self._node_id, model, timing)
