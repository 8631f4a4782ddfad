"""OpenAI's text endpoints over the language service: /v1/models, /v1/chat/completions,
/v1/completions (streamed as server-sent events or not) and /v1/embeddings."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lanai.api.language.v1 import language_pb2
from lanai.mesh.doors.http import Door, endpoint, error_body, sse
from lanai.mesh.doors.params import BadParam, Params
from lanai.mesh.doors.upstream import MeshModel
from lanai.services.core.errors import ModelNotFound, Unavailable, quote

DEFAULT_NAMES = ("", "default")
"""A `model` that asks for the service's default model (OpenAI requires the field)."""
MAX_INPUTS = 2048
_FINISH = {language_pb2.FINISH_REASON_STOP: "stop", language_pb2.FINISH_REASON_LENGTH: "length",
           language_pb2.FINISH_REASON_CANCELLED: "stop"}


def routes(door: Door) -> list[Route]:
    return [
        Route("/v1/models", endpoint(door, "/v1/models", lambda r: list_models(door, r)), methods=["GET"]),
        Route("/v1/models/{model:path}", endpoint(door, "/v1/models/{model}", lambda r: get_model(door, r)),
              methods=["GET"]),
        Route("/v1/chat/completions", endpoint(door, "/v1/chat/completions", lambda r: chat(door, r)),
              methods=["POST"]),
        Route("/v1/completions", endpoint(door, "/v1/completions", lambda r: completions(door, r)), methods=["POST"]),
        Route("/v1/embeddings", endpoint(door, "/v1/embeddings", lambda r: embeddings(door, r)), methods=["POST"]),
    ]


def model_object(model: MeshModel) -> dict[str, Any]:
    return {"id": model.name, "object": "model", "created": 0, "owned_by": "lanai", "service": model.service,
            "task": model.task, "engine": model.engine, "default": model.is_default, "nodes": list(model.nodes)}


async def list_models(door: Door, request: Request) -> Response:
    models = await door.upstream.models()
    return JSONResponse({"object": "list", "data": [model_object(m) for m in models]})


async def get_model(door: Door, request: Request) -> Response:
    name = request.path_params["model"]
    for model in await door.upstream.models(fresh=True):
        if model.name == name:
            return JSONResponse(model_object(model))
    raise ModelNotFound(f"no node of this mesh serves a model named {quote(name)}; GET /v1/models lists them")


async def resolve(door: Door, params: Params, service: str, task: str) -> str:
    """The model to ask for: the one named if the mesh serves it (404 if not), the service's
    default for "" or "default" (503 if no node serves the service now)."""
    name = params.text("model", required=True)
    models = [m for m in await door.upstream.models() if m.service == service and m.task == task]
    if name in DEFAULT_NAMES:
        if not models:
            models = [m for m in await door.upstream.models(fresh=True) if m.service == service and m.task == task]
        if not models:
            raise Unavailable(f"no node of this mesh serves {service} ({task}) now; start one with "
                              f"`lanai node --services {service}`")
        return next((m.name for m in models if m.is_default), models[0].name)
    if await door.upstream.find(service, name, task) is None:
        known = ", ".join(sorted({m.name for m in models})) or "none now"
        raise ModelNotFound(f"no node of this mesh serves the {service} model {quote(name)} for {task}; "
                            f"models: {known} (or 'default')")
    return name


def sampling(params: Params, *, default_max_tokens: int | None = None) -> language_pb2.SamplingOptions:
    params.only("n", 1, why="lanai makes one choice per request; send n=1 or leave it out")
    params.only("logprobs", False, why="log probabilities are not reported")
    params.only("presence_penalty", 0, 0.0, why="leave presence_penalty out")
    params.only("frequency_penalty", 0, 0.0, why="leave frequency_penalty out")
    params.only("logit_bias", {}, why="logit_bias is not supported")
    options = language_pb2.SamplingOptions()
    most = params.integer("max_completion_tokens", 1, 2**31 - 1)
    most = most if most is not None else params.integer("max_tokens", 1, 2**31 - 1)
    if most is not None or default_max_tokens is not None:
        options.max_tokens = most if most is not None else default_max_tokens or 0
    if (temperature := params.number("temperature", 0, 2)) is not None:
        options.temperature = temperature
    if (top_p := params.number("top_p", 0, 1)) is not None:
        options.top_p = top_p
    if (seed := params.integer("seed", -(2**63), 2**64 - 1)) is not None:
        options.seed = seed % 2**64
    options.stop.extend(params.strings("stop", most=8))
    return options


