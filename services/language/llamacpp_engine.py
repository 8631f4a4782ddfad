"""The llama.cpp language engine (every machine that is not Apple silicon): llama.cpp's own
server, in process, through the xllamacpp wheel. It owns the batching: `n_parallel` slots
decoded together (continuous batching), each with its share of the KV cache.

llama.cpp's server also listens for HTTP. Here it listens only on a Unix socket in a private
folder (0700) and wants a random key, so no other program, on this machine or the LAN, can
reach the model around lanai's own door. Over that socket lanai asks for what the Python API
does not offer (the chat template, tokenization); generation goes through the API, which
streams each piece to a callback on llama.cpp's thread (the GIL is released while it decodes)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import logging
import os
import random
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from lanai.services.core.errors import InvalidInput, Unavailable
from lanai.services.language.config import LanguageConfig
from lanai.services.language.engines import LLAMA_CPP, LLAMA_CPP_SLOTS, resolve_name
from lanai.services.language.types import FINISH_CANCELLED, FINISH_LENGTH, FINISH_STOP, Chunk, LoadedModel, Message, \
    Sampling, Usage
from lanai.services.models import ResolvedModel

log = logging.getLogger(__name__)
DEFAULT_CONTEXT = 2048
"""Context tokens per slot when the configuration says 0. llama.cpp allocates the KV cache for
every slot up front: SmolLM2-135M takes ~17 MB per 1000 tokens (4 slots x 4096 tokens grew a
node by 270 MB); a client that sends more is told the limit."""
REPETITION_CONTEXT = 64
"""Recent tokens the repetition penalty looks at (as the mlx engine)."""
_FINISH = {"stop": FINISH_STOP, "length": FINISH_LENGTH}


def gguf_path(resolved: ResolvedModel) -> Path:
    """The GGUF file of a model: the file itself, or model.gguf (or the only .gguf) in its folder."""
    if resolved.path.is_file():
        return resolved.path
    candidates = [resolved.path / "model.gguf"] if (resolved.path / "model.gguf").is_file() \
        else sorted(resolved.path.glob("*.gguf"))
    if len(candidates) != 1:
        raise ValueError(f"language model {resolved.name!r}: the llama.cpp engine needs one GGUF file in "
                         f"{resolved.path} (found {len(candidates)}); name the .gguf file itself")
    return candidates[0]


class _Socket(http.client.HTTPConnection):
    """HTTP over the llama.cpp server's Unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class _Model:
    """One GGUF served by its own llama.cpp server."""

    def __init__(self, resolved: ResolvedModel, config: LanguageConfig, slots: int, threads: int) -> None:
        import xllamacpp

        self.name = resolved.name
        self.context_length = config.context_length or DEFAULT_CONTEXT
        self._folder = tempfile.mkdtemp(prefix="lanai-llama-")  # 0700: only this user reaches the socket
        self._socket = os.path.join(self._folder, "server.sock")
        self._key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path(resolved))
        params.n_parallel = slots
        params.n_ctx = self.context_length * slots  # llama.cpp splits it evenly over the slots
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.n_gpu_layers = 999 if _wants_gpu(config.device) else 0
        params.hostnames = [self._socket]
        params.api_keys = [self._key]
        params.n_threads_http = 1
        params.verbosity = 1 if not log.isEnabledFor(logging.DEBUG) else 3  # 1: errors only; 0 hides those too
        try:
            self.server: Any = xllamacpp.Server(params)
        except Exception:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self.devices = _devices(params.n_gpu_layers > 0)
        self.has_template = bool(self.request("POST", "/apply-template",
                                              {"messages": [{"role": "user", "content": "hi"}]}).get("prompt"))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """A JSON call to the server over its socket."""
        conn = _Socket(self._socket, timeout)
        try:
            conn.request(method, path, json.dumps(body) if body is not None else None,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"})
            reply = conn.getresponse()
            data = json.loads(reply.read() or b"null")
        finally:
            conn.close()
        if reply.status != 200:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else data
            raise RuntimeError(f"llama.cpp {path} answered {reply.status}: {message}")
        return data

    def close(self) -> None:
        self.server = None  # the destructor stops llama.cpp's loop and frees the model
        shutil.rmtree(self._folder, ignore_errors=True)


class LlamaCppEngine:
    name = LLAMA_CPP

    def __init__(self, models: Sequence[ResolvedModel], config: LanguageConfig) -> None:
        if not models:
            raise ValueError("the language service needs at least one model")
        self.config = config
        self.slots = config.slots or LLAMA_CPP_SLOTS
        threads = config.threads or os.cpu_count() or 1
        self._models: dict[str, _Model] = {}
        try:
            for resolved in models:
                if resolved.name in self._models:
                    raise ValueError(f"language model {resolved.name!r} is listed twice")
                self._models[resolved.name] = _Model(resolved, config, self.slots, threads)
                log.info("language: loaded %s from %s into llama.cpp (%d slots, %d threads)", resolved.name,
                         resolved.path, self.slots, threads)
        except BaseException:
            self.close()
            raise
        # One thread per generation llama.cpp runs at once: each blocks in the server's call.
        self._threads = concurrent.futures.ThreadPoolExecutor(self.slots * len(self._models),
                                                              thread_name_prefix="lanai-llama")
        self._closing = False
        self.default_model = models[0].name
        self.models = [LoadedModel(r.name, r.source, self._models[r.name].devices,
                                   self._models[r.name].context_length) for r in models]

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.default_model, self._models)

    def encode(self, model: str, prompt: str | Sequence[Message], continuation: str = "") -> list[int]:
        target = self._models[model]
        if isinstance(prompt, str):
            text, special = prompt, False  # raw text: "<|im_start|>" typed by a client stays text
        else:
            if not target.has_template:
                raise InvalidInput(f"model {model!r} has no chat template; send a raw prompt instead of chat messages")
            messages = [{"role": m.role, "content": m.content} for m in prompt]
            text, special = target.request("POST", "/apply-template", {"messages": messages})["prompt"], True
        tokens: list[int] = target.request("POST", "/tokenize", {"content": text + continuation, "add_special": True,
                                                                "parse_special": special})["tokens"]
        limit = target.context_length
        if len(tokens) >= limit:
            raise InvalidInput(f"the prompt is {len(tokens)} tokens; model {model!r} has a context of {limit} "
                               f"tokens, so the prompt must be at most {limit - 1}: shorten it")
        return tokens

    async def generate(self, model: str, tokens: list[int], sampling: Sampling) -> AsyncIterator[Chunk]:
        if self._closing:
            raise Unavailable("the language service is shutting down; send the request to another node")
        target = self._models[model]
        room = target.context_length - len(tokens)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        cancelled = False
        submitted = time.perf_counter()

        def on_piece(piece: dict[str, Any]) -> bool:  # llama.cpp's thread; True stops the generation
            loop.call_soon_threadsafe(pieces.put_nowait, piece)
            return cancelled

        def run() -> None:
            try:
                target.server.handle_completions(_request(tokens, sampling, min(sampling.max_tokens, room)), on_piece)
                loop.call_soon_threadsafe(pieces.put_nowait, None)
            except BaseException as exc:  # noqa: BLE001 - handed to the request
                loop.call_soon_threadsafe(pieces.put_nowait, exc)

        if room <= 0:
            yield Chunk("", FINISH_LENGTH, Usage(len(tokens), 0, 0.0, 0.0))
            return
        self._threads.submit(run)
        first = 0.0
        finished = False
        try:
            while True:
                piece = await pieces.get()
                if piece is None:  # the call returned without a last piece: it was stopped
                    finished = True
                    yield _last("", FINISH_CANCELLED, len(tokens), 0, submitted, first)
                    return
                if isinstance(piece, BaseException):
                    raise RuntimeError(f"generation failed on this node: {piece}") from piece
                if "choices" not in piece:
                    raise _error(piece, model)
                choice = piece["choices"][0]
                text = choice.get("text") or ""
                if text and not first:
                    first = time.perf_counter()
                reason = choice.get("finish_reason")
                if reason is not None:
                    finished = True
                    generated = int(piece.get("usage", {}).get("completion_tokens", 0))
                    yield _last(text, _FINISH.get(reason, FINISH_STOP), len(tokens), generated, submitted, first)
                    return
                if text:
                    yield Chunk(text)
        finally:
            if not finished:
                cancelled = True  # the next piece's callback stops llama.cpp and frees the slot

    def close(self) -> None:
        self._closing = True
        threads = getattr(self, "_threads", None)
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)
        for target in self._models.values():
            target.close()


