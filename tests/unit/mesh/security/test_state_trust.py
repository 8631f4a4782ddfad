"""lanai.mesh.state and lanai.mesh.placement for nodes that cannot be trusted: `distrusted` puts a node in
UNTRUSTED, FOREIGN or REVOKED with nothing to place on; reports cannot undo FOREIGN or REVOKED (an
UNTRUSTED node may come back); placement never picks a NEVER_USED node."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from lanai.mesh.placement import Need, NoCandidate, eligible, rank
from lanai.mesh.state import (
    NEVER_USED,
    SETTLED,
    LoadView,
    MeshState,
    NodeState,
    ServiceView,
    described,
    discovered,
    distrusted,
    load_reported,
    lost,
)

ADDR = "10.0.0.5:50052"
OTHER = "10.0.0.6:50052"
SPEECH = ServiceView(slots=2, max_queue=4, models=("whisper-base",), default_model="whisper-base")
SERVICES = {"speech": SPEECH}
DISTRUST = (NodeState.UNTRUSTED, NodeState.FOREIGN, NodeState.REVOKED)
NOW = 100.0
NEVER_ORDERED = sorted(NEVER_USED, key=lambda k: k.value)


def apply(fn: Callable[..., MeshState], state: MeshState, *args: Any, **kwargs: Any) -> MeshState:
    """Apply one event, checking that the state it was given is unchanged."""
    before = copy.deepcopy(state)
    after = fn(state, *args, **kwargs)
    assert state == before, f"{fn.__name__} changed the state it was given"
    return after


def up(state: MeshState = MeshState(), address: str = ADDR, *, now: float = 10.0) -> MeshState:
    s = apply(discovered, state, address, "mdns", allowed=True, now=now)
    s = apply(described, s, address, f"node-{address}", SERVICES, {("speech", "whisper-base"): 3.0}, raw="desc")
    return apply(load_reported, s, address, {"speech": LoadView(1, 0)}, {}, draining=False, now=now + 1.0, raw="load")


def report(state: MeshState, address: str = ADDR, *, now: float = NOW + 10) -> MeshState:
    s = apply(described, state, address, "node-x", SERVICES, {})
    return apply(load_reported, s, address, {"speech": LoadView(0, 0)}, {}, draining=False, now=now)


# --- the sets -------------------------------------------------------------------------------------------------


def test_never_used_and_settled_name_the_right_states() -> None:
    assert NEVER_USED == {NodeState.REFUSED, NodeState.UNTRUSTED, NodeState.FOREIGN, NodeState.REVOKED}
    assert SETTLED == {NodeState.REFUSED, NodeState.FOREIGN, NodeState.REVOKED}
    assert NodeState.UNTRUSTED not in SETTLED  # an --insecure node restarted secure may prove itself later


# --- distrusted -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DISTRUST, ids=lambda k: k.value)
def test_a_distrusted_node_keeps_nothing_to_place_on(kind: NodeState) -> None:
    s = apply(distrusted, up(), ADDR, kind, "no mesh certificate", NOW)
    node = s.nodes[ADDR]
    assert node.state is kind
    assert node.reason == "no mesh certificate"
    assert node.services == {} and node.load == {} and node.last_load is None
    assert node.since == NOW
    assert node.node_id == f"node-{ADDR}"  # kept when none is given


@pytest.mark.parametrize("kind", DISTRUST, ids=lambda k: k.value)
def test_distrusted_records_the_id_it_learned(kind: NodeState) -> None:
    s = apply(discovered, MeshState(), ADDR, "mdns", allowed=True, now=1.0)
    s = apply(distrusted, s, ADDR, kind, "why", NOW, node_id="gpu-7")
    assert s.nodes[ADDR].node_id == "gpu-7" and s.nodes[ADDR].state is kind


def test_distrusting_again_keeps_the_time_it_started() -> None:
    s = apply(distrusted, up(), ADDR, NodeState.UNTRUSTED, "first", NOW)
    s = apply(distrusted, s, ADDR, NodeState.UNTRUSTED, "second", NOW + 50)
    assert s.nodes[ADDR].since == NOW and s.nodes[ADDR].reason == "second"


def test_distrusting_an_unknown_address_changes_nothing() -> None:
    s = up()
    assert apply(distrusted, s, OTHER, NodeState.REVOKED, "why", NOW) == s


@pytest.mark.parametrize("kind", DISTRUST, ids=lambda k: k.value)
def test_a_refused_node_stays_refused(kind: NodeState) -> None:
    s = apply(discovered, MeshState(), "8.8.8.8:50052", "dns", allowed=False, now=1.0)
    after = apply(distrusted, s, "8.8.8.8:50052", kind, "why", NOW)
    assert after.nodes["8.8.8.8:50052"].state is NodeState.REFUSED


@pytest.mark.parametrize("kind", [NodeState.UNTRUSTED, NodeState.FOREIGN], ids=lambda k: k.value)
def test_a_revoked_node_stays_revoked(kind: NodeState) -> None:
    s = apply(distrusted, up(), ADDR, NodeState.REVOKED, "revoked by the owner", NOW)
    after = apply(distrusted, s, ADDR, kind, "handshake failed", NOW + 1)
    assert after.nodes[ADDR].state is NodeState.REVOKED
    assert after.nodes[ADDR].reason == "revoked by the owner"


def test_an_untrusted_or_foreign_node_can_be_revoked() -> None:
    for first in (NodeState.UNTRUSTED, NodeState.FOREIGN):
        s = apply(distrusted, up(), ADDR, first, "why", NOW)
        s = apply(distrusted, s, ADDR, NodeState.REVOKED, "revoked", NOW + 1)
        assert s.nodes[ADDR].state is NodeState.REVOKED and s.nodes[ADDR].since == NOW + 1


# --- reports after distrust -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [NodeState.REVOKED, NodeState.FOREIGN], ids=lambda k: k.value)
def test_reports_cannot_bring_a_revoked_or_foreign_node_back(kind: NodeState) -> None:
    s = apply(distrusted, up(), ADDR, kind, "why", NOW)
    after = report(s)
    node = after.nodes[ADDR]
    assert node.state is kind and node.services == {} and node.load == {}
    assert apply(lost, after, ADDR, "stream broke", NOW + 20).nodes[ADDR].state is kind


def test_an_untrusted_node_that_reports_load_comes_up() -> None:
    s = apply(distrusted, up(), ADDR, NodeState.UNTRUSTED, "bad certificate", NOW)
    after = report(s, now=NOW + 10)
    node = after.nodes[ADDR]
    assert node.state is NodeState.UP and node.reason == ""
    assert node.services == SERVICES and node.since == NOW + 10
    assert [n.address for n in eligible(after, Need("speech"), NOW + 10)] == [ADDR]


def test_an_untrusted_node_that_is_lost_goes_down() -> None:
    s = apply(distrusted, up(), ADDR, NodeState.UNTRUSTED, "bad certificate", NOW)
    assert apply(lost, s, ADDR, "gone", NOW + 1).nodes[ADDR].state is NodeState.DOWN


# --- placement ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NEVER_ORDERED, ids=lambda k: k.value)
def test_placement_never_picks_a_never_used_node(kind: NodeState) -> None:
    s = up(up(), OTHER)
    # Even with services and load (as if a stale report slipped in), a NEVER_USED node is not a candidate.
    s = MeshState({**s.nodes, ADDR: replace(s.nodes[ADDR], state=kind)})
    assert [n.address for n in eligible(s, Need("speech"), NOW)] == [OTHER]
    for seed in range(20):
        ranked = rank(s, Need("speech"), policy="least-loaded", now=NOW, rng=random.Random(seed), turn=seed)
        assert [n.address for n in ranked] == [OTHER]


@pytest.mark.parametrize("kind", NEVER_ORDERED, ids=lambda k: k.value)
def test_a_mesh_of_only_never_used_nodes_has_no_candidate(kind: NodeState) -> None:
    s = up()
    s = MeshState({ADDR: replace(s.nodes[ADDR], state=kind)})
    with pytest.raises(NoCandidate, match="no node on the mesh serves speech"):
        eligible(s, Need("speech"), NOW)


@pytest.mark.parametrize("kind", DISTRUST, ids=lambda k: k.value)
def test_a_distrusted_node_is_not_placed_on(kind: NodeState) -> None:
    s = apply(distrusted, up(up(), OTHER), ADDR, kind, "why", NOW)
    for policy in ("least-loaded", "round-robin", "random"):
        for turn in range(4):
            ranked = rank(s, Need("speech"), policy=policy, now=NOW, rng=random.Random(turn), turn=turn)
            assert [n.address for n in ranked] == [OTHER]
