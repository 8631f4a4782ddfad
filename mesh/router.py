"""The router: keeps the mesh state, and forwards each lanai call to the best node, retrying
elsewhere while no response has been relayed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh import metrics, streamcall
from lanai.mesh import state as events
from lanai.mesh.circuit import COOLDOWN_S
from lanai.mesh.catalog import Rpc, requested_model
from lanai.mesh.replay import ReplayableStream
from lanai.mesh.resume import MOVES, Resume, resume_for
from lanai.mesh.placement import DEFAULT_POLICY, POLICIES, NoCandidate, Need, rank
from lanai.mesh.premises import DEFAULT_ALLOWED, Premises
from lanai.mesh.security import pki
from lanai.mesh.security.policy import Policy
from lanai.mesh.security.trust import HandshakeFailed, Trust, Untrusted
from lanai.mesh.state import MeshState, NodeState, NodeView
from lanai.mesh.watch import NodeWatcher, load_of, services_of, throughput_of
from lanai.services.core.errors import DeadlineExceeded, Overloaded, Unavailable

log = logging.getLogger(__name__)
FORWARDED = "lanai-forwarded"
"""Metadata a router adds: the receiving node serves the call itself, never forwards it again."""
_HOP_HEADERS = {"te", "content-type", "user-agent", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout", FORWARDED,
                "authorization"}
"""Not passed on: the router checked the client's key; nodes trust the router's certificate instead."""
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
CHANNEL_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000),
                   # Work stays on the premises: never through an http_proxy/grpc_proxy from the environment.
                   ("grpc.enable_http_proxy", 0))
KEEPALIVE = (("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000),
             ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0))
ACCEPT_KEEPALIVE = (("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_ping_strikes", 0),
                    ("grpc.http2.min_recv_ping_interval_without_data_ms", 500))
"""Server options that let routers ping as often as KEEPALIVE does."""
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class RouterConfig:
    policy: str = DEFAULT_POLICY
    """A name from lanai.mesh.placement.POLICIES."""
    allow: tuple[str, ...] = DEFAULT_ALLOWED
    """Networks work may go to (the premises policy)."""
    heartbeat_ms: int = 500
    """Load report heartbeat asked of nodes; three missed mark a node lost."""
    max_attempts: int = 8
    """Nodes tried for one call at most."""


class Router:
    """Owns the MeshState (changed only on the event loop, through lanai.mesh.state's functions)."""

    def __init__(self, router_id: str, config: RouterConfig = RouterConfig(), *, trust: Trust | None = None,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        if config.policy not in POLICIES:
            raise ValueError(f"unknown placement policy {config.policy!r}; choose from {', '.join(POLICIES)}")
        self.router_id = router_id
        self.config = config
        self.state = MeshState()
        self._premises = Premises.parse(config.allow)
        self._clock = clock
        self._rng = rng or random.Random()
        self._turn = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._pinned: dict[str, tuple[str, int]] = {}  # address -> (TLS name, trust generation) of its channel
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._syncing: set[str] = set()  # addresses with a policy exchange under way
        self._background: set[asyncio.Future[Any]] = set()
        self.trust = trust
        """None for an --insecure router: plaintext channels, and every node is taken at its word."""
        if trust is not None:
            trust.on_policy.append(self._policy_changed)
        self.metrics_port = 0
        """This process's /metrics port (set once serving), listed by sd_targets."""
        metrics.watch_mesh(router_id, self._states)

    # --- discovery -------------------------------------------------------------------------

    def found(self, address: str, source: str, node_id: str = "", mesh: str = "") -> None:
        """A discovery backend saw a node at host:port (host already resolved to an IP); `mesh` is
        the mesh id its mDNS record announces ("" when discovery does not say)."""
        host = address.rsplit(":", 1)[0]
        allowed = self._premises.allows(host)
        self.state = events.discovered(self.state, address, source, allowed=allowed, now=self._clock(),
                                       node_id=node_id)
        outsider = self._outsider(source, mesh)
        if not allowed:
            log.warning("router %s: node %s at %s is outside the premises allow-list; it will never get work",
                        self.router_id, node_id or "?", address)
        elif outsider is not None:
            self._distrust(address, *outsider, node_id=node_id)
        elif address not in self._watchers:
            watcher = NodeWatcher(address, lambda: self._connect(address, node_id),
                                  heartbeat_ms=self.config.heartbeat_ms, on_described=self._described,
                                  on_load=self._loaded, on_lost=self._lost, on_untrusted=self._untrusted)
            self._watchers[address] = asyncio.create_task(watcher.run(), name=f"watch {address}")

    def _outsider(self, source: str, mesh: str) -> tuple[NodeState, str] | None:
        """A node whose announcement already says it is not of this mesh: never contacted."""
        if self.trust is None:
            if mesh:
                return NodeState.FOREIGN, f"announces mesh {mesh}; this router runs --insecure and uses none"
            return None
        if mesh and mesh != self.trust.short_id:
            return NodeState.FOREIGN, f"announces another mesh ({mesh}; this one is {self.trust.short_id})"
        if source == "mdns" and not mesh:
            return NodeState.UNTRUSTED, "announces no mesh (an --insecure node, or one that never joined)"
        return None

    def _distrust(self, address: str, kind: NodeState, reason: str, node_id: str = "") -> None:
        before = self.state.nodes.get(address)
        self.state = events.distrusted(self.state, address, kind, reason, self._clock(), node_id)
        after = self.state.nodes.get(address)
        if after is not None and after.state is kind and (before is None or before.state is not kind):
            metrics.REFUSED_PEERS.labels(kind.value).inc()
            log.warning("router %s: node %s at %s is %s and gets no work: %s", self.router_id,
                        after.node_id or "?", address, kind.value, reason)

    def _untrusted(self, address: str, error: Untrusted) -> None:
        kind = NodeState.REVOKED if error.state == "revoked" else NodeState.UNTRUSTED
        self._distrust(address, kind, str(error))

    async def _connect(self, address: str, announced_id: str) -> grpc.aio.Channel:
        """The channel to a node, after it proved membership: a TLS handshake verified against
        the mesh CA tells who it is, and the channel pins that name. Untrusted or OSError."""
        trust = self.trust
        if trust is None:
            return self._channel(address)
        host, _, port = address.rpartition(":")
        try:
            peer = await asyncio.to_thread(trust.probe, host, int(port))
        except HandshakeFailed as exc:
            raise Untrusted(str(exc)) from None
        if peer.role != pki.ROLE_NODE:
            raise Untrusted(f"presents a {peer.role} certificate ({peer.name}), not a node's")
        if trust.revoked(peer.name):
            raise Untrusted(f"{peer.name} was revoked from the mesh", "revoked")
        if announced_id and peer.name != announced_id:
            raise Untrusted(f"announced itself as {announced_id} but its certificate is {peer.name}'s")
        pinned = (peer.name, trust.generation)
        if self._pinned.get(address) != pinned:
            self._drop_channel(address, grace=30)
            self._channels[address] = grpc.aio.secure_channel(
                address, trust.channel_credentials(),
                options=[*CHANNEL_OPTIONS, *KEEPALIVE, ("grpc.ssl_target_name_override", peer.name)])
            self._pinned[address] = pinned
        return self._channels[address]

    def _policy_changed(self, policy: Policy) -> None:
        for node in list(self.state.nodes.values()):
            if node.node_id and policy.is_revoked(node.node_id) and node.state is not NodeState.REVOKED:
                self._distrust(node.address, NodeState.REVOKED, f"{node.node_id} was revoked from the mesh")
                self._spawn(self._tell_revoked(node.address, policy))

    async def _tell_revoked(self, address: str, policy: Policy) -> None:
        """A parting message: hand the revoked node the policy that revokes it (so it stops serving
        its own clients and says why), then drop its channel (its calls end; the watcher stays away)."""
        channel, trust = self._channels.get(address), self.trust
        try:
            if channel is not None and trust is not None:
                await mesh_pb2_grpc.MembershipStub(channel).OfferPolicy(
                    mesh_pb2.SignedPolicy(version=policy.version, signed=trust.signed_policy), timeout=3)
        except grpc.aio.AioRpcError as exc:
            log.info("router %s: could not tell %s it was revoked: %s", self.router_id, address, exc.details())
        finally:
            self._drop_channel(address)

    def _sync_policy(self, address: str, theirs: int) -> None:
        """Gossip: a node that holds an older policy is handed ours, a newer one is fetched."""
        trust = self.trust
        if trust is None or theirs == trust.policy.version or address in self._syncing:
            return
        channel = self._channels.get(address)
        if channel is None:
            return
        self._syncing.add(address)

        async def exchange() -> None:
            stub = mesh_pb2_grpc.MembershipStub(channel)
            try:
                if theirs > trust.policy.version:
                    reply = await stub.GetPolicy(mesh_pb2.GetPolicyRequest(), timeout=5)
                    trust.offer(reply.signed)
                else:
                    await stub.OfferPolicy(mesh_pb2.SignedPolicy(version=trust.policy.version,
                                                                 signed=trust.signed_policy), timeout=5)
            except (grpc.aio.AioRpcError, ValueError) as exc:
                log.warning("router %s: policy exchange with %s failed: %s", self.router_id, address, exc)
            finally:
                self._syncing.discard(address)

        self._spawn(exchange())

    def _drop_channel(self, address: str, grace: float | None = None) -> None:
        """Forget the node's channel and close it in the background (after `grace` s for its calls)."""
        self._pinned.pop(address, None)
        channel = self._channels.pop(address, None)
        if channel is not None:
            self._spawn(channel.close(grace=grace))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Future[Any] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_until_up(self, address: str, timeout: float) -> None:
        """Return once the node at `address` is described and reporting load."""
        deadline = self._clock() + timeout
        while (node := self.state.nodes.get(address)) is None or node.state is not events.NodeState.UP:
            if self._clock() > deadline:
                reason = node.reason if node else "not discovered"
                raise TimeoutError(f"node at {address} did not come up within {timeout:.0f} s: {reason}")
            await asyncio.sleep(0.02)

    def gone(self, address: str) -> None:
        """Discovery says the node left for good (mDNS goodbye)."""
        task = self._watchers.pop(address, None)
        if task is not None:
            task.cancel()
        self._drop_channel(address)
        self.state = events.forgotten(self.state, address)
        log.info("router %s: node at %s left the mesh", self.router_id, address)

    async def close(self) -> None:
        metrics.unwatch_mesh(self.router_id)
        for task in self._watchers.values():
            task.cancel()
        if self._watchers:
            _, stuck = await asyncio.wait(self._watchers.values(), timeout=5)
            if stuck:
                log.error("router %s: %d node watcher(s) did not stop", self.router_id, len(stuck))
        for channel in self._channels.values():
            await channel.close()
        self._watchers.clear()
        self._channels.clear()
        self._pinned.clear()
        for pending in list(self._background):
            pending.cancel()
        if self.trust is not None and self._policy_changed in self.trust.on_policy:
            self.trust.on_policy.remove(self._policy_changed)

    def _described(self, address: str, describe: Any) -> None:
        self.state = events.described(self.state, address, describe.node_id, services_of(describe),
                                      throughput_of(describe), raw=describe)

    def _loaded(self, address: str, report: Any) -> None:
        before = self.state.nodes.get(address)
        load, throughput = load_of(report)
        self.state = events.load_reported(self.state, address, load, throughput, draining=report.draining,
                                          now=self._clock(), raw=report)
        after = self.state.nodes.get(address)
        if before is not None and after is not None and before.state is not after.state:
            log.info("router %s: node %s at %s is %s", self.router_id, after.node_id, address, after.state.value)
        if self.trust is not None:
            self._sync_policy(address, report.policy_version)

    def _lost(self, address: str, reason: str) -> None:
        node = self.state.nodes.get(address)
        if node is not None and node.state is not events.NodeState.DOWN:
            log.warning("router %s: node %s at %s is down: %s", self.router_id, node.node_id, address, reason)
        self.state = events.lost(self.state, address, reason, self._clock())

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            if self.trust is not None:  # a secure channel exists once the node proved itself (_connect)
                raise Unavailable(f"node at {address} has not proved its mesh membership yet")
            # KEEPALIVE: a pulled cable sends no reset: pings find the dead connection within ~2 s, so calls
            # placed on it fail with UNAVAILABLE (and are retried) instead of waiting for the deadline.
            self._channels[address] = grpc.aio.insecure_channel(address, options=[*CHANNEL_OPTIONS, *KEEPALIVE])
        return self._channels[address]

    # --- placement -------------------------------------------------------------------------

    def _candidates(self, need: Need, tried: set[str], turn: int) -> list[NodeView]:
        return rank(self.state, need, policy=self.config.policy, now=self._clock(), rng=self._rng, turn=turn,
                    exclude=tried)

    def _started(self, address: str) -> None:
        self.state = events.call_started(self.state, address, self._clock())

    def _finished(self, address: str, service: str, error: grpc.aio.AioRpcError | None) -> None:
        failed = error is not None and error.code() is grpc.StatusCode.UNAVAILABLE
        was_open = (node := self.state.nodes.get(address)) is not None and node.circuit.is_open()
        self.state = events.call_finished(self.state, address, node_failed=failed, now=self._clock())
        if error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            self.state = events.refused(self.state, address, service)  # full until its next report
        node = self.state.nodes.get(address)
        if node is None:
            return
        metrics.ROUTER_ATTEMPTS.labels(service, node.node_id, error.code().name if error else "OK").inc()
        if node.circuit.is_open() and not was_open:
            metrics.ROUTER_CIRCUIT_TRIPS.labels(node.node_id).inc()
            log.warning("router %s: stopped using node %s after %d failed calls; probing it in %.0f s",
                        self.router_id, node.node_id, node.circuit.failures, COOLDOWN_S)

    # --- observability ---------------------------------------------------------------------

    def _states(self) -> dict[str, int]:
        return dict(Counter(node.state.value for node in self.state.nodes.values()))

    def sd_targets(self, seen_as: str) -> list[dict[str, Any]]:
        """Prometheus http_sd target groups: every reachable node's /metrics, and this router's.
        `seen_as` is the host the scraper reached this router by (it also reaches local nodes so)."""
        groups: list[dict[str, Any]] = []
        for node in sorted(self.state.nodes.values(), key=lambda n: n.address):
            port = node.description.metrics_port if node.description is not None else 0
            if not port or node.state is NodeState.DOWN or node.state in events.NEVER_USED:
                continue
            host = seen_as if node.source == "local" and seen_as else node.address.rsplit(":", 1)[0]
            groups.append({"targets": [f"{host}:{port}"], "labels": {
                "lanai_node": node.node_id, "lanai_services": ",".join(sorted(node.services)),
                "lanai_role": "node"}})
        if self.metrics_port and seen_as and not any(n.source == "local" for n in self.state.nodes.values()):
            groups.append({"targets": [f"{seen_as}:{self.metrics_port}"],
                           "labels": {"lanai_node": self.router_id, "lanai_services": "", "lanai_role": "router"}})
        return groups

    # --- forwarding ------------------------------------------------------------------------

    async def forward(self, rpc: Rpc, request: Any, context: Context) -> AsyncGenerator[bytes, None]:
        """Relay one call of any shape; `request` is the raw bytes, or an async iterator of
        them for client-streaming calls. Yields the raw responses."""
        feed = ReplayableStream(request) if rpc.client_streaming else None
        moving: Resume | None = None
        try:
            first = await feed.first() if feed else request
            moving = resume_for(rpc, first, feed) if first is not None else None
            # aclosing: a consumer that stops early (a unary call) must close the attempt at once,
            # so the call is counted finished now, not whenever the generator is collected.
            async with contextlib.aclosing(self._attempts(rpc, feed, first, context, moving)) as responses:
                async for response in responses:
                    yield response
        finally:
            if moving is not None:
                moving.close()
            if feed:
                feed.close()

    async def _attempts(self, rpc: Rpc, feed: ReplayableStream | None, first: Any,
                        context: Context, moving: Resume | None) -> AsyncGenerator[bytes, None]:
        if first is None:
            return  # a stream closed before its first message: nothing to route
        need = Need(rpc.service, requested_model(rpc, first))
        metadata = [(k, v) for k, v in context.invocation_metadata() or ()
                    if k not in _HOP_HEADERS and not k.startswith(":")] + [(FORWARDED, self.router_id)]
        tried: set[str] = set()
        errors: list[grpc.aio.AioRpcError] = []
        lost = ""  # the node a moved stream was lost on
        self._turn += 1  # once per call: retries keep the call's place in a round-robin rotation
        for _ in range(self.config.max_attempts):
            try:
                candidates = self._candidates(need, tried, self._turn)
            except NoCandidate as exc:
                raise Unavailable(str(exc)) from None
            if not candidates:
                break
            node = candidates[0]
            tried.add(node.address)
            timeout = context.time_remaining()
            if timeout is not None and timeout <= 0:
                raise DeadlineExceeded(f"the deadline passed while placing the {rpc.service} request")
            relayed = False
            self._started(node.address)
            if tried != {node.address}:
                metrics.ROUTER_RETRIES.labels(rpc.service).inc()
            request = moving.request() if moving else feed.replay() if feed else first
            try:
                call = self._invoke(rpc, node.address, request, timeout, metadata)
                if rpc.server_streaming:
                    async for response in call:
                        if feed and not relayed and not moving:
                            feed.commit()  # a response went out: this node keeps the call
                        relayed = True
                        out = moving.relay(response) if moving else response
                        if out is not None:
                            yield out
                else:
                    yield await call
            except grpc.aio.AioRpcError as error:
                self._finished(node.address, rpc.service, error)
                if relayed and moving is not None and error.code() in MOVES:
                    moving.moved()
                    metrics.ROUTER_STREAMS_MOVED.labels(rpc.service).inc()
                    lost = node.node_id or node.address
                    log.warning("router %s: %s lost node %s mid-stream (%s: %s); moving it to another node",
                                self.router_id, rpc.path, lost, error.code().name, error.details())
                elif relayed or error.code() not in _RETRYABLE:
                    await context.abort(error.code(), error.details() or "")
                else:
                    log.info("router %s: %s on %s (%s): %s; trying another node", self.router_id, rpc.path,
                             node.node_id, node.address, error.code().name)
                errors.append(error)
                continue
            except BaseException:
                self._finished(node.address, rpc.service, None)
                raise
            self._finished(node.address, rpc.service, None)
            return
        if lost:
            raise Unavailable(f"the {rpc.service} stream lost its node {lost} and no other node could take it "
                              f"(tried {len(tried)}): " + "; ".join(f"{e.code().name}: {e.details()}" for e in errors[-3:]))
        if errors and all(e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors):
            raise Overloaded(f"every node serving {rpc.service} is full ({len(errors)} tried); retry with backoff")
        raise Unavailable(f"no node could take the {rpc.service} request; tried {len(tried)}: "
                          + "; ".join(f"{e.code().name}: {e.details()}" for e in errors[-3:]))

    def _invoke(self, rpc: Rpc, address: str, request: Any, timeout: float | None,
                metadata: list[tuple[str, str | bytes]]) -> Any:
        channel = self._channel(address)
        if rpc.client_streaming:
            return streamcall.open_stream(channel, rpc.path, server_streaming=rpc.server_streaming, requests=request,
                                          timeout=timeout, metadata=metadata)
        if rpc.server_streaming:
            return channel.unary_stream(rpc.path)(request, timeout=timeout, metadata=metadata)
        return channel.unary_unary(rpc.path)(request, timeout=timeout, metadata=metadata)
