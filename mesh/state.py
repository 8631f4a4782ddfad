"""What a router knows of the mesh, as immutable values changed by one small pure function per event."""

from __future__ import annotations

import bisect
import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lanai.mesh.circuit import Circuit


class NodeState(enum.Enum):
    UP = "up"
    """Described and reporting load: takes work."""
    SUSPECT = "suspect"
    """Its circuit is open after failed calls; probed back after a cool-down."""
    DOWN = "down"
    """Not reachable (load stream broken, never connected)."""
    REFUSED = "refused"
    """Outside the premises policy: never contacted, never given work."""
    DRAINING = "draining"
    """Shutting down: finishing work, taking none."""
    UNTRUSTED = "untrusted"
    """Could not prove mesh membership (no, a bad or an expired certificate): never given work."""
    FOREIGN = "foreign"
    """Announces another mesh: never contacted, never given work."""
    REVOKED = "revoked"
    """A member the mesh's owner revoked: never given work again."""


NEVER_USED = frozenset({NodeState.REFUSED, NodeState.UNTRUSTED, NodeState.FOREIGN, NodeState.REVOKED})
"""States in which a node gets no work whatever its load says."""
TAKES_WORK = frozenset({NodeState.UP, NodeState.SUSPECT})
"""States in which a node may be given work (a suspect one only when its circuit lets a probe through)."""
SETTLED = frozenset({NodeState.REFUSED, NodeState.FOREIGN, NodeState.REVOKED})
"""States that no report from the node itself can change."""


@dataclass(frozen=True)
class ServiceView:
    """A service a node hosts, as its Describe said."""

    slots: int
    max_queue: int
    models: tuple[str, ...]
    default_model: str


@dataclass(frozen=True)
class LoadView:
    """A service's load, as the node's last report said."""

    in_flight: int
    queued: int
    open_streams: int = 0


