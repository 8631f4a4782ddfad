"""The one gate in front of every handler: members (a verified mesh certificate) pass unless
revoked; other callers need an API key unless the node is open; only members may mark a call
as already forwarded. Health, reflection and Join stay open (probes, grpcurl, joiners)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from lanai.mesh import handlers, metrics
from lanai.mesh.router import FORWARDED
from lanai.mesh.security import pki
from lanai.mesh.security.trust import Trust
from lanai.mesh.status import status_for
from lanai.services.core.errors import PermissionDenied, Unauthenticated

Context = grpc.aio.ServicerContext[Any, Any]
OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/lanai.mesh.v1.Membership/Join")
"""Health for probes (kubelet, compose), reflection for grpcurl (the schema is public), Join
(the invite's secret authenticates it)."""


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, trust: Trust, *, require_keys: bool) -> None:
        self._trust = trust
        self._require_keys = require_keys
        self._wrapped = handlers.Wrapped()

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN):
            return handler
        return self._wrapped.get(handler, None, lambda: _guarded(handler, self.check))

    def check(self, context: Context) -> None:
        """Raises Unauthenticated or PermissionDenied for a caller that may not make this call."""
        if self._trust.revoked(self._trust.node_id):
            metrics.CLIENT_CALLS_REJECTED.labels("node_revoked").inc()
            raise PermissionDenied(f"node {self._trust.node_id} was revoked from its mesh and serves no calls; call "
                                   f"another node (to rejoin, this machine needs a new identity: remove "
                                   f"{self._trust.dir.path} and {self._trust.dir.path.parent / 'node-id'}, then "
                                   "start it with --join and a new invite)")
        metadata = context.invocation_metadata() or ()
        forwarded = any(key == FORWARDED for key, _ in metadata)
        peer = self._trust.peer(context)
        if peer is not None:
            if self._trust.revoked(peer.name):
                metrics.REFUSED_PEERS.labels("revoked").inc()
                raise PermissionDenied(f"{peer.name} was revoked from this mesh")
            if forwarded and peer.role != pki.ROLE_NODE:
                metrics.REFUSED_PEERS.labels("forwarded_by_non_member").inc()
                raise PermissionDenied("only mesh nodes forward calls; leave out the lanai-forwarded metadata")
            return
        if forwarded:
            metrics.REFUSED_PEERS.labels("forwarded_by_non_member").inc()
            raise PermissionDenied("only mesh nodes forward calls (over the mesh port, with a node certificate); "
                                   "leave out the lanai-forwarded metadata")
        if self._require_keys:
            self._trust.check_key(bearer(metadata))


def bearer(metadata: Any) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _guarded(handler: Any, check: Callable[[Context], None]) -> Any:
    """The same handler, with `check` run first (its error ends the call with its status)."""
    inner, make = handlers.parts(handler)

    async def refuse(context: Context, error: Unauthenticated | PermissionDenied) -> None:
        await context.abort(*status_for(error))

    async def unary(request: Any, context: Context) -> Any:
        try:
            check(context)
        except (Unauthenticated, PermissionDenied) as error:
            await refuse(context, error)
        return await inner(request, context)

    async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            check(context)
        except (Unauthenticated, PermissionDenied) as error:
            await refuse(context, error)
        async for response in inner(request, context):
            yield response

    return make(streaming if handler.response_streaming else unary,
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
