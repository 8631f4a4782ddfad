"""The mlx language engine (Apple silicon; also mlx's CPU build): one mlx-lm model per name,
continuous batching on one thread.

All mlx work (loading, prefill, decoding) happens on one generation thread: mlx streams are
thread-local, and one thread stepping one `BatchGenerator` is what continuous batching is.
Requests join the running batch between steps; long prompts are prefilled in chunks of
`PREFILL_CHUNK` tokens interleaved with decode steps, so a new prompt delays the streams
already running by one chunk at a time, not by its whole length. The asyncio side talks to
the thread through a command queue and gets chunks back with `call_soon_threadsafe`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanai.services.core.errors import InvalidInput, Unavailable
from lanai.services.language import blas
from lanai.services.language.config import LanguageConfig
from lanai.services.language.engines import MLX_SLOTS, apple_silicon, resolve_name
from lanai.services.language.stops import StopScanner
from lanai.services.language.types import (FINISH_CANCELLED, FINISH_LENGTH, FINISH_STOP, Chunk, LoadedModel, Message,
                                           Sampling, Usage)
from lanai.services.models import ResolvedModel

log = logging.getLogger(__name__)
PREFILL_CHUNK = 128
"""Prompt tokens processed per step while other requests are decoding."""


@dataclass
class _Request:
    """One generation as the generation thread tracks it."""

    tokens: list[int]
    sampling: Sampling
    emit: Callable[[Chunk | Exception], object]
    detokenizer: Any
    stops: StopScanner
    submitted: float = field(default_factory=time.perf_counter)
    first_token: float = 0.0
    generated: int = 0
    uid: int = -1


class _Model:
    """A loaded model and its batch generator; used only on the generation thread."""

    def __init__(self, resolved: ResolvedModel, config: LanguageConfig) -> None:
        import mlx.core as mx
        from mlx_lm import load

        if config.device == "cpu" or (config.device == "auto" and not apple_silicon()):
            mx.set_default_device(mx.cpu)
        self.mx = mx
        loaded: Any = load(str(resolved.path), return_config=True)
        self.model, self.tokenizer, model_config = loaded
        self.context_length = int(model_config.get("max_position_embeddings") or 2048)
        self.slots = config.slots or MLX_SLOTS
        self.batch: Any = self._new_batch()
        self.device = str(mx.default_device()).removeprefix("Device(").removesuffix(")").split(",")[0]
        self.active: dict[int, _Request] = {}

    def _new_batch(self) -> Any:
        from mlx_lm.generate import BatchGenerator

        return BatchGenerator(  # on mlx-lm's thread-local stream
            self.model, stop_tokens=[[t] for t in sorted(self.tokenizer.eos_token_ids)],
            completion_batch_size=self.slots, prefill_batch_size=self.slots, prefill_step_size=PREFILL_CHUNK)

    def reset(self, error: Exception) -> None:
        """A step failed: fail every request in the batch and start an empty one (the node stays up)."""
        log.error("language: a generation step failed; failing %d request(s)", len(self.active), exc_info=error)
        failed = list(self.active.values())
        self.active.clear()
        self.batch.close()
        self.batch = self._new_batch()  # before anyone hears of the failure: a retry finds a working batch
        for request in failed:
            request.emit(error)

    def close(self) -> None:
        self.batch.close()
        self.batch = None
        self.mx.synchronize()


class MlxEngine:
    name = "mlx"

    def __init__(self, models: Sequence[ResolvedModel], config: LanguageConfig) -> None:
        if not models:
            raise ValueError("the language service needs at least one model")
        self.config = config
        self.blas = blas.preload(config.blas) if config.device != "gpu" else None
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self._models: dict[str, _Model] = {}
        self._closing = False
        started: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(list(models), started), name="lanai-language",
                                        daemon=True)
        self._thread.start()
        if (error := started.get()) is not None:
            raise error
        self.default_model = models[0].name
        self.slots = config.slots or MLX_SLOTS
        self.models = [LoadedModel(r.name, r.source, (m.device + ("+openblas" if self.blas else ""),),
                                   m.context_length) for r, m in ((r, self._models[r.name]) for r in models)]

    # --- asyncio side ----------------------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.default_model, self._models)

    def encode(self, model: str, prompt: str | Sequence[Message], continuation: str = "") -> list[int]:
        """Token ids of a raw prompt or of chat messages rendered with the model's chat template,
        followed by `continuation`."""
        tokenizer: Any = self._models[model].tokenizer
        if isinstance(prompt, str):
            tokens = list(tokenizer.encode(prompt + continuation))
        else:
            messages = [{"role": m.role, "content": m.content} for m in prompt]
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            tokens = list(tokenizer.encode(text + continuation, add_special_tokens=False))
        limit = self._models[model].context_length
        if len(tokens) >= limit:
            raise InvalidInput(f"the prompt is {len(tokens)} tokens; model {model!r} has a context of {limit} "
                               f"tokens, so the prompt must be at most {limit - 1}: shorten it")
        return tokens

    async def generate(self, model: str, tokens: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        """Generate with a place in the batch (the caller holds an admission slot). Leaving the
        iteration early (the client cancelled) removes the request from the batch at once."""
        if self._closing:
            raise Unavailable("the language service is shutting down; send the request to another node")
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Chunk | Exception] = asyncio.Queue()
        target = self._models[model]
        room = target.context_length - len(tokens)
        request = _Request(tokens, dataclasses.replace(sampling, max_tokens=min(sampling.max_tokens, room)),
                           lambda chunk: loop.call_soon_threadsafe(chunks.put_nowait, chunk),
                           target.tokenizer.detokenizer, StopScanner(sampling.stop))
        self._commands.put(lambda: self._insert(target, request))
        finished = False
        try:
            while not finished:
                chunk = await chunks.get()
                if isinstance(chunk, Exception):
                    finished = True
                    raise RuntimeError(f"generation failed on this node: {chunk}") from chunk
                finished = chunk.usage is not None
                yield chunk
        finally:
            if not finished:
                self._commands.put(lambda: self._cancel(target, request))

    def close(self) -> None:
        self._closing = True
        self._commands.put(lambda: None)
        self._thread.join(timeout=10)

    # --- generation thread ----------------------------------------------------------------------------------

    def _run(self, models: list[ResolvedModel], started: queue.Queue[BaseException | None]) -> None:
        try:
            try:
                for resolved in models:
                    if resolved.name in self._models:
                        raise ValueError(f"language model {resolved.name!r} is listed twice")
                    self._models[resolved.name] = _Model(resolved, self.config)
                    log.info("language: loaded %s from %s", resolved.name, resolved.path)
            except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
                started.put(exc)
                return
            started.put(None)
            self._serve()
        finally:
            import mlx.core as mx

            # mlx needs its streams destroyed by the thread that made them before it ends, or the
            # process may abort at exit ("terminate called without an active exception"; mlx#3126).
            mx.clear_streams()

    def _serve(self) -> None:
        while not self._closing:
            busy = any(m.active for m in self._models.values())
            try:
                command = self._commands.get(block=not busy)
            except queue.Empty:
                command = None
            while command is not None:
                command()
                try:
                    command = self._commands.get_nowait()
                except queue.Empty:
                    command = None
            for target in self._models.values():
                if target.active:
                    try:
                        self._step(target)
                    except Exception as exc:  # noqa: BLE001 - reported to the requests it broke
                        target.reset(exc)
        for target in self._models.values():
            for request in list(target.active.values()):
                self._finish(target, request, FINISH_CANCELLED)
            target.close()

    def _insert(self, target: _Model, request: _Request) -> None:
        from lanai.services.language.sampling import logits_processors, sampler

        if request.sampling.max_tokens <= 0:  # the prompt fills the context: nothing can follow
            self._finish(target, request, FINISH_LENGTH)
            return
        s = request.sampling
        try:  # the batch generator validates before it changes any state
            (request.uid,) = target.batch.insert([request.tokens], max_tokens=[s.max_tokens], samplers=[sampler(s)],
                                                 logits_processors=[logits_processors(s)])
        except Exception as exc:  # noqa: BLE001 - reported to the request
            log.exception("language: could not start a generation")
            request.emit(exc)
            return
        target.active[request.uid] = request

    def _cancel(self, target: _Model, request: _Request) -> None:
        if request.uid in target.active:
            target.batch.remove([request.uid])
            del target.active[request.uid]

    def _step(self, target: _Model) -> None:
        _, responses = target.batch.next()
        now = time.perf_counter()
        for response in responses:
            request = target.active.get(response.uid)
            if request is None:
                continue
            request.generated += 1
            if request.generated == 1:
                request.first_token = now
            is_eos = response.finish_reason == "stop"
            if not is_eos:
                request.detokenizer.add_token(response.token)
            if response.finish_reason is not None:
                request.detokenizer.finalize()
            text, stopped = request.stops.feed(request.detokenizer.last_segment,
                                               final=response.finish_reason is not None)
            if stopped:
                target.batch.remove([request.uid])
                self._finish(target, request, FINISH_STOP, text)
            elif response.finish_reason is not None:
                self._finish(target, request, FINISH_STOP if is_eos else FINISH_LENGTH, text)
            elif text:
                request.emit(Chunk(text))

    def _finish(self, target: _Model, request: _Request, reason: str, text: str = "") -> None:
        target.active.pop(request.uid, None)
        end = time.perf_counter()
        first = request.first_token or end
        after_first = request.generated - 1
        usage = Usage(prompt_tokens=len(request.tokens), completion_tokens=request.generated,
                      time_to_first_token_s=first - request.submitted if request.generated else 0.0,
                      tokens_per_second=after_first / (end - first) if after_first > 0 and end > first else 0.0)
        request.emit(Chunk(text, reason, usage))