def _request(tokens: list[int], s: Sampling, max_tokens: int) -> dict[str, Any]:
    """A llama.cpp completion request with lanai's sampling semantics (its own defaults differ:
    top_k 40 and min_p 0.05 are on there, off here)."""
    return {"prompt": tokens, "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True},
            "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": 0.0,
            "repeat_penalty": s.repetition_penalty, "repeat_last_n": REPETITION_CONTEXT,
            "seed": (s.seed if s.seed is not None else random.getrandbits(32)) % (1 << 32),
            "stop": list(s.stop), "cache_prompt": True}


def _last(text: str, reason: str, prompt_tokens: int, generated: int, submitted: float, first: float) -> Chunk:
    end = time.perf_counter()
    first = first or end
    after_first = generated - 1
    return Chunk(text, reason, Usage(
        prompt_tokens=prompt_tokens, completion_tokens=generated,
        time_to_first_token_s=first - submitted if generated else 0.0,
        tokens_per_second=after_first / (end - first) if after_first > 0 and end > first else 0.0))


def _error(piece: dict[str, Any], model: str) -> Exception:
    error = piece.get("error", piece)
    message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        return InvalidInput(f"model {model!r}: {message}; shorten the prompt or ask for fewer tokens")
    return RuntimeError(f"generation failed on this node: {message}")


def _wants_gpu(device: str) -> bool:
    if device == "cpu":
        return False
    has_gpu = bool(_gpus())
    if device == "gpu" and not has_gpu:
        raise ValueError("--language-device gpu: this llama.cpp build sees no GPU (the xllamacpp wheel from PyPI is "
                         "CPU-only; install its CUDA build for an NVIDIA GPU)")
    return has_gpu


def _gpus() -> list[str]:
    import xllamacpp

    return [str(d.get("name")) for d in xllamacpp.get_device_info() if "GPU" in str(d.get("type"))]


def _devices(gpu: bool) -> tuple[str, ...]:
    return tuple(_gpus()) if gpu else ("cpu",)
