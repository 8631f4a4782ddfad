"""What server interceptors that wrap handlers share: a handler's behaviour and the factory
that builds a handler of the same shape around a new one."""

from __future__ import annotations

from collections.abc import Callable
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
