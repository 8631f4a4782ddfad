"""Where a request goes: filter -> score -> pick, as pure functions over a MeshState snapshot.
No I/O and no clock or randomness of their own: `now` and `rng` are passed in."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from lanai.mesh.state import NEVER_USED, TAKES_WORK, MeshState, NodeView
from lanai.services.core.errors import quote

NEAR_EQUAL = 1.15
"""Scores within this factor of the best count as equal. Among them, power-of-two-choices on
this router's own in-flight calls (fresher than any load report) keeps several routers from
herding onto the same node."""
UNKNOWN_SPEED = 1.0
"""Work units per second assumed when no candidate has a measurement for the model."""
SAMPLE = 3
"""Least-loaded scores this many nodes per request, drawn at random in proportion to their
capacity, when more could take it (power of d choices): the cost of a placement stays flat as
the mesh grows, and routers acting on the same stale reports draw different nodes instead of
all sending to the one that looked best (docs/mesh.md, "Many routers")."""
HEADROOM = 2
"""Queue places a router leaves to the calls of other routers that no report shows yet: a node
with no more places free than this ranks after every node with more (it stays a candidate, so
nothing is refused that had room). Several routers would otherwise fill a fast node's last
places at once."""


@dataclass(frozen=True)
class Need:
    """What a request needs: a service, and a model ("" for the node's default)."""

    service: str
    model: str = ""


class NoCandidate(Exception):
    """No node can take the request; the message says why, for the client."""


def eligible(state: MeshState, need: Need, now: float) -> list[NodeView]:
    """Nodes that serve the service and model, are up, on the premises and not draining, and
    whose circuit lets a call through. Raises NoCandidate explaining what is missing."""
    serving = [n for n in state.nodes.values() if need.service in n.services and n.state not in NEVER_USED]
    if not serving:
        raise NoCandidate(f"no node on the mesh serves {need.service}; start one with "
                          f"`lanai node --services {need.service}`")
    if need.model:
        with_model = [n for n in serving if need.model in n.services[need.service].models]
        if not with_model:
            known = sorted({m for n in serving for m in n.services[need.service].models})
            raise NoCandidate(f"no node on the mesh serves {need.service} model {quote(need.model)}; "
                              f"models on the mesh: {', '.join(known)}")
        serving = with_model
    ready = [n for n in serving if n.state in TAKES_WORK and n.circuit.allows(now)]
    if not ready:
        states = ", ".join(sorted(f"{n.node_id or n.address} {n.state.value}" for n in serving))
        raise NoCandidate(f"every node serving {need.service} is unavailable right now ({states}); retry shortly")
    return ready


def ahead(node: NodeView, need: Need) -> int:
    """Requests this router believes the node holds for the service (running or queued): its
    last report plus the calls this router sent it since (which that report cannot show), or
    this router's own calls in flight if more."""
    load = node.load.get(need.service)
    reported = load.in_flight + load.queued if load else 0
    return max(reported + node.sent_since_report, node.router_in_flight)


def full(node: NodeView, need: Need, headroom: int = 0) -> bool:
    """Whether this router believes the node has no room for the service: every slot and place
    in the queue taken, by its last report (or a refusal since) or by this router's own calls.
    With `headroom`, also when no more places than that are left (queue places only: a node
    with no queue is full only when every slot is busy)."""
    service = node.services[need.service]
    limit = service.slots + service.max_queue
    spare = min(headroom, service.max_queue)
    return limit > 0 and ahead(node, need) >= limit - spare  # 0: a node that never said


def crowded(node: NodeView, need: Need, headroom: int = HEADROOM) -> bool:
    """Full, or left with at most `headroom` places: ranked after every node with more room."""
    return full(node, need, headroom)


def speed(node: NodeView, need: Need) -> float:
    """The node's measured work units per second for the model; 0 when unmeasured."""
    return node.speed(need.service, need.model)


def expected_wait(node: NodeView, need: Need, default_speed: float = UNKNOWN_SPEED) -> float:
    """Seconds-like cost of sending one more request: the work already ahead of it
    (the larger of the node's reported load and this router's own in-flight calls), spread
    over the node's slots, divided by the node's measured speed for the model (or
    `default_speed` when it has none)."""
    slots = max(1, node.services[need.service].slots)
    return max(1.0, (ahead(node, need) + 1) / slots) / (speed(node, need) or default_speed)


def typical_speed(candidates: Sequence[NodeView], need: Need) -> float:
    """The median measured speed among candidates: what an unmeasured node is assumed to do,
    so it gets tried (and measured) instead of being starved by a unit mismatch."""
    known = sorted(s for n in candidates if (s := speed(n, need)) > 0)
    return known[len(known) // 2] if known else UNKNOWN_SPEED


Policy = Callable[[Sequence[NodeView], Need, random.Random, int], list[NodeView]]


def least_loaded(candidates: Sequence[NodeView], need: Need, rng: random.Random, turn: int) -> list[NodeView]:
    """Best expected wait first; among near-equals, two picked at random and the one with fewer
    of this router's calls in flight goes first (a coin decides a tie)."""
    fallback = typical_speed(candidates, need)
    wait = {n.address: expected_wait(n, need, fallback) for n in candidates}
    ranked = sorted(candidates, key=lambda n: (wait[n.address], n.address))
    if len(ranked) < 2:
        return ranked
    near = [n for n in ranked if wait[n.address] <= wait[ranked[0].address] * NEAR_EQUAL]
    if len(near) >= 2:
        a, b = rng.sample(near, 2)  # random order: on a tie the first sampled wins
        first = b if b.router_in_flight < a.router_in_flight else a
        ranked.remove(first)
        ranked.insert(0, first)
    return ranked


def round_robin(candidates: Sequence[NodeView], need: Need, rng: random.Random, turn: int) -> list[NodeView]:
    """Each node in turn, whatever its load: the baseline to beat."""
    ordered = sorted(candidates, key=lambda n: n.address)
    start = turn % len(ordered) if ordered else 0
    return ordered[start:] + ordered[:start]


def random_choice(candidates: Sequence[NodeView], need: Need, rng: random.Random, turn: int) -> list[NodeView]:
    """Uniformly random order (a second baseline)."""
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    return shuffled


POLICIES: dict[str, Policy] = {"least-loaded": least_loaded, "round-robin": round_robin, "random": random_choice}
DEFAULT_POLICY = "least-loaded"


SAMPLED = frozenset({"least-loaded"})
"""Policies that score a capacity-weighted sample of SAMPLE nodes instead of every candidate."""


def sampled(state: MeshState, need: Need, now: float, rng: random.Random, exclude: Collection[str],
            sample: int = SAMPLE, headroom: int = HEADROOM) -> list[NodeView] | None:
    """Up to `sample` nodes not in `exclude` whose circuit allows a call and that are not
    crowded, drawn from the pool in proportion to capacity, best first; None when the pool is small enough to
    rank whole, or every drawn node is crowded (then every candidate is looked at)."""
    pool = state.pool(need.service, need.model)
    if len(pool.addresses) - len(exclude) <= sample:
        return None
    picked: dict[str, NodeView] = {}
    for _ in range(4 * sample):  # draws of a node already picked or excluded are wasted; bounded
        address = pool.draw(rng)
        if address in picked or address in exclude:
            continue
        node = state.nodes[address]
        if node.circuit.allows(now) and not crowded(node, need, headroom):
            picked[address] = node
            if len(picked) == sample:
                break
    return least_loaded(list(picked.values()), need, rng, 0) if picked else None


def rank(state: MeshState, need: Need, *, policy: str, now: float, rng: random.Random, turn: int,
         exclude: Collection[str] = (), sample: int = SAMPLE, headroom: int = HEADROOM) -> list[NodeView]:
    """Nodes that may take the request, except those in `exclude` (already tried), best first.
    Round-robin and random order every candidate (the rest are the retry order); least-loaded
    on a mesh of more than `sample` candidates returns the drawn nodes with room, best first (a
    retry ranks again; `sample=0` ranks every candidate, for comparison). Crowded nodes (within
    `headroom` queue places of full) come after every node with more room, and nodes believed
    full after those, whatever the policy scores them (a full fast node would otherwise
    out-score a free slow one and draw every attempt into a refusal). Raises NoCandidate when
    no node serves it at all."""
    if policy not in POLICIES:
        raise KeyError(policy)
    if policy in SAMPLED and sample > 0 and (drawn := sampled(state, need, now, rng, exclude, sample, headroom)):
        return drawn
    candidates = [n for n in eligible(state, need, now) if n.address not in exclude]
    tiers: tuple[list[NodeView], list[NodeView], list[NodeView]] = ([], [], [])  # room, crowded, full
    for n in candidates:
        tiers[2 if full(n, need) else 1 if crowded(n, need, headroom) else 0].append(n)
    return [n for tier in tiers if tier for n in POLICIES[policy](tier, need, rng, turn)]
