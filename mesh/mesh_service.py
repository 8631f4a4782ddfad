"""The router's gRPC surfaces: the interceptor that sends lanai calls through the router, and
lanai.mesh.v1.Mesh/ListNodes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.catalog import Rpc, rpcs
from lanai.mesh.router import FORWARDED, Context, Router
from lanai.mesh.state import NodeState, NodeView

_STATES = {NodeState.UP: mesh_pb2.NODE_STATE_UP, NodeState.SUSPECT: mesh_pb2.NODE_STATE_SUSPECT,
           NodeState.DOWN: mesh_pb2.NODE_STATE_DOWN, NodeState.REFUSED: mesh_pb2.NODE_STATE_REFUSED,
           NodeState.DRAINING: mesh_pb2.NODE_STATE_DRAINING, NodeState.UNTRUSTED: mesh_pb2.NODE_STATE_UNTRUSTED,
           NodeState.FOREIGN: mesh_pb2.NODE_STATE_FOREIGN, NodeState.REVOKED: mesh_pb2.NODE_STATE_REVOKED}


class RoutingInterceptor(grpc.aio.ServerInterceptor):
    """Sends every lanai service call through the router, except calls a router already
    forwarded here: those are served by this node's own servicers."""

    def __init__(self, router: Router) -> None:
        self._handlers = {path: _handler(router, rpc) for path, rpc in rpcs().items()}  # built once

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = self._handlers.get(details.method)
        if handler is None or any(key == FORWARDED for key, _ in details.invocation_metadata or ()):
            return await continuation(details)
        return handler


def _handler(router: Router, rpc: Rpc) -> grpc.RpcMethodHandler[Any, Any]:
    """A raw-bytes handler of the RPC's shape that relays through the router."""
    if rpc.server_streaming:
        async def streaming(request: Any, context: Context) -> AsyncIterator[bytes]:
            async for response in router.forward(rpc, request, context):
                yield response
        make = grpc.stream_stream_rpc_method_handler if rpc.client_streaming else grpc.unary_stream_rpc_method_handler
        return make(streaming)

    async def unary(request: Any, context: Context) -> bytes:
        async with contextlib.aclosing(router.forward(rpc, request, context)) as responses:
            async for response in responses:
                return response
        raise RuntimeError("the node ended the call without a response")  # gRPC forbids this; never seen
    make = grpc.stream_unary_rpc_method_handler if rpc.client_streaming else grpc.unary_unary_rpc_method_handler
    return make(unary)


class MeshServicer(mesh_pb2_grpc.MeshServicer):
    def __init__(self, router: Router) -> None:
        self._router = router

    async def ListNodes(self, request: mesh_pb2.ListNodesRequest, context: Context) -> mesh_pb2.ListNodesResponse:
        nodes = sorted(self._router.state.nodes.values(), key=lambda n: (n.node_id, n.address))
        if request.service:
            nodes = [n for n in nodes if request.service in n.services]
        if not request.include_down:
            nodes = [n for n in nodes if n.state is not NodeState.DOWN]
        return mesh_pb2.ListNodesResponse(router_id=self._router.router_id, nodes=[_entry(n) for n in nodes])


def _entry(node: NodeView) -> mesh_pb2.NodeEntry:
    entry = mesh_pb2.NodeEntry(node_id=node.node_id, address=node.address, state=_STATES[node.state],
                               state_reason=node.reason, discovered_by=node.source,
                               router_in_flight=node.router_in_flight)
    if node.description is not None:
        entry.description.CopyFrom(node.description)
    if node.last_load is not None and node.state is not NodeState.DOWN:
        entry.last_load.CopyFrom(node.last_load)
    return entry
