"""Protobuf <-> language domain values. The only language module besides the servicer that sees protobuf."""

from __future__ import annotations

import math

from lanai.api.common.v1 import common_pb2
from lanai.api.language.v1 import language_pb2
from lanai.services.core.errors import InvalidInput, quote
from lanai.services.language.embed import EmbeddingModel, Embeddings
from lanai.services.language.types import (FINISH_CANCELLED, FINISH_LENGTH, FINISH_STOP, ROLES, Message, Sampling,
                                           Usage)

MAX_STOP_SEQUENCES = 8
MAX_STOP_CHARS = 256
_FINISH = {FINISH_STOP: language_pb2.FINISH_REASON_STOP, FINISH_LENGTH: language_pb2.FINISH_REASON_LENGTH,
           FINISH_CANCELLED: language_pb2.FINISH_REASON_CANCELLED}


def prompt(request: language_pb2.GenerateRequest) -> str | list[Message]:
    """The request's input: raw text, or chat messages (validated)."""
    kind = request.WhichOneof("input")
    if kind == "prompt":
        if not request.prompt.strip():
            raise InvalidInput("the prompt is empty; send some text to continue (or chat messages)")
        return request.prompt
    if kind == "chat":
        if not request.chat.messages:
            raise InvalidInput("the chat has no messages; send at least one user message")
        messages = []
        for i, m in enumerate(request.chat.messages):
            if m.role not in ROLES:
                raise InvalidInput(f"chat message {i} has role {quote(m.role)}; use one of: {', '.join(ROLES)}")
            messages.append(Message(m.role, m.content))
        if all(not m.content.strip() for m in messages):
            raise InvalidInput("every chat message is empty; put the question in a user message")
        return messages
    raise InvalidInput("the request has no input: set prompt (raw text) or chat (messages with roles)")


def sampling(pb: language_pb2.SamplingOptions, default_max_tokens: int, max_tokens_limit: int) -> Sampling:
    if pb.max_tokens > max_tokens_limit:
        raise InvalidInput(f"max_tokens {pb.max_tokens} is over this node's limit of {max_tokens_limit}; "
                           f"ask for 1 to {max_tokens_limit} (0 for {min(default_max_tokens, max_tokens_limit)})")
    temperature = _check("temperature", pb.temperature, 0.0, 2.0) if pb.HasField("temperature") else 0.7
    top_p = _check("top_p", pb.top_p, 0.0, 1.0) if pb.HasField("top_p") else 1.0
    if top_p == 0.0:
        raise InvalidInput("top_p 0 keeps no tokens; use a value in (0, 1] (1 is off)")
    penalty = (_check("repetition_penalty", pb.repetition_penalty, 0.5, 2.0)
               if pb.HasField("repetition_penalty") else 1.0)
    if len(pb.stop) > MAX_STOP_SEQUENCES:
        raise InvalidInput(f"{len(pb.stop)} stop sequences; send at most {MAX_STOP_SEQUENCES}")
    for s in pb.stop:
        if not s or len(s) > MAX_STOP_CHARS:
            raise InvalidInput(f"stop sequence {quote(s, 16)} must be 1 to {MAX_STOP_CHARS} characters")
    return Sampling(max_tokens=pb.max_tokens or min(default_max_tokens, max_tokens_limit), temperature=temperature,
                    top_p=top_p, top_k=pb.top_k, repetition_penalty=penalty,
                    seed=pb.seed if pb.HasField("seed") else None, stop=tuple(pb.stop))


def _check(name: str, value: float, low: float, high: float) -> float:
    if math.isnan(value) or not low <= value <= high:
        raise InvalidInput(f"{name} {value:g} is out of range; use {low:g} to {high:g}")
    return value


def usage(u: Usage) -> language_pb2.Usage:
    return language_pb2.Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                              time_to_first_token_ms=u.time_to_first_token_s * 1000,
                              tokens_per_second=u.tokens_per_second)


def finish_reason(finish: str) -> language_pb2.FinishReason:
    return _FINISH.get(finish, language_pb2.FINISH_REASON_UNSPECIFIED)


def response(text: str, finish: str, u: Usage, served: common_pb2.ServedBy) -> language_pb2.GenerateResponse:
    return language_pb2.GenerateResponse(text=text, finish_reason=finish_reason(finish), usage=usage(u),
                                         served_by=served)


def embed_response(result: Embeddings, model: EmbeddingModel,
                   served: common_pb2.ServedBy) -> language_pb2.EmbedResponse:
    return language_pb2.EmbedResponse(
        embeddings=[language_pb2.Embedding(values=row) for row in result.vectors.tolist()],
        dimensions=model.dimensions, normalized=True, prompt_tokens=result.tokens, max_tokens=model.max_tokens,
        served_by=served)
