"""Client-streaming calls from the router to a node, written so the node's status reaches the client.

grpcio's asyncio client (up to 1.85 at least; grpc/grpc#36066, fix proposed in grpc/grpc#43486)
replaces the status a server sent with `INTERNAL "Internal error from Core"` whenever one of the
client's writes fails because the server had already ended the call: a node that rejects a
stream's config while audio is still arriving looked, through a router, like an internal error
in about half the calls. The router therefore writes the client's messages itself, with the
call's low-level send, and treats a failed write as "the call has ended": the status the node
sent is then the one the call reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)
STATUS_WAIT_S = 5.0
"""After a failed write, how long the node's status may take before the call is cancelled
(gRPC's core does not promise a status for every failed write: grpc/grpc#34148)."""


def open_stream(channel: grpc.aio.Channel, path: str, *, server_streaming: bool, requests: AsyncIterator[bytes],
                timeout: float | None, metadata: list[tuple[str, str | bytes]],
                response_deserializer: Callable[[bytes], Any] | None = None) -> Any:
    """A client-streaming call (stream-stream or stream-unary) fed with the serialized messages
    of `requests`; responses are raw bytes unless a deserializer is given. The channel must have
    no client interceptors (an intercepted call offers no low-level send)."""
    factory = channel.stream_stream if server_streaming else channel.stream_unary
    method: Any = factory(path, response_deserializer=response_deserializer)
    call = method(timeout=timeout, metadata=metadata)  # no iterator: the writer below feeds it
    writer = asyncio.ensure_future(_write_all(call, requests))
    def stop_writing(_: object) -> None:  # the call ended: stop reading the client
        writer.cancel()

    call.add_done_callback(stop_writing)
    return call


async def _write_all(call: Any, requests: AsyncIterator[bytes]) -> None:
    send = getattr(getattr(call, "_cython_call", None), "send_serialized_message", None)
    try:
        await call.wait_for_connection()
        async for raw in requests:
            if call.done():
                return
            if send is None:  # a grpcio without the low-level call: the public write (may show INTERNAL)
                await call.write(raw)
                continue
            try:
                await send(raw)
            except asyncio.CancelledError:
                raise
            except Exception:  # the node ended the call; its status arrives on the read side
                await _await_status(call)
                return
        if not call.done():
            await call.done_writing()
    except asyncio.CancelledError:
        pass
    except grpc.aio.AioRpcError:
        pass  # the call already ended with this status; the read side reports it
    except Exception as exc:  # the client's side of the stream failed: end the node's call too
        log.info("router: the client's stream failed (%s); cancelling the node's call", exc)
        call.cancel()


async def _await_status(call: Any) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(call.code()), STATUS_WAIT_S)
    except asyncio.TimeoutError:
        with contextlib.suppress(Exception):
            call.cancel()
