"""lanai.mesh.placement: filter -> score -> pick over a MeshState snapshot, with `now` and `rng` passed in."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from lanai.mesh.circuit import Circuit
from lanai.mesh.placement import (
    POLICIES,
    UNKNOWN_SPEED,
    Need,
    NoCandidate,
    eligible,
    expected_wait,
    least_loaded,
    random_choice,
    rank,
    round_robin,
)
from lanai.mesh.state import LoadView, MeshState, NodeState, NodeView, ServiceView

NOW = 1000.0
SEEDS = range(400)
SPEECH = Need("speech")


def svc(slots: int = 1, models: tuple[str, ...] = ("whisper-base", "whisper-small"),
        default: str = "whisper-base") -> ServiceView:
    return ServiceView(slots=slots, max_queue=8, models=models, default_model=default)


def node(address: str, *, state: NodeState = NodeState.UP, node_id: str = "", slots: int = 1,
         services: dict[str, ServiceView] | None = None, in_flight: int | None = None, queued: int = 0,
         router_in_flight: int = 0, speed: float | None = None, throughput: dict[tuple[str, str], float] | None = None,
         circuit: Circuit | None = None) -> NodeView:
    load = {} if in_flight is None else {"speech": LoadView(in_flight, queued)}
    tp = dict(throughput or {})
    if speed is not None:
        tp[("speech", "whisper-base")] = speed
    return NodeView(address, "static", node_id, state, "",
                    services if services is not None else {"speech": svc(slots)},
                    load, tp, router_in_flight, circuit or Circuit(), 0.0)


def mesh(*nodes: NodeView) -> MeshState:
    return MeshState({n.address: n for n in nodes})


def addresses(nodes: Sequence[NodeView]) -> list[str]:
    return [n.address for n in nodes]


def open_circuit(at: float) -> Circuit:
    return Circuit(3, at, False)


# --- eligible ---------------------------------------------------------------------------------------------------


def test_eligible_filters_by_service() -> None:
    lang = node("10.0.0.2:1", services={"language": svc(models=("llama",), default="llama")})
    both = node("10.0.0.3:1", services={"speech": svc(), "language": svc(models=("llama",), default="llama")})
    s = mesh(node("10.0.0.1:1"), lang, both)
    assert sorted(addresses(eligible(s, SPEECH, NOW))) == ["10.0.0.1:1", "10.0.0.3:1"]
    assert sorted(addresses(eligible(s, Need("language"), NOW))) == ["10.0.0.2:1", "10.0.0.3:1"]


def test_no_node_for_the_service_names_it() -> None:
    s = mesh(node("10.0.0.1:1"))
    with pytest.raises(NoCandidate, match="vision") as info:
        eligible(s, Need("vision"), NOW)
    assert "--services vision" in str(info.value)
    with pytest.raises(NoCandidate, match="speech"):
        eligible(MeshState(), SPEECH, NOW)


def test_a_refused_node_does_not_count_as_serving() -> None:
    s = mesh(node("8.8.8.8:1", state=NodeState.REFUSED))
    with pytest.raises(NoCandidate, match="no node on the mesh serves speech"):
        eligible(s, SPEECH, NOW)


def test_eligible_filters_by_a_named_model() -> None:
    small_only = node("10.0.0.2:1", services={"speech": svc(models=("whisper-small",), default="whisper-small")})
    base_only = node("10.0.0.3:1", services={"speech": svc(models=("whisper-base",))})
    s = mesh(node("10.0.0.1:1"), small_only, base_only)
    assert sorted(addresses(eligible(s, Need("speech", "whisper-small"), NOW))) == ["10.0.0.1:1", "10.0.0.2:1"]
    assert sorted(addresses(eligible(s, Need("speech", "whisper-base"), NOW))) == ["10.0.0.1:1", "10.0.0.3:1"]
    assert sorted(addresses(eligible(s, SPEECH, NOW))) == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]


def test_a_missing_model_is_named_with_the_models_on_the_mesh() -> None:
    a = node("10.0.0.1:1", services={"speech": svc(models=("whisper-small", "whisper-base"))})
    b = node("10.0.0.2:1", state=NodeState.DOWN,
             services={"speech": svc(models=("whisper-tiny", "whisper-base"), default="whisper-tiny")})
    lang = node("10.0.0.3:1", services={"language": svc(models=("llama",), default="llama")})
    with pytest.raises(NoCandidate) as info:
        eligible(mesh(a, b, lang), Need("speech", "whisper-large"), NOW)
    message = str(info.value)
    assert "'whisper-large'" in message and "speech" in message
    assert "whisper-base, whisper-small, whisper-tiny" in message
    assert "llama" not in message


@pytest.mark.parametrize("state", [NodeState.DOWN, NodeState.DRAINING, NodeState.REFUSED])
def test_down_draining_and_refused_nodes_are_never_eligible(state: NodeState) -> None:
    s = mesh(node("10.0.0.1:1"), node("10.0.0.2:1", state=state))
    assert addresses(eligible(s, SPEECH, NOW)) == ["10.0.0.1:1"]


def test_up_and_suspect_nodes_whose_circuit_allows_are_eligible() -> None:
    s = mesh(node("10.0.0.1:1"), node("10.0.0.2:1", state=NodeState.SUSPECT, circuit=open_circuit(NOW - 10.0)))
    assert sorted(addresses(eligible(s, SPEECH, NOW))) == ["10.0.0.1:1", "10.0.0.2:1"]


def test_a_suspect_node_waits_out_its_cool_down_and_takes_one_probe() -> None:
    cooling = node("10.0.0.2:1", state=NodeState.SUSPECT, circuit=open_circuit(NOW - 1.0))
    assert addresses(eligible(mesh(node("10.0.0.1:1"), cooling), SPEECH, NOW)) == ["10.0.0.1:1"]
    assert sorted(addresses(eligible(mesh(node("10.0.0.1:1"), cooling), SPEECH, NOW + 1.0))) == [
        "10.0.0.1:1", "10.0.0.2:1"]
    probing = node("10.0.0.2:1", state=NodeState.SUSPECT, circuit=Circuit(3, NOW - 10.0, True))
    assert addresses(eligible(mesh(node("10.0.0.1:1"), probing), SPEECH, NOW)) == ["10.0.0.1:1"]


def test_nothing_available_lists_the_node_states() -> None:
    s = mesh(node("10.0.0.1:1", state=NodeState.DOWN, node_id="alpha"),
             node("10.0.0.2:1", state=NodeState.DRAINING, node_id="bravo"),
             node("10.0.0.3:1", state=NodeState.SUSPECT, circuit=open_circuit(NOW)),
             node("10.0.0.9:1", services={"language": svc(models=("llama",), default="llama")}, node_id="lang"))
    with pytest.raises(NoCandidate) as info:
        eligible(s, SPEECH, NOW)
    message = str(info.value)
    assert "speech" in message
    assert "alpha down" in message
    assert "bravo draining" in message
    assert "10.0.0.3:1 suspect" in message  # no id yet: the address stands in
    assert "lang" not in message


def test_eligible_does_not_change_the_state() -> None:
    s = mesh(node("10.0.0.1:1"), node("10.0.0.2:1", state=NodeState.DOWN))
    before = dict(s.nodes)
    eligible(s, SPEECH, NOW)
    assert dict(s.nodes) == before


# --- expected_wait ----------------------------------------------------------------------------------------------


def test_an_idle_single_slot_node_costs_one_request_over_its_speed() -> None:
    assert expected_wait(node("a", in_flight=0, speed=4.0), SPEECH) == pytest.approx(0.25)
    assert expected_wait(node("a", speed=4.0), SPEECH) == pytest.approx(0.25)  # no load report yet


def test_reported_work_ahead_is_spread_over_slots_and_divided_by_speed() -> None:
    n = node("a", slots=2, in_flight=3, queued=2, router_in_flight=1, speed=4.0)
    assert expected_wait(n, SPEECH) == pytest.approx((3 + 2 + 1) / 2 / 4.0)


def test_the_router_own_calls_count_when_larger_than_the_report() -> None:
    n = node("a", slots=1, in_flight=1, queued=0, router_in_flight=4, speed=2.0)
    assert expected_wait(n, SPEECH) == pytest.approx((4 + 1) / 1 / 2.0)
    no_report = node("a", slots=1, router_in_flight=2, speed=1.0)
    assert expected_wait(no_report, SPEECH) == pytest.approx(3.0)


def test_the_larger_of_report_and_router_is_taken_not_the_sum() -> None:
    n = node("a", slots=1, in_flight=3, queued=1, router_in_flight=2, speed=1.0)
    assert expected_wait(n, SPEECH) == pytest.approx(5.0)


def test_load_of_another_service_is_not_work_ahead() -> None:
    n = NodeView("a", "static", "", NodeState.UP, "", {"speech": svc(), "language": svc(models=("llama",))},
                 {"language": LoadView(7, 7)}, {("speech", "whisper-base"): 2.0})
    assert expected_wait(n, SPEECH) == pytest.approx(0.5)


def test_a_request_that_gets_a_free_slot_costs_one_unit_of_work() -> None:
    n = node("a", slots=4, in_flight=1, speed=2.0)
    assert expected_wait(n, SPEECH) == pytest.approx(1.0 / 2.0)
    full = node("a", slots=4, in_flight=4, queued=2, speed=2.0)
    assert expected_wait(full, SPEECH) == pytest.approx((6 + 1) / 4 / 2.0)


def test_a_named_model_uses_its_own_throughput() -> None:
    tp = {("speech", "whisper-base"): 8.0, ("speech", "whisper-small"): 2.0}
    n = node("a", in_flight=1, throughput=tp)
    assert expected_wait(n, Need("speech", "whisper-small")) == pytest.approx(2.0 / 2.0)
    assert expected_wait(n, Need("speech", "whisper-base")) == pytest.approx(2.0 / 8.0)
    assert expected_wait(n, SPEECH) == pytest.approx(2.0 / 8.0)  # "" is the default model


def test_the_default_model_is_the_node_s_own_default() -> None:
    n = node("a", services={"speech": svc(default="whisper-small")},
             throughput={("speech", "whisper-base"): 8.0, ("speech", "whisper-small"): 2.0})
    assert expected_wait(n, SPEECH) == pytest.approx(1.0 / 2.0)


def test_unknown_throughput_uses_unknown_speed() -> None:
    assert UNKNOWN_SPEED == 1.0
    assert expected_wait(node("a", in_flight=2), SPEECH) == pytest.approx(3.0)
    only_base = node("a", in_flight=2, speed=6.0)
    assert expected_wait(only_base, Need("speech", "whisper-small")) == pytest.approx(3.0)  # not the default's speed
    zero = node("a", in_flight=2, speed=0.0)
    assert expected_wait(zero, SPEECH) == pytest.approx(3.0)  # a zero is "not measured", not a division by zero


def test_zero_slots_does_not_divide_by_zero() -> None:
    assert expected_wait(node("a", slots=0, in_flight=2, speed=1.0), SPEECH) == pytest.approx(3.0)


# --- least_loaded -----------------------------------------------------------------------------------------------


def test_a_faster_node_with_the_same_load_ranks_first() -> None:
    slow = node("10.0.0.1:1", in_flight=1, speed=10.0)
    fast = node("10.0.0.2:1", in_flight=1, speed=20.0)
    for seed in SEEDS:
        assert addresses(least_loaded([slow, fast], SPEECH, random.Random(seed), 0)) == ["10.0.0.2:1", "10.0.0.1:1"]


def test_a_loaded_node_ranks_after_an_idle_one() -> None:
    loaded = node("10.0.0.1:1", in_flight=1, queued=1, speed=1.0)
    idle = node("10.0.0.2:1", in_flight=0, speed=1.0)
    busy_here = node("10.0.0.3:1", router_in_flight=2, speed=1.0)
    for seed in SEEDS:
        assert addresses(least_loaded([loaded, busy_here, idle], SPEECH, random.Random(seed), 0))[0] == "10.0.0.2:1"


def test_clearly_different_nodes_come_in_score_order() -> None:
    nodes = [node("10.0.0.4:1", in_flight=7), node("10.0.0.2:1", in_flight=1),
             node("10.0.0.1:1", in_flight=0), node("10.0.0.3:1", in_flight=3)]
    for seed in range(50):
        assert addresses(least_loaded(nodes, SPEECH, random.Random(seed), 0)) == [
            "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"]


def test_near_equal_picks_vary_with_the_seed_but_never_the_clearly_worse_node() -> None:
    equal = [node(f"10.0.0.{i}:1", in_flight=0, speed=5.0) for i in (1, 2, 3)]
    worse = node("10.0.0.4:1", in_flight=1, speed=5.0)  # twice the wait
    candidates = [*equal, worse]
    firsts = Counter(least_loaded(candidates, SPEECH, random.Random(seed), 0)[0].address for seed in SEEDS)
    assert set(firsts) == {"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}
    assert min(firsts.values()) >= len(SEEDS) // 6  # spread: about a third each
    for seed in SEEDS:  # the same seed, the same pick; the worse node last
        first = least_loaded(candidates, SPEECH, random.Random(seed), 0)
        assert addresses(first) == addresses(least_loaded(candidates, SPEECH, random.Random(seed), 0))
        assert first[-1].address == "10.0.0.4:1"


def test_two_near_equal_nodes_are_both_picked_over_many_seeds() -> None:
    a = node("10.0.0.1:1", in_flight=0, speed=10.0)  # wait 0.100
    b = node("10.0.0.2:1", in_flight=0, speed=9.5)  # wait 0.105: within 15% of a
    firsts = Counter(least_loaded([a, b], SPEECH, random.Random(seed), 0)[0].address for seed in SEEDS)
    assert set(firsts) == {"10.0.0.1:1", "10.0.0.2:1"}


def test_least_loaded_returns_every_candidate_once() -> None:
    candidates = [node("10.0.0.5:1", in_flight=0), node("10.0.0.1:1", in_flight=0), node("10.0.0.3:1", in_flight=2),
                  node("10.0.0.2:1", in_flight=0, speed=1.1), node("10.0.0.4:1", router_in_flight=9)]
    given = list(candidates)
    for seed in range(100):
        ranked = least_loaded(candidates, SPEECH, random.Random(seed), seed)
        assert sorted(addresses(ranked)) == sorted(addresses(given))
        assert addresses(ranked)[-2:] == ["10.0.0.3:1", "10.0.0.4:1"]
    assert candidates == given


def test_least_loaded_with_one_or_no_candidates() -> None:
    only = node("10.0.0.1:1", in_flight=5)
    assert least_loaded([only], SPEECH, random.Random(0), 0) == [only]
    assert least_loaded([], SPEECH, random.Random(0), 0) == []


# --- round_robin and random -------------------------------------------------------------------------------------


def test_round_robin_rotates_by_turn_over_address_sorted_candidates() -> None:
    candidates = [node("10.0.0.3:1"), node("10.0.0.1:1", in_flight=9), node("10.0.0.2:1")]
    rng = random.Random(0)
    assert addresses(round_robin(candidates, SPEECH, rng, 0)) == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]
    assert addresses(round_robin(candidates, SPEECH, rng, 1)) == ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.1:1"]
    assert addresses(round_robin(candidates, SPEECH, rng, 2)) == ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"]
    assert addresses(round_robin(candidates, SPEECH, rng, 3)) == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]


def test_round_robin_puts_each_node_first_exactly_once_per_n_turns() -> None:
    candidates = [node(f"10.0.0.{i}:1", in_flight=i) for i in (4, 1, 5, 2, 3)]
    for start in (0, 7, 100):
        firsts = [round_robin(candidates, SPEECH, random.Random(t), t)[0].address for t in range(start, start + 5)]
        assert sorted(firsts) == [f"10.0.0.{i}:1" for i in (1, 2, 3, 4, 5)]


def test_round_robin_ignores_the_rng_and_handles_no_candidates() -> None:
    candidates = [node("10.0.0.2:1"), node("10.0.0.1:1")]
    orders = {tuple(addresses(round_robin(candidates, SPEECH, random.Random(seed), 1))) for seed in range(20)}
    assert orders == {("10.0.0.2:1", "10.0.0.1:1")}
    assert round_robin([], SPEECH, random.Random(0), 3) == []


def test_random_choice_is_a_seeded_permutation_spread_over_nodes() -> None:
    candidates = [node(f"10.0.0.{i}:1") for i in (1, 2, 3, 4)]
    given = list(candidates)
    firsts: Counter[str] = Counter()
    for seed in SEEDS:
        order = random_choice(candidates, SPEECH, random.Random(seed), 0)
        assert sorted(addresses(order)) == sorted(addresses(given))
        assert order == random_choice(candidates, SPEECH, random.Random(seed), 0)
        firsts[order[0].address] += 1
    assert candidates == given
    assert set(firsts) == set(addresses(given))
    assert min(firsts.values()) >= len(SEEDS) // 8


# --- rank -------------------------------------------------------------------------------------------------------


def test_the_policies_by_name() -> None:
    assert POLICIES == {"least-loaded": least_loaded, "round-robin": round_robin, "random": random_choice}


def test_rank_ranks_only_eligible_nodes_with_the_named_policy() -> None:
    s = mesh(node("10.0.0.1:1", in_flight=3), node("10.0.0.2:1", in_flight=0),
             node("10.0.0.3:1", state=NodeState.DOWN), node("10.0.0.4:1", state=NodeState.DRAINING),
             node("10.0.0.5:1", in_flight=1))
    ll = rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(1), turn=0)
    assert addresses(ll) == ["10.0.0.2:1", "10.0.0.5:1", "10.0.0.1:1"]
    rr = rank(s, SPEECH, policy="round-robin", now=NOW, rng=random.Random(1), turn=1)
    assert addresses(rr) == ["10.0.0.2:1", "10.0.0.5:1", "10.0.0.1:1"]
    rr = rank(s, SPEECH, policy="round-robin", now=NOW, rng=random.Random(1), turn=2)
    assert addresses(rr) == ["10.0.0.5:1", "10.0.0.1:1", "10.0.0.2:1"]
    rnd = rank(s, SPEECH, policy="random", now=NOW, rng=random.Random(1), turn=0)
    assert sorted(addresses(rnd)) == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.5:1"]


def test_rank_includes_a_suspect_node_once_its_cool_down_is_over() -> None:
    s = mesh(node("10.0.0.1:1", in_flight=4),
             node("10.0.0.2:1", state=NodeState.SUSPECT, circuit=open_circuit(NOW)))
    early = rank(s, SPEECH, policy="least-loaded", now=NOW + 1.0, rng=random.Random(0), turn=0)
    assert addresses(early) == ["10.0.0.1:1"]
    later = rank(s, SPEECH, policy="least-loaded", now=NOW + 2.0, rng=random.Random(0), turn=0)
    assert addresses(later) == ["10.0.0.2:1", "10.0.0.1:1"]


def test_rank_raises_no_candidate_when_nothing_can_take_it() -> None:
    s = mesh(node("10.0.0.1:1", state=NodeState.DOWN))
    for policy in POLICIES:
        with pytest.raises(NoCandidate, match="unavailable"):
            rank(s, SPEECH, policy=policy, now=NOW, rng=random.Random(0), turn=0)


def test_rank_refuses_an_unknown_policy() -> None:
    with pytest.raises((KeyError, ValueError)):
        rank(mesh(node("10.0.0.1:1")), SPEECH, policy="fastest", now=NOW, rng=random.Random(0), turn=0)


def test_an_unmeasured_node_is_assumed_typical_not_starved() -> None:
    """Speech speeds are ~20 audio s/s: an unmeasured node must not be scored at 1/s."""
    speech = {"speech": ServiceView(1, 8, ("tiny.en",), "tiny.en")}
    def view(address: str, tp: float) -> NodeView:
        return NodeView(address, "static", address, NodeState.UP, services=speech,
                        throughput={("speech", "tiny.en"): tp} if tp else {})
    nodes = [view("10.0.0.1:1", 20.0), view("10.0.0.2:1", 20.0), view("10.0.0.3:1", 0.0)]
    firsts = {least_loaded(nodes, Need("speech"), random.Random(seed), 0)[0].address for seed in range(50)}
    assert "10.0.0.3:1" in firsts


# --- a full node ranks last (issue 17) ---------------------------------------------------------------------------

def test_a_full_fast_node_ranks_after_a_free_slow_one() -> None:
    """(8 in flight + 8 queued) on an 8-slot speed-8 node scores ~0.27 and would beat a free
    speed-2 node at 0.5: every attempt would go to a node that refuses it."""
    fast_full = node("10.0.0.1:1", slots=8, in_flight=8, queued=8, speed=8.0,
                     services={"speech": ServiceView(8, 8, ("whisper-base",), "whisper-base")})
    slow_free = node("10.0.0.2:1", slots=4, in_flight=0, speed=2.0,
                     services={"speech": ServiceView(4, 8, ("whisper-base",), "whisper-base")})
    assert expected_wait(fast_full, SPEECH) < expected_wait(slow_free, SPEECH)  # the score alone would pick it
    for policy in POLICIES:
        for seed in range(20):
            ranked = rank(mesh(fast_full, slow_free), SPEECH, policy=policy, now=NOW, rng=random.Random(seed),
                          turn=seed)
            assert addresses(ranked) == ["10.0.0.2:1", "10.0.0.1:1"], policy


def test_the_router_own_calls_can_fill_a_node() -> None:
    full_by_us = node("10.0.0.1:1", slots=1, in_flight=0, router_in_flight=9, speed=100.0)  # 1 slot + 8 queue
    other = node("10.0.0.2:1", slots=1, in_flight=3, speed=1.0)
    assert addresses(rank(mesh(full_by_us, other), SPEECH, policy="least-loaded", now=NOW,
                          rng=random.Random(0), turn=0)) == ["10.0.0.2:1", "10.0.0.1:1"]


def test_full_nodes_stay_candidates_in_score_order_when_every_node_is_full() -> None:
    a = node("10.0.0.1:1", slots=1, in_flight=1, queued=8, speed=1.0)
    b = node("10.0.0.2:1", slots=1, in_flight=1, queued=8, speed=4.0)
    assert addresses(rank(mesh(a, b), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0),
                          turn=0)) == ["10.0.0.2:1", "10.0.0.1:1"]


def test_a_node_that_never_said_its_limits_is_not_full() -> None:
    silent = node("10.0.0.1:1", in_flight=5, services={"speech": ServiceView(0, 0, ("whisper-base",), "whisper-base")})
    assert addresses(rank(mesh(silent), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0),
                          turn=0)) == ["10.0.0.1:1"]
    from lanai.mesh.placement import full
    assert not full(silent, SPEECH)


# --- many nodes, many routers (issue 17) ---------------------------------------------------------------------------

def office(fast_queued: int = 0, *, free_slow: bool = True) -> MeshState:
    """40 speed-1 nodes with 2 slots, 30 speed-2 with 4, 20 speed-4 with 8, 10 speed-8 with 8 (queue 8 each)."""
    nodes = []
    for i, (count, speed, slots) in enumerate(((40, 1.0, 2), (30, 2.0, 4), (20, 4.0, 8), (10, 8.0, 8))):
        for j in range(count):
            view = ServiceView(slots, 8, ("whisper-base",), "whisper-base")
            queued = fast_queued if speed == 8.0 else (0 if free_slow else 8)
            busy = slots if queued else 0
            nodes.append(node(f"10.{i}.0.{j}:1", services={"speech": view}, in_flight=busy, queued=queued,
                              speed=speed))
    return mesh(*nodes)


def test_least_loaded_scores_a_sample_of_a_large_mesh() -> None:
    from lanai.mesh.placement import SAMPLE

    s = office()
    for seed in range(50):
        ranked = rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(seed), turn=seed)
        assert 1 <= len(ranked) <= SAMPLE
        waits = [expected_wait(n, SPEECH) for n in ranked]
        assert waits == sorted(waits) or len(ranked) >= 2  # best first (near-equals may swap the top two)
        assert waits[0] <= min(waits) * 1.15
    same = [addresses(rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(3), turn=0)) for _ in range(2)]
    assert same[0] == same[1]  # the injected RNG decides


def test_draws_favour_capacity_so_slow_nodes_are_rarely_first() -> None:
    s = office()
    first = Counter(addresses(rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(seed), turn=0))[0]
                    .split(".")[1] for seed in range(2000))
    # capacity shares: speed 1 5%, 2 15%, 4 40%, 8 40%; the best of three draws is fast nearly always
    assert first["0"] / 2000 < 0.01
    assert (first["2"] + first["3"]) / 2000 > 0.9


def test_sampled_picks_skip_excluded_full_and_circuit_open_nodes() -> None:
    s = office(fast_queued=8)  # every speed-8 node full
    tripped = {a: dataclasses.replace(n, circuit=open_circuit(NOW - 1)) for a, n in s.nodes.items()
               if a.startswith("10.2.")}  # every speed-4 node just failed
    s = MeshState({**s.nodes, **tripped})
    excluded = {f"10.1.0.{j}:1" for j in range(10)}
    from lanai.mesh.placement import full

    for seed in range(200):
        ranked = rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(seed), turn=0, exclude=excluded)
        assert not full(ranked[0], SPEECH)
        assert not any(n.address in excluded or n.address.startswith("10.2.") for n in ranked)
        fulls = [full(n, SPEECH) for n in ranked]
        assert fulls == sorted(fulls)  # (when the whole mesh was ranked) full nodes only after every node with room


def test_when_every_drawn_node_is_full_the_whole_mesh_is_looked_at() -> None:
    s = office(fast_queued=8, free_slow=False)  # everything full but one slow node
    lone = "10.0.0.17:1"
    s = MeshState({**s.nodes, lone: node(lone, services={"speech": ServiceView(2, 8, ("whisper-base",), "whisper-base")},
                                         in_flight=0, speed=1.0)})
    for seed in range(20):
        ranked = rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(seed), turn=0)
        assert ranked[0].address == lone  # drawn, or found by ranking the whole mesh


def test_routers_sharing_one_stale_view_spread_instead_of_herding() -> None:
    """Ten routers hold the same report: one node looks clearly best (speed 2 against 1.5, more
    than NEAR_EQUAL apart). Ranking every node would send all ten calls there at once; drawing
    three in proportion to capacity sends most routers elsewhere."""
    best = node("10.9.0.1:1", slots=4, in_flight=0, speed=2.0)
    rest = [node(f"10.9.1.{j}:1", slots=4, in_flight=0, speed=1.5) for j in range(19)]
    s = mesh(best, *rest)
    picks = [rank(s, SPEECH, policy="least-loaded", now=NOW, rng=random.Random(router), turn=0)[0].address
             for router in range(10)]
    assert picks.count(best.address) <= 4
    assert len(set(picks)) >= 5
    everyone = [least_loaded(list(s.nodes.values()), SPEECH, random.Random(router), 0)[0].address
                for router in range(10)]
    assert everyone == [best.address] * 10  # what ranking the whole mesh would have done


def test_a_small_mesh_is_ranked_whole() -> None:
    a, b, c = (node(f"10.0.0.{i}:1", in_flight=0, speed=float(i)) for i in (1, 2, 3))
    ranked = rank(mesh(a, b, c), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0), turn=0)
    assert addresses(ranked) == ["10.0.0.3:1", "10.0.0.2:1", "10.0.0.1:1"]
    assert addresses(rank(mesh(a, b, c), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0), turn=0,
                          exclude={"10.0.0.3:1"})) == ["10.0.0.2:1", "10.0.0.1:1"]


def test_calls_sent_since_the_report_count_as_work_ahead() -> None:
    from lanai.mesh.placement import ahead, full

    n = dataclasses.replace(node("10.0.0.1:1", slots=1, in_flight=1, queued=5, router_in_flight=2), sent_since_report=3)
    assert ahead(n, SPEECH) == 9 and full(n, SPEECH)  # 1 + 5 reported, 3 sent since: 1 slot + 8 queue
    assert expected_wait(dataclasses.replace(n, sent_since_report=0), SPEECH) < expected_wait(n, SPEECH)


def test_a_node_within_headroom_of_full_ranks_after_one_with_more_room() -> None:
    from lanai.mesh.placement import HEADROOM, crowded, full

    view = ServiceView(8, 8, ("whisper-base",), "whisper-base")
    last_place = node("10.0.0.1:1", services={"speech": view}, in_flight=8, queued=7, speed=8.0)  # 1 of 16 left
    roomy = node("10.0.0.2:1", services={"speech": view}, in_flight=0, speed=2.0)
    assert HEADROOM >= 2 and crowded(last_place, SPEECH) and not full(last_place, SPEECH)
    for seed in range(10):
        assert addresses(rank(mesh(last_place, roomy), SPEECH, policy="least-loaded", now=NOW,
                              rng=random.Random(seed), turn=0)) == ["10.0.0.2:1", "10.0.0.1:1"]
    assert addresses(rank(mesh(last_place, roomy), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0),
                          turn=0, headroom=0)) == ["10.0.0.1:1", "10.0.0.2:1"]  # by score alone
    assert addresses(rank(mesh(last_place), SPEECH, policy="least-loaded", now=NOW, rng=random.Random(0),
                          turn=0)) == ["10.0.0.1:1"]  # still a candidate: its last place is not refused


def test_headroom_takes_queue_places_only() -> None:
    from lanai.mesh.placement import crowded

    def with_queue(queue: int, held: int) -> NodeView:
        return node("10.0.0.1:1", services={"speech": ServiceView(1, queue, ("whisper-base",), "whisper-base")},
                    in_flight=min(held, 1), queued=max(0, held - 1))

    assert not crowded(with_queue(0, 0), SPEECH) and crowded(with_queue(0, 1), SPEECH)  # no queue: no spare
    assert not crowded(with_queue(1, 0), SPEECH) and crowded(with_queue(1, 1), SPEECH)  # its one queue place
    assert not crowded(with_queue(4, 2), SPEECH) and crowded(with_queue(4, 3), SPEECH)  # 2 of 5 left: spare 2


def test_a_full_node_ranks_after_a_crowded_one() -> None:
    """Crowded (its last places kept for other routers) is not full: when every node is at least
    crowded, the call goes to one with a place left, never to one that must refuse it."""
    queue1 = {"speech": ServiceView(1, 1, ("whisper-base",), "whisper-base")}
    full_fast = node("10.0.0.1:1", services=queue1, in_flight=1, queued=1, speed=8.0)
    crowded_slow = node("10.0.0.2:1", services=queue1, in_flight=1, queued=0, speed=1.0)
    roomy_slower = node("10.0.0.3:1", services=queue1, in_flight=0, speed=0.5)
    for policy in POLICIES:
        for seed in range(10):
            assert addresses(rank(mesh(full_fast, crowded_slow, roomy_slower), SPEECH, policy=policy, now=NOW,
                                  rng=random.Random(seed), turn=seed)) == ["10.0.0.3:1", "10.0.0.2:1", "10.0.0.1:1"]
            assert addresses(rank(mesh(full_fast, crowded_slow), SPEECH, policy=policy, now=NOW,
                                  rng=random.Random(seed), turn=seed)) == ["10.0.0.2:1", "10.0.0.1:1"]