@dataclass(frozen=True)
class NodeView:
    address: str
    """host:port the router dials; the key of the node in the mesh."""
    source: str
    """How it was found: "local", "static", "mdns", "dns"."""
    node_id: str = ""
    """Known once described (or from the mDNS TXT record)."""
    state: NodeState = NodeState.DOWN
    reason: str = "discovered; connecting"
    services: Mapping[str, ServiceView] = field(default_factory=dict)
    load: Mapping[str, LoadView] = field(default_factory=dict)
    throughput: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(service, model) -> measured work units per second (audio s/s, tokens/s, images/s)."""
    router_in_flight: int = 0
    """Calls this router has sent to the node and not yet seen finish."""
    circuit: Circuit = field(default_factory=Circuit)
    since: float = 0.0
    """Clock reading of the last state change."""
    description: Any = None
    """The last Describe response as received (for ListNodes); placement never reads it."""
    last_load: Any = None
    """The last LoadReport as received (for ListNodes)."""
    sent_since_report: int = 0
    """Calls this router has sent to the node since its last load report: work the report cannot show yet."""

    def speed(self, service: str, model: str = "") -> float:
        """Measured work units per second for the model ("" for the node's default); 0 when unmeasured."""
        return self.throughput.get((service, model or self.services[service].default_model), 0.0)


DRIFT = 1.25
"""A pool is rebuilt once a member's measured speed moves by more than this factor from its weight."""


@dataclass(frozen=True)
class Pool:
    """The nodes that could take a (service, model) request, unless their circuit or load says no,
    each weighted by its capacity (slots x measured speed, the pool's median speed when it has
    none yet), for drawing a few at random in proportion to what they can do."""

    addresses: tuple[str, ...]
    cumulative: tuple[float, ...]
    speeds: Mapping[str, float]
    """The measured speed each weight was computed from (0: unmeasured)."""

    def draw(self, rng: random.Random) -> str:
        """One address, with probability proportional to its capacity."""
        return self.addresses[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]

    def stale(self, node: NodeView, service: str, model: str) -> bool:
        """Whether the node's speed has drifted from its weight (or it measured its first)."""
        if node.address not in self.speeds or service not in node.services:
            return False
        was, now = self.speeds[node.address], node.speed(service, model)
        return (was == 0) != (now == 0) or (was > 0 and not 1 / DRIFT <= now / was <= DRIFT)


def build_pool(nodes: Mapping[str, NodeView], service: str, model: str) -> Pool:
    members = [n for n in nodes.values() if n.state in TAKES_WORK and service in n.services
               and (not model or model in n.services[service].models)]
    members.sort(key=lambda n: n.address)
    speeds = {n.address: n.speed(service, model) for n in members}
    known = sorted(s for s in speeds.values() if s > 0)
    typical = known[len(known) // 2] if known else 1.0
    cumulative, total = [], 0.0
    for n in members:
        total += max(1, n.services[service].slots) * (speeds[n.address] or typical)
        cumulative.append(total)
    return Pool(tuple(n.address for n in members), tuple(cumulative), speeds)


@dataclass(frozen=True)
class MeshState:
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    pools: dict[tuple[str, str], Pool] = field(default_factory=dict, compare=False, repr=False)
    """Memo of `pool()`, shared by successive states while no node joins, leaves or drifts."""

    def by_id(self, node_id: str) -> NodeView | None:
        return next((n for n in self.nodes.values() if node_id and n.node_id == node_id), None)

    def pool(self, service: str, model: str = "") -> Pool:
        """The sampling pool for (service, model), built once per change of membership."""
        key = (service, model)
        if (found := self.pools.get(key)) is None:
            found = self.pools[key] = build_pool(self.nodes, service, model)
        return found


def _put(state: MeshState, node: NodeView) -> MeshState:
    old = state.nodes.get(node.address)
    keep = (state.pools and old is not None and old.services is node.services
            and (old.state in TAKES_WORK) == (node.state in TAKES_WORK)
            and (old.throughput is node.throughput
                 or not any(p.stale(node, *key) for key, p in state.pools.items())))
    return MeshState({**state.nodes, node.address: node}, state.pools if keep else {})


def discovered(state: MeshState, address: str, source: str, *, allowed: bool, now: float,
               node_id: str = "") -> MeshState:
    """A discovery backend reported the address. Known nodes keep their state."""
    if address in state.nodes:
        return state
    if not allowed:
        return _put(state, NodeView(address, source, node_id, NodeState.REFUSED,
                                    "address outside the premises allow-list: never used", since=now))
    return _put(state, NodeView(address, source, node_id, since=now))


def forgotten(state: MeshState, address: str) -> MeshState:
    """Discovery says the node is gone for good (mDNS goodbye): drop it."""
    return MeshState({a: n for a, n in state.nodes.items() if a != address})


def described(state: MeshState, address: str, node_id: str, services: Mapping[str, ServiceView],
              throughput: Mapping[tuple[str, str], float], raw: Any = None) -> MeshState:
    node = state.nodes.get(address)
    if node is None or node.state in SETTLED:
        return state
    fresh = {k: v for k, v in throughput.items() if v > 0}  # a restarted node's own measurement wins
    return _put(state, replace(node, node_id=node_id, services=dict(services),
                               throughput={**node.throughput, **fresh}, description=raw))


def load_reported(state: MeshState, address: str, load: Mapping[str, LoadView],
                  throughput: Mapping[tuple[str, str], float], *, draining: bool, now: float,
                  raw: Any = None) -> MeshState:
    """A load report arrived: the node is up (or draining) and this is how busy it is."""
    node = state.nodes.get(address)
    if node is None or node.state in SETTLED:
        return state
    if draining:
        new_state, reason = NodeState.DRAINING, "shutting down"
    elif node.circuit.is_open():
        new_state, reason = NodeState.SUSPECT, f"{node.circuit.failures} failed calls in a row"
    else:
        new_state, reason = NodeState.UP, ""
    since = now if new_state is not node.state else node.since
    fresh = {k: v for k, v in throughput.items() if v > 0}
    changed = any(node.throughput.get(k) != v for k, v in fresh.items())
    return _put(state, replace(node, state=new_state, reason=reason, load=dict(load), since=since,
                               throughput={**node.throughput, **fresh} if changed else node.throughput,
                               last_load=raw, sent_since_report=0))


def lost(state: MeshState, address: str, reason: str, now: float) -> MeshState:
    """The node stopped answering (load stream broke, connect failed)."""
    node = state.nodes.get(address)
    if node is None or node.state in SETTLED:
        return state
    return _put(state, replace(node, state=NodeState.DOWN, reason=reason, load={}, since=now))


def distrusted(state: MeshState, address: str, kind: NodeState, reason: str, now: float,
               node_id: str = "") -> MeshState:
    """The node cannot be trusted with work (untrusted, foreign or revoked): it keeps no services,
    so placement never sees it. A revoked node stays revoked."""
    node = state.nodes.get(address)
    if node is None or node.state is NodeState.REFUSED or (node.state is NodeState.REVOKED and kind is not node.state):
        return state
    since = now if node.state is not kind else node.since
    return _put(state, replace(node, state=kind, reason=reason, node_id=node_id or node.node_id, services={},
                               load={}, since=since, last_load=None))


def refused(state: MeshState, address: str, service: str) -> MeshState:
    """The node answered RESOURCE_EXHAUSTED: until its next load report, this router believes
    its `service` full (every slot busy, the queue at its limit), so placement ranks it after
    every node with room instead of sending it the next call on a stale report."""
    node = state.nodes.get(address)
    if node is None or service not in node.services:
        return state
    view = node.services[service]
    seen = node.load.get(service, LoadView(0, 0))
    full = LoadView(max(seen.in_flight, view.slots), max(seen.queued, view.max_queue), seen.open_streams)
    return _put(state, replace(node, load={**node.load, service: full}))


def call_started(state: MeshState, address: str, now: float) -> MeshState:
    node = state.nodes.get(address)
    if node is None:
        return state
    return _put(state, replace(node, router_in_flight=node.router_in_flight + 1,
                               sent_since_report=node.sent_since_report + 1, circuit=node.circuit.started(now)))


def call_finished(state: MeshState, address: str, *, node_failed: bool, now: float) -> MeshState:
    """A call ended. `node_failed`: the node could not be reached or broke the call (circuit counts it);
    a refusal because it is full, or a bad request, is not the node's failure."""
    node = state.nodes.get(address)
    if node is None:
        return state
    circuit = node.circuit.failed(now) if node_failed else node.circuit.succeeded()
    new = replace(node, router_in_flight=max(0, node.router_in_flight - 1), circuit=circuit)
    if circuit.is_open() and node.state is NodeState.UP:
        new = replace(new, state=NodeState.SUSPECT, reason=f"{circuit.failures} failed calls in a row", since=now)
    elif not circuit.is_open() and node.state is NodeState.SUSPECT:
        new = replace(new, state=NodeState.UP, reason="", since=now)
    return _put(state, new)
