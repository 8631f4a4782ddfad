"""The one table from domain errors to gRPC status codes (and from those to the HTTP door's
statuses), and the interceptor that applies it and counts every lanai RPC."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from lanai.mesh import handlers, metrics
from lanai.mesh.catalog import rpcs
from lanai.mesh.drain import OpenStreams
from lanai.mesh.router import FORWARDED
from lanai.services.core.errors import (DeadlineExceeded, InvalidInput, LanaiError, ModelNotFound, ModelNotPrepared,
                                   Overloaded, PermissionDenied, Unauthenticated, Unavailable)

log = logging.getLogger(__name__)

STATUS: dict[type[LanaiError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    ModelNotPrepared: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}

HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "server_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
    grpc.StatusCode.FAILED_PRECONDITION: (503, "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
}
"""The HTTP door's answer to each status: (HTTP status, OpenAI error `type`); any other is 500
server_error. FAILED_PRECONDITION is a model not prepared on the node: the mesh cannot serve it."""


def http_status(code: grpc.StatusCode) -> tuple[int, str]:
    return HTTP.get(code, (500, "server_error"))


MAX_MESSAGE_CHARS = 1024
"""Status messages are cut to this: they travel in a header (gRPC refuses ones over 8 KiB), and
a message that repeats several nodes' errors or a client's value must still arrive."""


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The code and client-facing message for an error (unknown ones hide their details)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            message = str(error)
            return STATUS[kind], message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "..."
    return grpc.StatusCode.INTERNAL, "internal error on the node; its log has the details (look for this request)"


class LanaiInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler: requests are parsed inside it (bad bytes: INVALID_ARGUMENT), domain
    errors become statuses, and every `/lanai.*` call is counted and timed."""

    def __init__(self, node_id: str, *, routes: bool = False) -> None:
        self._node_id = node_id
        self._routes = routes
        self._wrapped = handlers.Wrapped()
        self.streams = OpenStreams(node_id)
        """Streams a router forwarded here, which it can move when this node shuts down."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return handler
        if not details.method.startswith("/lanai."):  # health, reflection: parsed here, not counted
            return self._wrapped.get(handler, "parse", lambda: self._wrap(handler, details.method, None))
        # A lanai service call that no router forwarded yet is placed by this process's router:
        # it is counted as routed, so a node that also routes does not count a call twice.
        forwarded = any(key == FORWARDED for key, _ in details.invocation_metadata or ())
        routed = self._routes and details.method in rpcs() and not forwarded
        movable = forwarded and details.method in rpcs() and handler.response_streaming
        return self._wrapped.get(handler, (routed, movable),
                                 lambda: self._wrap(handler, details.method, routed, movable))

    def _wrap(self, handler: Any, path: str, routed: bool | None, movable: bool = False) -> Any:
        """The handler with requests parsed inside it and errors mapped to statuses; counted in
        metrics unless `routed` is None; a `movable` stream ends when the node moves its streams."""
        full_service, method = path[1:].split("/", 1)
        labels = (full_service.split(".")[1], method)  # /lanai.<service>.v1.<Name>/<Method>
        inner, make = handlers.parts(handler)
        decode = handlers.decoder(handler)
        parse = ((lambda requests: handlers.decoded(requests, decode)) if handler.request_streaming else decode)

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                return await inner(parse(request), context)
            except BaseException as error:
                code, message = self._outcome(error, context, labels)
                if message is not None:
                    await context.abort(code, message)  # raises AbortError, which ends the RPC
                raise
            finally:
                self._record(labels, code, started, routed)

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                responses = inner(parse(request), context)
                async for response in (self.streams.follow(responses) if movable else responses):
                    yield response
            except BaseException as error:
                code, message = self._outcome(error, context, labels)
                if message is not None:
                    await context.abort(code, message)  # raises AbortError, which ends the RPC
                raise
            finally:
                self._record(labels, code, started, routed)

        return make(streaming if handler.response_streaming else unary,
                    request_deserializer=None, response_serializer=handler.response_serializer)

    def _outcome(self, error: BaseException, context: grpc.aio.ServicerContext[Any, Any],
                 labels: tuple[str, str]) -> tuple[grpc.StatusCode, str | None]:
        """The status an error ends the RPC with, and the message to abort with (None: already ended)."""
        if isinstance(error, grpc.aio.AbortError):
            return context.code() or grpc.StatusCode.UNKNOWN, None
        if not isinstance(error, Exception):
            return grpc.StatusCode.CANCELLED, None  # CancelledError/GeneratorExit: the client went away
        code, message = status_for(error)
        if code is grpc.StatusCode.INTERNAL:
            log.error("node %s: %s/%s failed", self._node_id, *labels, exc_info=error)
        else:
            log.info("node %s: %s/%s -> %s: %s", self._node_id, *labels, code.name, message)
        return code, message

    def _record(self, labels: tuple[str, str], code: grpc.StatusCode, started: float, routed: bool | None) -> None:
        if routed is None:
            return
        count, seconds = ((metrics.ROUTER_REQUESTS, metrics.ROUTER_REQUEST_SECONDS) if routed
                          else (metrics.REQUESTS, metrics.REQUEST_SECONDS))
        count.labels(*labels, self._node_id, code.name).inc()
        seconds.labels(*labels).observe(time.perf_counter() - started)
