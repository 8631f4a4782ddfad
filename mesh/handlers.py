"""What server interceptors that wrap handlers share: a handler's behaviour and the factory
that builds a handler of the same shape around a new one."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import grpc


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
