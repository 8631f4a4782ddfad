"""What server interceptors that wrap handlers share: a handler's behaviour and the factory
that builds a handler of the same shape around a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from lanai.services.core.errors import InvalidInput


def parts(handler: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(the handler's behaviour, the grpc factory for a handler of its shape)."""
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream, grpc.stream_stream_rpc_method_handler
    if handler.request_streaming:
        return handler.stream_unary, grpc.stream_unary_rpc_method_handler
    if handler.response_streaming:
        return handler.unary_stream, grpc.unary_stream_rpc_method_handler
    return handler.unary_unary, grpc.unary_unary_rpc_method_handler


class Wrapped:
    """Wrapped handlers, built once per (handler, variant): gRPC hands an interceptor the same
    handler object for every call of a method, so wrapping it again per call would be waste."""

    def __init__(self, limit: int = 4096) -> None:
        self._known: dict[tuple[int, Hashable], tuple[Any, Any]] = {}
        self._limit = limit

    def get(self, handler: Any, variant: Hashable, build: Callable[[], Any]) -> Any:
        key = (id(handler), variant)
        known = self._known.get(key)
        if known is not None and known[0] is handler:  # same id, same object: not a recycled id
            return known[1]
        wrapped = build()
        if len(self._known) > self._limit:  # handlers are per method, so this only guards against surprises
            self._known.clear()
        self._known[key] = (handler, wrapped)
        return wrapped


def message_name(deserializer: Callable[[bytes], Any] | None) -> str:
    """The full name of the message a generated deserializer (`Message.FromString`) parses."""
    owner = getattr(deserializer, "__self__", None)
    return str(getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "") or "request")


def decoder(handler: Any) -> Callable[[bytes], Any]:
    """The handler's request deserializer, failing with InvalidInput instead of DecodeError.

    gRPC's own deserialization failure ends the call with UNKNOWN and logs a traceback; bytes
    that are not the message are the client's mistake, so they are parsed inside the handler
    wrapper, where the status table turns the error into INVALID_ARGUMENT."""
    deserialize = handler.request_deserializer
    if deserialize is None:  # a raw-bytes handler (the router's): nothing to parse
        return lambda raw: raw
    name = message_name(deserialize)

    def decode(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError:
            raise InvalidInput(f"the request is not a valid {name} message (its bytes do not parse, or a "
                               "string field is not UTF-8); send a serialized " + name) from None
    return decode


async def decoded(requests: AsyncIterator[bytes], decode: Callable[[bytes], Any]) -> AsyncIterator[Any]:
    """A client stream's raw messages, parsed one by one as the handler reads them."""
    async for raw in requests:
        yield decode(raw)
