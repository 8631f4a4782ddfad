"""The HTTP door: an OpenAI-compatible API and the web console on a Starlette app, served
in-process by uvicorn. What every endpoint shares lives here: the key check, bounded
bodies, errors in OpenAI's shape (from the one status table) and cancelling the mesh call
when the client goes away."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lanai.mesh import metrics
from lanai.mesh.doors.params import BadParam, Params
from lanai.mesh.doors.upstream import Upstream
from lanai.mesh.security.auth import bearer
from lanai.mesh.security.trust import Trust
from lanai.mesh.status import http_status, status_for
from lanai.services.core.errors import InvalidInput, LanaiError

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
RETRY_AFTER_S = 1
"""What a 429 (every node full) tells the client to wait: slots free up within a call's time."""


class ClientGone(Exception):
    """The HTTP client disconnected; its mesh call was cancelled."""


@dataclass
class Door:
    """What the endpoints need: the way into the mesh and the rules of this node's door."""
    upstream: Upstream
    trust: Trust | None
    require_keys: bool

    def check_key(self, request: Request) -> None:
        """The same API keys as the gRPC port (`Authorization: Bearer lanai_...`)."""
        if self.trust is not None and self.require_keys:
            self.trust.check_key(bearer([("authorization", request.headers.get("authorization", ""))]))

    async def json_params(self, request: Request) -> Params:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise InvalidInput(f"send the request as JSON (Content-Type: application/json), not {kind or 'nothing'}")
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object")
        return Params(body)

    async def mesh_call(self, request: Request, work: Any) -> Any:
        """Await a mesh call; if the client disconnects first, cancel it (freeing its slot)."""
        call = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if call in done:
            return call.result()
        call.cancel()
        raise ClientGone()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def error_body(error: BaseException) -> tuple[int, dict[str, Any]]:
    """(HTTP status, OpenAI error object) for any error, through the one status table."""
    if isinstance(error, grpc.aio.AioRpcError):
        code, message = error.code(), error.details() or error.code().name
    else:
        code, message = status_for(error)
    status, kind = http_status(code)
    param = error.param if isinstance(error, BadParam) else None
    return status, {"error": {"message": message, "type": kind, "param": param,
                              "code": "model_not_found" if status == 404 else code.name.lower()}}


def error_response(error: BaseException) -> Response:
    status, body = error_body(error)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def endpoint(door: Door, route: str, handler: Handler, *, keyed: bool = True) -> Handler:
    """The handler with the key check, errors as OpenAI JSON, and request metrics."""
    async def guarded(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if keyed:
                door.check_key(request)
            response = await handler(request)
        except (ClientGone, ClientDisconnect):
            response = Response(status_code=499)
        except (LanaiError, grpc.aio.AioRpcError) as error:
            response = error_response(error)
        except Exception as error:  # a bug: say so without details, keep serving
            log.exception("HTTP %s failed", route)
            response = error_response(error)
        metrics.HTTP_REQUESTS.labels(route, str(response.status_code)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response
    return guarded


def sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events as OpenAI streams them: `data: {json}` lines, then `data: [DONE]`.
    The client going away cancels `events` (Starlette cancels the response), which cancels
    the mesh call behind it."""
    async def lines() -> AsyncIterator[bytes]:
        async for event in events:
            yield b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class BodyLimit:
    """Refuses a body over `limit` bytes with 413 before the app reads it (Content-Length), or
    as soon as it grows past it (chunked), so an upload is never held whole in memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": {"message": f"the request body is over this node's limit of {self.limit} bytes; "
                                     "send a smaller file (or start the node with a larger --max-message-mb)",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "request_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Server(uvicorn.Server):
    """uvicorn inside the node's event loop: the node owns the signals."""

    def install_signal_handlers(self) -> None:
        pass


class HttpServer:
    """uvicorn serving `routes` on (host, port); HTTPS with the node's certificate when given a
    Trust and TLS (the context reloads when the certificate is renewed)."""

    def __init__(self, routes: Sequence[BaseRoute], host: str, port: int, max_body_bytes: int,
                 trust: Trust | None, tls: bool) -> None:
        app = BodyLimit(Starlette(routes=list(routes)), max_body_bytes)
        self._config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                      lifespan="off", server_header=False, timeout_graceful_shutdown=5,
                                      timeout_keep_alive=30)
        self._config.load()
        self._trust = trust if tls else None
        if self._trust is not None:
            self._config.ssl = self._context()
            self._trust.on_certificate.append(self._renewed)
        self._server = _Server(self._config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def _context(self) -> ssl.SSLContext:
        trust = self._trust
        assert trust is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_chain(context)
        return context

    def _load_chain(self, context: ssl.SSLContext) -> None:
        trust = self._trust
        assert trust is not None
        context.load_cert_chain(trust.dir.node_cert(trust.node_id), trust.dir.node_key(trust.node_id))

    def _renewed(self) -> None:
        if self._config.ssl is not None:  # new handshakes get the new certificate
            self._load_chain(self._config.ssl)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="http door")
        while not self._server.started:
            if self._task.done():  # it could not bind: uvicorn logged why and exited
                raise OSError(f"could not serve HTTP on {self._config.host}:{self._config.port}; "
                              "is another process using the port? (--http-port picks another, -1 turns it off)")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind; in a task that would stop the whole loop
            pass

    async def stop(self) -> None:
        if self._trust is not None and self._renewed in self._trust.on_certificate:
            self._trust.on_certificate.remove(self._renewed)
        self._server.should_exit = True
        if self._task is not None:
            await self._task