def chat_messages(params: Params) -> list[language_pb2.ChatMessage]:
    raw = params.raw("messages")
    if not isinstance(raw, list) or not raw:
        raise BadParam("messages", "'messages' must be a non-empty list of {role, content} objects")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise BadParam("messages", f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if message.get("tool_calls") or role in ("tool", "function"):
            raise BadParam("messages", f"messages[{i}]: tool calls are not supported by lanai's language models")
        messages.append(language_pb2.ChatMessage(role="system" if role == "developer" else str(role or ""),
                                                 content=_content(message.get("content"), i)))
    return messages


def _content(content: Any, i: int) -> str:
    """A message's text: a string, or a list of text parts (images and audio are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadParam("messages", f"messages[{i}] has a {quote(kind)} part; lanai's language models read "
                                           "text only (send images to /v1 vision through gRPC)")
            texts.append(part["text"])
        return "".join(texts)
    raise BadParam("messages", f"messages[{i}].content must be a string or a list of text parts")


def _refuse_tools(params: Params) -> None:
    if params.raw("tools") or params.raw("functions"):
        raise BadParam("tools", "tool calls are not supported by lanai's language models; leave out tools")
    fmt = params.raw("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise BadParam("response_format", "only {\"type\": \"text\"} is supported (no JSON mode)")


def usage(u: language_pb2.Usage) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "time_to_first_token_ms": round(u.time_to_first_token_ms, 2),
            "tokens_per_second": round(u.tokens_per_second, 2)}


def served(by: Any) -> dict[str, Any]:
    return {"node": by.node_id, "model": by.model, "queue_ms": round(by.queue_ms, 2),
            "compute_ms": round(by.compute_ms, 2)}


async def chat(door: Door, request: Request) -> Response:
    params = await door.json_params(request)
    _refuse_tools(params)
    messages = chat_messages(params)
    options = sampling(params)
    model = await resolve(door, params, "language", "generate")
    generate = language_pb2.GenerateRequest(model=model, chat=language_pb2.Chat(messages=messages), sampling=options)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if params.boolean("stream"):
        include_usage = params.mapping("stream_options").boolean("include_usage")

        def chunk(delta: dict[str, Any], finish: str | None, by: Any = None) -> dict[str, Any]:
            event: dict[str, Any] = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if include_usage:
                event["usage"] = None
            if by is not None:
                event["served_by"] = served(by)
            return event

        def event(r: Any) -> dict[str, Any]:
            return chunk({"content": r.delta} if r.delta else {}, _FINISH.get(r.finish_reason),
                         r.served_by if r.HasField("served_by") else None)

        def usage_event(u: language_pb2.Usage) -> dict[str, Any]:
            return {**chunk({}, None), "choices": [], "usage": usage(u)}

        def events(call: Any, first: Any) -> AsyncIterator[dict[str, Any]]:
            return _stream(call, first, event, opening=chunk({"role": "assistant", "content": ""}, None),
                           usage_event=usage_event if include_usage else None)
        return await _streamed(door, request, door.upstream.language().GenerateStream(generate), events)
    reply = await door.mesh_call(request, door.upstream.language().Generate(generate))
    return JSONResponse({
        "id": reply_id, "object": "chat.completion", "created": created, "model": reply.served_by.model or model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text, "refusal": None},
                     "logprobs": None, "finish_reason": _FINISH.get(reply.finish_reason, "stop")}],
        "usage": usage(reply.usage), "served_by": served(reply.served_by)},
        headers={"X-Lanai-Node": reply.served_by.node_id})


async def completions(door: Door, request: Request) -> Response:
    params = await door.json_params(request)
    prompts = params.strings("prompt", most=1)
    if not prompts:
        raise BadParam("prompt", "'prompt' is required: the text to continue")
    params.only("echo", False, why="the prompt is not echoed back")
    params.only("suffix", why="insertion (suffix) is not supported")
    params.only("best_of", 1, why="lanai makes one completion per request")
    options = sampling(params, default_max_tokens=16)  # OpenAI's default for this endpoint
    model = await resolve(door, params, "language", "generate")
    generate = language_pb2.GenerateRequest(model=model, prompt=prompts[0], sampling=options)
    reply_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if params.boolean("stream"):
        include_usage = params.mapping("stream_options").boolean("include_usage")

        def chunk(text: str, finish: str | None, by: Any = None) -> dict[str, Any]:
            event: dict[str, Any] = {"id": reply_id, "object": "text_completion", "created": created, "model": model,
                     "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}
            if by is not None:
                event["served_by"] = served(by)
            return event

        def event(r: Any) -> dict[str, Any]:
            return chunk(r.delta, _FINISH.get(r.finish_reason), r.served_by if r.HasField("served_by") else None)

        def usage_event(u: language_pb2.Usage) -> dict[str, Any]:
            return {**chunk("", None), "choices": [], "usage": usage(u)}

        def events(call: Any, first: Any) -> AsyncIterator[dict[str, Any]]:
            return _stream(call, first, event, usage_event=usage_event if include_usage else None)
        return await _streamed(door, request, door.upstream.language().GenerateStream(generate), events)
    reply = await door.mesh_call(request, door.upstream.language().Generate(generate))
    return JSONResponse({
        "id": reply_id, "object": "text_completion", "created": created, "model": reply.served_by.model or model,
        "choices": [{"index": 0, "text": reply.text, "logprobs": None,
                     "finish_reason": _FINISH.get(reply.finish_reason, "stop")}],
        "usage": usage(reply.usage), "served_by": served(reply.served_by)},
        headers={"X-Lanai-Node": reply.served_by.node_id})


async def _streamed(door: Door, request: Request, call: Any, events: Any) -> Response:
    """Wait for the stream's first message before answering, so an error the mesh gives at once
    (full, unknown model, bad sampling) is an HTTP status, not an event in a 200 stream."""
    try:
        first = await door.mesh_call(request, call.read())
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF:
        call.cancel()
        raise Unavailable("the language node ended the stream without a message; try again")
    return sse(events(call, first))


async def _stream(call: Any, first: Any, to_event: Callable[[Any], dict[str, Any]], *,
                  opening: dict[str, Any] | None = None,
                  usage_event: Callable[[language_pb2.Usage], dict[str, Any]] | None = None
                  ) -> AsyncIterator[dict[str, Any]]:
    """The stream's events; an error after the first is sent as an `error` event (the OpenAI
    SDK raises it). Leaving early (the client went away) cancels the mesh call."""
    last = None
    try:
        if opening is not None:
            yield opening
        message = first
        while message is not grpc.aio.EOF:
            if message.delta or message.finish_reason:
                yield to_event(message)
            last = message
            message = await call.read()
    except grpc.aio.AioRpcError as error:
        yield error_body(error)[1]
        return
    finally:
        call.cancel()
    if usage_event is not None and last is not None:
        yield usage_event(last.usage)


async def embeddings(door: Door, request: Request) -> Response:
    params = await door.json_params(request)
    texts = params.strings("input", most=MAX_INPUTS)
    if not texts:
        raise BadParam("input", "'input' is required: a string or a list of strings to embed")
    encoding = params.text("encoding_format", "float", choices=("float", "base64"))
    dimensions = params.integer("dimensions", 1, 1 << 16)
    model = await resolve(door, params, "language", "embed")
    reply = await door.mesh_call(request, door.upstream.language().Embed(
        language_pb2.EmbedRequest(model=model, texts=texts)))
    if dimensions is not None and dimensions != reply.dimensions:
        raise BadParam("dimensions", f"{model} makes {reply.dimensions}-dimensional embeddings; send "
                                     f"dimensions={reply.dimensions} or leave it out")

    def vector(values: Any) -> Any:
        if encoding == "base64":  # what the openai SDK asks for by default: little-endian float32
            return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        return list(values)
    return JSONResponse({
        "object": "list", "model": reply.served_by.model or model,
        "data": [{"object": "embedding", "index": i, "embedding": vector(e.values)}
                 for i, e in enumerate(reply.embeddings)],
        "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
        "served_by": served(reply.served_by)}, headers={"X-Lanai-Node": reply.served_by.node_id})
