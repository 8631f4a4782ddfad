"""lanai.mesh.state: the router's view of the mesh, changed by one pure function per event.

Every event is applied through `apply`, which also checks that the state it was given is unchanged."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from lanai.mesh.circuit import Circuit
from lanai.mesh.state import (
    LoadView,
    MeshState,
    NodeState,
    NodeView,
    ServiceView,
    call_finished,
    call_started,
    described,
    discovered,
    forgotten,
    load_reported,
    lost,
)

ADDR = "10.0.0.5:50051"
OTHER = "10.0.0.6:50051"
SPEECH = ServiceView(slots=2, max_queue=4, models=("whisper-base", "whisper-small"), default_model="whisper-base")
SERVICES = {"speech": SPEECH}
BASE = ("speech", "whisper-base")
SMALL = ("speech", "whisper-small")


def apply(fn: Callable[..., MeshState], state: MeshState, *args: Any, **kwargs: Any) -> MeshState:
    before = copy.deepcopy(state)
    nodes_before = dict(state.nodes)
    after = fn(state, *args, **kwargs)
    assert state == before, f"{fn.__name__} changed the state it was given"
    assert dict(state.nodes) == nodes_before
    assert all(state.nodes[a] is n for a, n in nodes_before.items()), f"{fn.__name__} replaced a node in place"
    return after


def found(state: MeshState = MeshState(), address: str = ADDR, *, now: float = 10.0) -> MeshState:
    return apply(discovered, state, address, "static", allowed=True, now=now)


def up(state: MeshState = MeshState(), address: str = ADDR, *, now: float = 10.0,
       throughput: dict[tuple[str, str], float] | None = None) -> MeshState:
    """Discovered, described and reporting load: the usual way a node comes up."""
    s = found(state, address, now=now)
    s = apply(described, s, address, f"node-{address}", SERVICES, throughput or {})
    return apply(load_reported, s, address, {"speech": LoadView(0, 0)}, {}, draining=False, now=now + 1.0)


def failed_calls(state: MeshState, times: int, *, now: float, address: str = ADDR) -> MeshState:
    for i in range(times):
        state = apply(call_started, state, address, now + i)
        state = apply(call_finished, state, address, node_failed=True, now=now + i)
    return state


# --- discovery --------------------------------------------------------------------------------------------------


def test_an_allowed_address_is_discovered_down_and_connecting() -> None:
    s = apply(discovered, MeshState(), ADDR, "mdns", allowed=True, now=5.0, node_id="gpu-1")
    node = s.nodes[ADDR]
    assert node.address == ADDR and node.source == "mdns" and node.node_id == "gpu-1"
    assert node.state is NodeState.DOWN
    assert node.since == 5.0
    assert node.services == {} and node.load == {} and node.router_in_flight == 0
    assert node.circuit == Circuit()


def test_a_refused_address_is_refused_and_says_why() -> None:
    s = apply(discovered, MeshState(), "8.8.8.8:50051", "dns", allowed=False, now=5.0)
    node = s.nodes["8.8.8.8:50051"]
    assert node.state is NodeState.REFUSED
    assert "premises" in node.reason
    assert node.since == 5.0


def test_later_events_never_change_a_refused_node() -> None:
    s = apply(discovered, MeshState(), ADDR, "dns", allowed=False, now=5.0)
    refused = s.nodes[ADDR]
    s = apply(described, s, ADDR, "evil", SERVICES, {BASE: 100.0}, raw="describe")
    assert s.nodes[ADDR] == refused
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 0)}, {BASE: 100.0}, draining=False, now=6.0)
    assert s.nodes[ADDR] == refused
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 0)}, {}, draining=True, now=7.0)
    assert s.nodes[ADDR] == refused
    s = apply(lost, s, ADDR, "gone", 8.0)
    assert s.nodes[ADDR] == refused
    s = apply(discovered, s, ADDR, "static", allowed=True, now=9.0)
    assert s.nodes[ADDR] == refused


def test_discovered_twice_keeps_the_known_node() -> None:
    s = up()
    node = s.nodes[ADDR]
    assert node.state is NodeState.UP
    again = apply(discovered, s, ADDR, "mdns", allowed=True, now=99.0, node_id="someone-else")
    assert again.nodes[ADDR] == node
    refused_now = apply(discovered, s, ADDR, "dns", allowed=False, now=99.0)
    assert refused_now.nodes[ADDR] == node


def test_nodes_are_keyed_by_address_and_kept_apart() -> None:
    s = up()
    s = found(s, OTHER, now=20.0)
    assert set(s.nodes) == {ADDR, OTHER}
    assert s.nodes[ADDR].state is NodeState.UP
    assert s.nodes[OTHER].state is NodeState.DOWN


def test_forgotten_drops_only_that_node() -> None:
    s = found(up(), OTHER)
    s = apply(forgotten, s, ADDR)
    assert set(s.nodes) == {OTHER}
    assert apply(forgotten, s, "10.9.9.9:1") == s


# --- described / load_reported / lost ---------------------------------------------------------------------------


def test_described_alone_does_not_bring_a_node_up() -> None:
    s = apply(described, found(), ADDR, "gpu-1", SERVICES, {BASE: 3.0}, raw="the describe")
    node = s.nodes[ADDR]
    assert node.node_id == "gpu-1"
    assert node.services == SERVICES
    assert node.throughput == {BASE: 3.0}
    assert node.description == "the describe"
    assert node.state is NodeState.DOWN


def test_described_then_load_reported_is_up_with_its_load() -> None:
    s = apply(described, found(now=1.0), ADDR, "gpu-1", SERVICES, {})
    load = {"speech": LoadView(in_flight=1, queued=2, open_streams=1)}
    s = apply(load_reported, s, ADDR, load, {BASE: 4.0}, draining=False, now=12.0, raw="report")
    node = s.nodes[ADDR]
    assert node.state is NodeState.UP
    assert node.reason == ""
    assert node.since == 12.0
    assert node.load == load
    assert node.last_load == "report"
    assert node.throughput[BASE] == 4.0


def test_events_copy_the_mappings_they_are_given() -> None:
    services = {"speech": SPEECH}
    load = {"speech": LoadView(1, 0)}
    s = apply(described, found(), ADDR, "gpu-1", services, {})
    s = apply(load_reported, s, ADDR, load, {}, draining=False, now=11.0)
    services.clear()
    load["speech"] = LoadView(9, 9)
    assert s.nodes[ADDR].services == {"speech": SPEECH}
    assert s.nodes[ADDR].load == {"speech": LoadView(1, 0)}


def test_since_moves_only_when_the_state_changes() -> None:
    s = up(now=10.0)  # UP at 11.0
    s = apply(load_reported, s, ADDR, {"speech": LoadView(2, 0)}, {}, draining=False, now=30.0)
    assert s.nodes[ADDR].state is NodeState.UP
    assert s.nodes[ADDR].since == 11.0
    assert s.nodes[ADDR].load == {"speech": LoadView(2, 0)}


def test_a_draining_report_makes_it_draining() -> None:
    s = apply(load_reported, up(), ADDR, {"speech": LoadView(1, 0)}, {}, draining=True, now=20.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.DRAINING
    assert node.reason != ""
    assert node.since == 20.0
    assert node.load == {"speech": LoadView(1, 0)}


def test_lost_is_down_with_the_reason_and_no_load() -> None:
    s = apply(load_reported, up(), ADDR, {"speech": LoadView(2, 1)}, {}, draining=False, now=15.0)
    s = apply(lost, s, ADDR, "load stream broke: connection reset", 20.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.DOWN
    assert node.reason == "load stream broke: connection reset"
    assert node.load == {}
    assert node.since == 20.0
    assert node.node_id == f"node-{ADDR}" and node.services == SERVICES  # still known, for when it returns


def test_a_later_load_report_readmits_a_lost_node() -> None:
    s = apply(lost, up(), ADDR, "connect failed", 20.0)
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 1)}, {}, draining=False, now=25.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.UP
    assert node.reason == ""
    assert node.since == 25.0
    assert node.load == {"speech": LoadView(0, 1)}


def test_a_draining_node_that_reports_normally_again_is_up() -> None:
    s = apply(load_reported, up(), ADDR, {}, {}, draining=True, now=20.0)
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 0)}, {}, draining=False, now=21.0)
    assert s.nodes[ADDR].state is NodeState.UP and s.nodes[ADDR].since == 21.0


@pytest.mark.parametrize("event", [
    lambda s: described(s, OTHER, "x", SERVICES, {BASE: 1.0}),
    lambda s: load_reported(s, OTHER, {"speech": LoadView(0, 0)}, {}, draining=False, now=1.0),
    lambda s: lost(s, OTHER, "gone", 1.0),
    lambda s: call_finished(s, OTHER, node_failed=True, now=1.0),
    lambda s: forgotten(s, OTHER),
], ids=["described", "load_reported", "lost", "call_finished", "forgotten"])
def test_events_for_an_unknown_address_change_nothing(event: Callable[[MeshState], MeshState]) -> None:
    s = up()
    before = copy.deepcopy(s)
    assert event(s) == before
    assert s == before


# --- calls and the circuit --------------------------------------------------------------------------------------


def test_calls_count_router_in_flight() -> None:
    s = up()
    s = apply(call_started, s, ADDR, 20.0)
    s = apply(call_started, s, ADDR, 20.0)
    assert s.nodes[ADDR].router_in_flight == 2
    s = apply(call_finished, s, ADDR, node_failed=False, now=21.0)
    assert s.nodes[ADDR].router_in_flight == 1
    s = apply(call_finished, s, ADDR, node_failed=False, now=21.0)
    assert s.nodes[ADDR].router_in_flight == 0
    assert s.nodes[ADDR].state is NodeState.UP


def test_router_in_flight_never_goes_below_zero() -> None:
    s = apply(call_finished, up(), ADDR, node_failed=False, now=20.0)
    assert s.nodes[ADDR].router_in_flight == 0
    s = apply(call_finished, s, ADDR, node_failed=True, now=20.0)
    assert s.nodes[ADDR].router_in_flight == 0


def test_two_failed_calls_leave_it_up() -> None:
    s = failed_calls(up(), 2, now=20.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.UP
    assert not node.circuit.is_open()
    assert node.router_in_flight == 0


def test_three_failed_calls_open_the_circuit_and_make_it_suspect() -> None:
    s = failed_calls(up(), 3, now=20.0)  # failures at 20, 21, 22
    node = s.nodes[ADDR]
    assert node.circuit.is_open()
    assert node.circuit.opened_at == 22.0
    assert node.state is NodeState.SUSPECT
    assert "3" in node.reason
    assert node.since == 22.0
    assert node.router_in_flight == 0


def test_a_success_in_between_keeps_it_up() -> None:
    s = failed_calls(up(), 2, now=20.0)
    s = apply(call_finished, s, ADDR, node_failed=False, now=23.0)
    s = failed_calls(s, 2, now=24.0)
    assert s.nodes[ADDR].state is NodeState.UP
    assert not s.nodes[ADDR].circuit.is_open()


def test_a_success_closes_the_circuit_and_it_is_up_again() -> None:
    s = failed_calls(up(), 3, now=20.0)
    s = apply(call_started, s, ADDR, 30.0)  # after the cool-down: the probe
    assert s.nodes[ADDR].circuit.probing
    s = apply(call_finished, s, ADDR, node_failed=False, now=31.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.UP
    assert node.reason == ""
    assert node.since == 31.0
    assert node.circuit == Circuit()


def test_a_failed_probe_keeps_it_suspect_with_a_fresh_cool_down() -> None:
    s = failed_calls(up(), 3, now=20.0)
    s = apply(call_started, s, ADDR, 30.0)
    s = apply(call_finished, s, ADDR, node_failed=True, now=31.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.SUSPECT
    assert node.circuit.is_open() and not node.circuit.probing
    assert node.circuit.opened_at == 31.0


def test_a_load_report_while_the_circuit_is_open_keeps_it_suspect() -> None:
    s = failed_calls(up(), 3, now=20.0)
    reason = s.nodes[ADDR].reason
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 0)}, {}, draining=False, now=40.0)
    node = s.nodes[ADDR]
    assert node.state is NodeState.SUSPECT
    assert node.reason == reason
    assert node.since == 22.0
    assert node.load == {"speech": LoadView(0, 0)}


def test_a_lost_node_that_returns_with_an_open_circuit_is_suspect() -> None:
    s = failed_calls(up(), 3, now=20.0)
    s = apply(lost, s, ADDR, "connect failed", 25.0)
    assert s.nodes[ADDR].state is NodeState.DOWN
    s = apply(load_reported, s, ADDR, {"speech": LoadView(0, 0)}, {}, draining=False, now=26.0)
    assert s.nodes[ADDR].state is NodeState.SUSPECT
    assert s.nodes[ADDR].circuit.is_open()


def test_failures_do_not_turn_a_draining_node_suspect() -> None:
    s = apply(load_reported, up(), ADDR, {}, {}, draining=True, now=15.0)
    s = failed_calls(s, 3, now=20.0)
    assert s.nodes[ADDR].state is NodeState.DRAINING
    assert s.nodes[ADDR].circuit.is_open()


# --- throughput -------------------------------------------------------------------------------------------------


def test_described_throughput_is_taken() -> None:
    s = up(throughput={BASE: 3.0, SMALL: 1.5})
    assert s.nodes[ADDR].throughput == {BASE: 3.0, SMALL: 1.5}


def test_a_reported_measurement_replaces_the_known_one() -> None:
    s = up(throughput={BASE: 3.0})
    s = apply(load_reported, s, ADDR, {}, {BASE: 5.0, SMALL: 2.0}, draining=False, now=20.0)
    assert s.nodes[ADDR].throughput == {BASE: 5.0, SMALL: 2.0}


def test_reported_zeros_do_not_overwrite_a_measured_value() -> None:
    s = up(throughput={BASE: 3.0})
    s = apply(load_reported, s, ADDR, {}, {BASE: 0.0}, draining=False, now=20.0)
    assert s.nodes[ADDR].throughput[BASE] == 3.0
    s = apply(load_reported, s, ADDR, {}, {BASE: 6.0}, draining=False, now=21.0)
    s = apply(load_reported, s, ADDR, {}, {BASE: 0.0, SMALL: 0.0}, draining=False, now=22.0)
    assert s.nodes[ADDR].throughput[BASE] == 6.0
    assert not s.nodes[ADDR].throughput.get(SMALL)


def test_a_re_describe_with_zeros_keeps_measured_values_and_adds_new_ones() -> None:
    s = up()
    s = apply(load_reported, s, ADDR, {}, {BASE: 6.0}, draining=False, now=20.0)
    s = apply(lost, s, ADDR, "restarting", 21.0)
    s = apply(described, s, ADDR, f"node-{ADDR}", SERVICES, {BASE: 0.0, SMALL: 2.5})
    assert s.nodes[ADDR].throughput == {BASE: 6.0, SMALL: 2.5}


def test_throughput_is_per_node() -> None:
    s = up(throughput={BASE: 3.0})
    s = up(s, OTHER, throughput={BASE: 9.0})
    s = apply(load_reported, s, OTHER, {}, {BASE: 12.0}, draining=False, now=20.0)
    assert s.nodes[ADDR].throughput == {BASE: 3.0}
    assert s.nodes[OTHER].throughput == {BASE: 12.0}


# --- by_id ------------------------------------------------------------------------------------------------------


def test_by_id_finds_a_described_node() -> None:
    s = up(up(), OTHER)
    node = s.by_id(f"node-{OTHER}")
    assert node is not None and node.address == OTHER
    assert s.by_id(f"node-{ADDR}") is s.nodes[ADDR]
    assert s.by_id("nobody") is None
    assert MeshState().by_id("x") is None


def test_by_id_uses_an_id_known_from_discovery() -> None:
    s = apply(discovered, MeshState(), ADDR, "mdns", allowed=True, now=1.0, node_id="from-txt")
    assert s.by_id("from-txt") is s.nodes[ADDR]


def test_by_id_of_the_empty_id_is_none() -> None:
    s = found(up(), OTHER)  # OTHER is not described: its node_id is ""
    assert s.by_id("") is None


def test_state_values_are_immutable() -> None:
    node = NodeView(ADDR, "static")
    with pytest.raises(AttributeError):
        node.state = NodeState.UP  # type: ignore[misc]
    with pytest.raises(AttributeError):
        MeshState().nodes = {}  # type: ignore[misc]


def test_a_fresh_describe_replaces_the_old_throughput_but_not_with_zero() -> None:
    speech = {"speech": ServiceView(1, 4, ("tiny.en",), "tiny.en")}
    s = discovered(MeshState(), "10.0.0.9:1", "static", allowed=True, now=0.0)
    s = described(s, "10.0.0.9:1", "n9", speech, {("speech", "tiny.en"): 5.0})
    s = described(s, "10.0.0.9:1", "n9", speech, {("speech", "tiny.en"): 20.0})  # restarted on a faster GPU
    assert s.nodes["10.0.0.9:1"].throughput[("speech", "tiny.en")] == 20.0
    s = described(s, "10.0.0.9:1", "n9", speech, {("speech", "tiny.en"): 0.0})  # not measured yet
    assert s.nodes["10.0.0.9:1"].throughput[("speech", "tiny.en")] == 20.0


def test_a_suspect_node_says_why_after_a_load_report() -> None:
    speech = {"speech": ServiceView(1, 4, ("tiny.en",), "tiny.en")}
    s = discovered(MeshState(), "10.0.0.9:1", "static", allowed=True, now=0.0)
    s = described(s, "10.0.0.9:1", "n9", speech, {})
    s = lost(s, "10.0.0.9:1", "connect failed", 1.0)
    for _ in range(3):
        s = call_finished(call_started(s, "10.0.0.9:1", 2.0), "10.0.0.9:1", node_failed=True, now=2.0)
    s = load_reported(s, "10.0.0.9:1", {}, {}, draining=False, now=3.0)
    assert s.nodes["10.0.0.9:1"].state is NodeState.SUSPECT
    assert s.nodes["10.0.0.9:1"].reason == "3 failed calls in a row"


def test_a_refusal_marks_the_service_full_until_the_next_report() -> None:
    from lanai.mesh import state as events
    from lanai.mesh.placement import Need, full

    s = events.discovered(MeshState(), "10.0.0.9:1", "static", allowed=True, now=1.0)
    s = events.described(s, "10.0.0.9:1", "n9", {"speech": ServiceView(2, 4, ("base",), "base"),
                                                  "vision": ServiceView(1, 1, ("m",), "m")}, {})
    s = events.load_reported(s, "10.0.0.9:1", {"speech": LoadView(1, 0)}, {}, draining=False, now=2.0)
    refused = events.refused(s, "10.0.0.9:1", "speech")
    node = refused.nodes["10.0.0.9:1"]
    assert node.load["speech"] == LoadView(2, 4) and full(node, Need("speech"))
    assert not full(node, Need("vision"))  # only the service that refused
    again = events.load_reported(refused, "10.0.0.9:1", {"speech": LoadView(0, 0)}, {}, draining=False, now=3.0)
    assert not full(again.nodes["10.0.0.9:1"], Need("speech"))
    assert events.refused(s, "10.0.0.7:1", "speech") is s  # unknown node: nothing to mark
    assert events.refused(s, "10.0.0.9:1", "language") is s


# --- calls since the last report, and the sampling pool (issue 17) ----------------------------------------------

def test_calls_sent_since_the_last_report_are_counted_until_the_next() -> None:
    s = up()
    for i in range(3):
        s = apply(call_started, s, ADDR, 20.0 + i)
    s = apply(call_finished, s, ADDR, node_failed=False, now=24.0)
    node = s.nodes[ADDR]
    assert node.sent_since_report == 3 and node.router_in_flight == 2  # a finish does not undo a send
    s = apply(load_reported, s, ADDR, {"speech": LoadView(2, 0)}, {}, draining=False, now=25.0)
    assert s.nodes[ADDR].sent_since_report == 0  # the report now shows them


def test_the_pool_holds_the_nodes_that_take_work_weighted_by_capacity() -> None:
    s = up(throughput={BASE: 2.0})  # 2 slots x 2.0
    s = up(s, OTHER, throughput={BASE: 1.0})  # 2 slots x 1.0
    s = apply(described, found(s, "10.0.0.7:50051"), "10.0.0.7:50051", "n7", SERVICES, {BASE: 9.0})  # not up yet
    pool = s.pool("speech")
    assert pool.addresses == (ADDR, OTHER)
    assert pool.cumulative == (4.0, 6.0)
    assert s.pool("speech", "whisper-small").addresses == (ADDR, OTHER)  # both serve it; unmeasured: median speed
    assert s.pool("speech", "whisper-tiny").addresses == ()
    assert s.pool("vision").addresses == ()


def test_pool_draws_are_seeded_and_proportional_to_capacity() -> None:
    import random

    s = up(throughput={BASE: 3.0})
    s = up(s, OTHER, throughput={BASE: 1.0})
    pool = s.pool("speech")
    rng = random.Random(7)
    draws = [pool.draw(rng) for _ in range(4000)]
    assert draws == [pool.draw(r) for r in [random.Random(7)] for _ in range(4000)]
    assert 0.72 < draws.count(ADDR) / len(draws) < 0.78  # 3/4 of the capacity


def test_the_pool_is_kept_across_load_and_calls_and_rebuilt_when_membership_changes() -> None:
    s = up(throughput={BASE: 2.0})
    s = up(s, OTHER, throughput={BASE: 1.0})
    pool = s.pool("speech")
    kept = apply(load_reported, s, ADDR, {"speech": LoadView(2, 3)}, {BASE: 2.2}, draining=False, now=30.0)
    kept = apply(call_started, kept, OTHER, 31.0)
    kept = apply(call_finished, kept, OTHER, node_failed=False, now=32.0)
    assert kept.pool("speech") is pool  # load, calls and a 10% drift do not rebuild it
    assert apply(lost, s, OTHER, "load stream broke", 33.0).pool("speech").addresses == (ADDR,)
    assert apply(forgotten, s, OTHER).pool("speech").addresses == (ADDR,)
    assert found(s, "10.0.0.7:50051").pool("speech") is not pool
    assert apply(load_reported, s, ADDR, {}, {}, draining=True, now=34.0).pool("speech").addresses == (OTHER,)


def test_the_pool_is_rebuilt_when_a_speed_drifts_past_its_weight() -> None:
    s = up(throughput={BASE: 2.0})
    s = up(s, OTHER, throughput={BASE: 1.0})
    pool = s.pool("speech")
    step = s
    for speed in (2.2, 2.4):  # each step is small, but together they pass DRIFT from the weight's 2.0
        step = apply(load_reported, step, ADDR, {"speech": LoadView(0, 0)}, {BASE: speed}, draining=False, now=40.0)
    assert step.pool("speech") is pool
    drifted = apply(load_reported, step, ADDR, {"speech": LoadView(0, 0)}, {BASE: 2.6}, draining=False, now=41.0)
    rebuilt = drifted.pool("speech")
    assert rebuilt is not pool and rebuilt.speeds[ADDR] == 2.6 and rebuilt.cumulative == (5.2, 7.2)
