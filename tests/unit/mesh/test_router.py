"""lanai.mesh.router.Router: discovery, node reports, placement and the circuit breaker, driven
through the router's event seams (found/gone, _described/_loaded/_lost, _started/_finished) with
an injected clock and a seeded rng. No node is dialled except in the last tests, which watch an
in-process Node server; other addresses are 127.0.0.1 ports nobody listens on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.circuit import COOLDOWN_S, FAILURES_TO_OPEN
from lanai.mesh.placement import NoCandidate, Need
from lanai.mesh.router import Router, RouterConfig
from lanai.mesh.state import LoadView, NodeState, ServiceView

on_loop = pytest.mark.asyncio(loop_scope="session")

T0 = 1000.0
SPEECH = Need("speech")
_ids = itertools.count()


def dead_addresses(n: int) -> list[str]:
    """Loopback ports that were free a moment ago (bound, then released): nothing answers there."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]
    finally:
        for s in socks:
            s.close()


A, B, C = dead_addresses(3)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = T0) -> None:
        self.now = [start]

    def __call__(self) -> float:
        return self.now[0]

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


@contextlib.asynccontextmanager
async def routing(config: RouterConfig = RouterConfig(), seed: int = 7) -> AsyncIterator[tuple[Router, Clock]]:
    clock = Clock()
    router = Router(f"unit-test-router-{next(_ids)}", config, trust=None, clock=clock, rng=random.Random(seed))
    try:
        yield router, clock
    finally:
        await router.close()


def describe(node_id: str, *, slots: int = 2, metrics_port: int = 0,
             models: dict[str, float] | None = None, services: tuple[str, ...] = ("speech",)
             ) -> mesh_pb2.DescribeResponse:
    models = {"whisper-base": 0.0, "whisper-small": 0.0} if models is None else models
    return mesh_pb2.DescribeResponse(node_id=node_id, metrics_port=metrics_port, services=[
        mesh_pb2.ServiceInfo(name=name, slots=slots, max_queue=4, models=[
            mesh_pb2.ModelInfo(name=m, is_default=i == 0, throughput=mesh_pb2.Throughput(value=v))
            for i, (m, v) in enumerate(models.items())]) for name in services])


def report(*, in_flight: int = 0, queued: int = 0, draining: bool = False,
           services: tuple[str, ...] = ("speech",)) -> mesh_pb2.LoadReport:
    return mesh_pb2.LoadReport(draining=draining, services=[
        mesh_pb2.ServiceLoad(service=name, in_flight=in_flight, queued=queued) for name in services])


def bring_up(router: Router, address: str, node_id: str, *, source: str = "static", in_flight: int = 0,
             **described: Any) -> None:
    """Discovered, described and reporting load: what a watcher does for a healthy node."""
    router.found(address, source, node_id=node_id)
    router._described(address, describe(node_id, **described))
    router._loaded(address, report(in_flight=in_flight))


def unavailable(details: str = "connection refused") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def fail(router: Router, address: str, times: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
    for _ in range(times):
        router._started(address)
        router._finished(address, "speech", grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "x"))


def addresses(router: Router, need: Need = SPEECH, tried: set[str] | None = None, turn: int = 0) -> list[str]:
    return [n.address for n in router._candidates(need, tried or set(), turn)]


# --- construction and discovery -----------------------------------------------------------------------------------


def test_an_unknown_policy_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown placement policy 'fastest'; choose from least-loaded, round-robin"):
        Router("unit-test-bad-policy", RouterConfig(policy="fastest"), trust=None)


def test_the_default_config_is_as_documented() -> None:
    c = RouterConfig()
    assert (c.policy, c.heartbeat_ms, c.max_attempts) == ("least-loaded", 500, 8)
    assert "127.0.0.0/8" in c.allow and "192.168.0.0/16" in c.allow


@on_loop
async def test_a_found_node_is_down_and_connecting_since_the_clock_reading() -> None:
    async with routing() as (router, clock):
        clock.advance(5.0)
        router.found(A, "mdns", node_id="gpu-1")
        node = router.state.nodes[A]
        assert (node.address, node.source, node.node_id) == (A, "mdns", "gpu-1")
        assert node.state is NodeState.DOWN and node.reason == "discovered; connecting"
        assert node.since == T0 + 5.0
        assert router._states() == {"down": 1}


@on_loop
async def test_finding_a_known_node_again_changes_nothing() -> None:
    async with routing() as (router, clock):
        bring_up(router, A, "gpu-1")
        before = router.state.nodes[A]
        clock.advance(3.0)
        router.found(A, "dns", node_id="other")
        assert router.state.nodes[A] is before
        assert sum(1 for t in asyncio.all_tasks() if t.get_name() == f"watch {A}") == 1


@on_loop
async def test_a_node_outside_the_premises_is_refused_and_never_watched() -> None:
    async with routing() as (router, _):
        router.found("8.8.8.8:50051", "dns", node_id="cloud")
        node = router.state.nodes["8.8.8.8:50051"]
        assert node.state is NodeState.REFUSED
        assert "premises" in node.reason
        assert not any(t.get_name() == "watch 8.8.8.8:50051" for t in asyncio.all_tasks())
        router._described("8.8.8.8:50051", describe("cloud"))
        router._loaded("8.8.8.8:50051", report())
        assert router.state.nodes["8.8.8.8:50051"].state is NodeState.REFUSED  # no report changes that
        with pytest.raises(NoCandidate, match="no node on the mesh serves speech"):
            router._candidates(SPEECH, set(), 0)


@on_loop
async def test_an_insecure_router_takes_a_node_announcing_a_mesh_as_foreign() -> None:
    async with routing() as (router, _):
        router.found(A, "mdns", node_id="gpu-1", mesh="abc123")
        node = router.state.nodes[A]
        assert node.state is NodeState.FOREIGN
        assert "announces mesh abc123" in node.reason and "--insecure" in node.reason
        assert not any(t.get_name() == f"watch {A}" for t in asyncio.all_tasks())


@on_loop
async def test_gone_forgets_the_node_and_stops_its_watcher() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "gpu-1")
        bring_up(router, B, "gpu-2")
        watcher = next(t for t in asyncio.all_tasks() if t.get_name() == f"watch {A}")
        router.gone(A)
        assert set(router.state.nodes) == {B}
        assert addresses(router) == [B]
        await asyncio.wait([watcher], timeout=5)
        assert watcher.cancelled()
        router.gone("127.0.0.1:9")  # an unknown node: nothing to do
        assert set(router.state.nodes) == {B}


@on_loop
async def test_close_stops_every_watcher() -> None:
    async with routing() as (router, _):
        router.found(A, "static")
        router.found(B, "static")
        watchers = [t for t in asyncio.all_tasks() if t.get_name() in (f"watch {A}", f"watch {B}")]
        assert len(watchers) == 2
        await router.close()
        assert all(t.done() for t in watchers)


# --- reports feed the state ---------------------------------------------------------------------------------------


@on_loop
async def test_a_described_node_knows_its_services_but_takes_no_work_before_a_load_report() -> None:
    async with routing() as (router, _):
        router.found(A, "static")
        d = describe("gpu-1", slots=3, models={"whisper-base": 5.0, "whisper-small": 0.0})
        router._described(A, d)
        node = router.state.nodes[A]
        assert node.node_id == "gpu-1" and node.state is NodeState.DOWN
        assert node.services == {"speech": ServiceView(3, 4, ("whisper-base", "whisper-small"), "whisper-base")}
        assert node.throughput == {("speech", "whisper-base"): 5.0}  # unmeasured (0) models are left out
        assert node.description is d
        with pytest.raises(NoCandidate, match=r"every node serving speech is unavailable right now \(gpu-1 down\)"):
            router._candidates(SPEECH, set(), 0)


@on_loop
async def test_a_load_report_brings_the_node_up_with_its_load_since_the_clock_reading() -> None:
    async with routing() as (router, clock):
        router.found(A, "static")
        router._described(A, describe("gpu-1"))
        clock.advance(2.5)
        r = report(in_flight=1, queued=2)
        router._loaded(A, r)
        node = router.state.nodes[A]
        assert node.state is NodeState.UP and node.reason == ""
        assert node.load == {"speech": LoadView(1, 2, 0)}
        assert node.since == T0 + 2.5 and node.last_load is r
        clock.advance(1.0)
        router._loaded(A, report(in_flight=0))
        assert router.state.nodes[A].since == T0 + 2.5  # still up: the state did not change
        assert router.state.nodes[A].load == {"speech": LoadView(0, 0, 0)}


@on_loop
async def test_reports_for_an_unknown_node_are_ignored() -> None:
    async with routing() as (router, _):
        router._described(A, describe("ghost"))
        router._loaded(A, report())
        router._lost(A, "whatever")
        assert router.state.nodes == {}


@on_loop
async def test_a_lost_node_is_down_without_load_and_comes_back_with_the_next_report() -> None:
    async with routing() as (router, clock):
        bring_up(router, A, "gpu-1", in_flight=1)
        clock.advance(4.0)
        router._lost(A, "load stream ended: the node is shutting down")
        node = router.state.nodes[A]
        assert node.state is NodeState.DOWN and node.reason == "load stream ended: the node is shutting down"
        assert node.load == {} and node.since == T0 + 4.0
        assert "speech" in node.services  # still known: it is re-admitted by its next report
        with pytest.raises(NoCandidate):
            router._candidates(SPEECH, set(), 0)
        router._loaded(A, report())
        assert router.state.nodes[A].state is NodeState.UP
        assert addresses(router) == [A]


# --- placement ----------------------------------------------------------------------------------------------------


@on_loop
async def test_candidates_rank_the_least_loaded_first_and_skip_tried_nodes() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "busy", in_flight=6)
        bring_up(router, B, "idle", in_flight=0)
        bring_up(router, C, "vision-only", services=("vision",))
        assert addresses(router) == [B, A]
        assert addresses(router, tried={B}) == [A]
        assert addresses(router, tried={A, B}) == []


@on_loop
async def test_candidates_prefer_the_faster_node_at_equal_load() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "slow", models={"whisper-base": 1.0})
        bring_up(router, B, "fast", models={"whisper-base": 10.0})
        assert addresses(router) == [B, A]


@on_loop
async def test_among_equals_the_node_with_fewer_of_this_routers_calls_goes_first() -> None:
    for seed in range(5):  # whatever the rng picks, the tie is broken by this router's in-flight calls
        async with routing(seed=seed) as (router, _):
            bring_up(router, A, "one", slots=4)
            bring_up(router, B, "two", slots=4)
            router._started(A)
            assert router.state.nodes[A].router_in_flight == 1
            assert addresses(router)[0] == B


@on_loop
async def test_a_seeded_rng_makes_the_order_among_equals_repeatable() -> None:
    orders = []
    for _ in range(2):
        async with routing(seed=42) as (router, _):
            bring_up(router, A, "one")
            bring_up(router, B, "two")
            bring_up(router, C, "three")
            orders.append([addresses(router, turn=t)[0] for t in range(20)])
    assert orders[0] == orders[1]
    assert set(orders[0]) == {A, B, C}  # and among equals, every node gets its turn first


@on_loop
async def test_round_robin_rotates_with_the_turn() -> None:
    async with routing(RouterConfig(policy="round-robin")) as (router, _):
        for address, name in ((A, "a"), (B, "b"), (C, "c")):
            bring_up(router, address, name)
        first = sorted([A, B, C])
        assert addresses(router, turn=0) == first
        assert addresses(router, turn=1) == first[1:] + first[:1]
        assert addresses(router, turn=3) == first
        assert addresses(router, tried={first[1]}, turn=1) == [first[2], first[0]]


@on_loop
async def test_a_model_is_served_only_by_nodes_that_have_it() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "base-only", models={"whisper-base": 0.0})
        bring_up(router, B, "both", models={"whisper-base": 0.0, "whisper-large": 0.0})
        assert addresses(router, Need("speech", "whisper-large")) == [B]
        with pytest.raises(NoCandidate, match="no node on the mesh serves speech model .*tiny.*"
                                              "models on the mesh: whisper-base, whisper-large"):
            router._candidates(Need("speech", "tiny"), set(), 0)
        with pytest.raises(NoCandidate, match="no node on the mesh serves vision"):
            router._candidates(Need("vision"), set(), 0)


@on_loop
async def test_a_draining_node_is_no_candidate_until_it_reports_otherwise() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "leaving")
        bring_up(router, B, "staying", in_flight=6)
        router._loaded(A, report(draining=True))
        node = router.state.nodes[A]
        assert node.state is NodeState.DRAINING and node.reason == "shutting down"
        assert addresses(router) == [B]  # even though B is far busier
        router._loaded(B, report(draining=True))
        with pytest.raises(NoCandidate, match=r"unavailable right now \(leaving draining, staying draining\)"):
            router._candidates(SPEECH, set(), 0)
        router._loaded(A, report(draining=False))
        assert addresses(router) == [A]


# --- the circuit breaker, on the injected clock -------------------------------------------------------------------


@on_loop
async def test_unavailable_calls_trip_the_circuit_at_the_threshold() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "flaky")
        bring_up(router, B, "steady", in_flight=6)
        fail(router, A, FAILURES_TO_OPEN - 1)
        node = router.state.nodes[A]
        assert node.state is NodeState.UP and node.circuit.failures == FAILURES_TO_OPEN - 1
        assert addresses(router) == [A, B]
        fail(router, A, 1)
        node = router.state.nodes[A]
        assert node.state is NodeState.SUSPECT and node.circuit.is_open()
        assert node.reason == f"{FAILURES_TO_OPEN} failed calls in a row"
        assert node.router_in_flight == 0
        assert addresses(router) == [B]


@on_loop
async def test_a_tripped_node_is_probed_after_the_cooldown_and_a_success_closes_it() -> None:
    async with routing() as (router, clock):
        bring_up(router, A, "flaky")
        fail(router, A, FAILURES_TO_OPEN)
        with pytest.raises(NoCandidate, match=r"flaky suspect"):
            router._candidates(SPEECH, set(), 0)
        clock.advance(COOLDOWN_S - 0.01)
        with pytest.raises(NoCandidate):
            router._candidates(SPEECH, set(), 0)
        clock.advance(0.01)
        assert addresses(router) == [A]  # half-open: one probe may go
        router._started(A)
        assert router.state.nodes[A].circuit.probing
        with pytest.raises(NoCandidate):  # only one probe at a time
            router._candidates(SPEECH, set(), 0)
        router._finished(A, "speech", None)
        node = router.state.nodes[A]
        assert node.state is NodeState.UP and not node.circuit.is_open() and node.circuit.failures == 0
        assert addresses(router) == [A]


@on_loop
async def test_a_failed_probe_opens_the_circuit_for_a_full_cooldown_again() -> None:
    async with routing() as (router, clock):
        bring_up(router, A, "flaky")
        fail(router, A, FAILURES_TO_OPEN)
        clock.advance(COOLDOWN_S)
        fail(router, A, 1)  # the probe fails
        node = router.state.nodes[A]
        assert node.state is NodeState.SUSPECT and node.circuit.opened_at == T0 + COOLDOWN_S
        clock.advance(COOLDOWN_S / 2)
        with pytest.raises(NoCandidate):
            router._candidates(SPEECH, set(), 0)
        clock.advance(COOLDOWN_S / 2)
        assert addresses(router) == [A]


@on_loop
async def test_other_errors_are_not_the_nodes_failure() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "full")
        fail(router, A, FAILURES_TO_OPEN + 2, grpc.StatusCode.RESOURCE_EXHAUSTED)
        fail(router, A, FAILURES_TO_OPEN + 2, grpc.StatusCode.INVALID_ARGUMENT)
        node = router.state.nodes[A]
        assert node.state is NodeState.UP and node.circuit.failures == 0 and not node.circuit.is_open()
        fail(router, A, FAILURES_TO_OPEN - 1)
        router._started(A)
        router._finished(A, "speech", None)  # a success between failures resets the count
        fail(router, A, FAILURES_TO_OPEN - 1)
        assert router.state.nodes[A].state is NodeState.UP


@on_loop
async def test_a_load_report_does_not_clear_an_open_circuit() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "flaky")
        fail(router, A, FAILURES_TO_OPEN)
        router._loaded(A, report())
        assert router.state.nodes[A].state is NodeState.SUSPECT


@on_loop
async def test_a_trip_is_counted_once_per_opening() -> None:
    async with routing() as (router, clock):
        node_id = f"trip-{next(_ids)}"
        bring_up(router, A, node_id)

        def trips() -> float:
            return REGISTRY.get_sample_value("lanai_router_circuit_trips_total", {"node": node_id}) or 0.0

        fail(router, A, FAILURES_TO_OPEN)
        assert trips() == 1.0
        clock.advance(COOLDOWN_S)
        fail(router, A, 1)  # already open: a failed probe is not a new trip
        assert trips() == 1.0
        attempts = REGISTRY.get_sample_value("lanai_router_attempts_total",
                                             {"service": "speech", "node": node_id, "code": "UNAVAILABLE"})
        assert attempts == FAILURES_TO_OPEN + 1


@on_loop
async def test_calls_started_and_finished_are_counted_in_flight() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "gpu-1")
        router._started(A)
        router._started(A)
        assert router.state.nodes[A].router_in_flight == 2
        router._finished(A, "speech", None)
        assert router.state.nodes[A].router_in_flight == 1
        router._finished(A, "speech", unavailable())
        router._finished(A, "speech", None)  # more finishes than starts never go negative
        assert router.state.nodes[A].router_in_flight == 0
        router._finished("127.0.0.1:9", "speech", unavailable())  # an unknown node: nothing to count
        assert set(router.state.nodes) == {A}


# --- observability ------------------------------------------------------------------------------------------------


@on_loop
async def test_states_count_nodes_by_state_and_feed_the_mesh_gauge() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "up")
        bring_up(router, B, "draining")
        router._loaded(B, report(draining=True))
        router.found(C, "static")
        router.found("8.8.8.8:1", "dns")
        router.found("8.8.4.4:1", "dns")
        assert router._states() == {"up": 1, "draining": 1, "down": 1, "refused": 2}

        def gauge(state: str) -> float | None:
            return REGISTRY.get_sample_value("lanai_mesh_nodes", {"node": router.router_id, "state": state})

        assert (gauge("up"), gauge("draining"), gauge("down"), gauge("refused"), gauge("suspect")) == \
               (1.0, 1.0, 1.0, 2.0, 0.0)
        await router.close()
        assert gauge("up") is None  # a closed router is no longer reported


@on_loop
async def test_sd_targets_list_reachable_nodes_metrics_ports() -> None:
    async with routing() as (router, _):
        bring_up(router, B, "gpu-2", metrics_port=9102, services=("vision", "speech"))
        bring_up(router, A, "gpu-1", metrics_port=9101)
        bring_up(router, C, "no-metrics", metrics_port=0)
        router.found("127.0.0.2:50051", "static")  # never described
        bring_up(router, "127.0.0.3:50051", "lost", metrics_port=9103)
        router._lost("127.0.0.3:50051", "gone")
        router.found("8.8.8.8:50051", "dns")
        router.metrics_port = 9000  # no local node here: the router lists its own /metrics too
        gpu1 = {"targets": ["127.0.0.1:9101"], "labels": {"lanai_node": "gpu-1", "lanai_services": "speech",
                                                        "lanai_role": "node"}}
        gpu2 = {"targets": ["127.0.0.1:9102"], "labels": {"lanai_node": "gpu-2", "lanai_services": "speech,vision",
                                                        "lanai_role": "node"}}
        me = {"targets": ["router.lan:9000"], "labels": {"lanai_node": router.router_id, "lanai_services": "",
                                                        "lanai_role": "router"}}
        by_address = [gpu1, gpu2] if A < B else [gpu2, gpu1]
        assert router.sd_targets("router.lan") == [*by_address, me]


@on_loop
async def test_sd_targets_reach_a_local_node_by_the_scrapers_host_and_skip_the_router() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "me", source="local", metrics_port=9100)
        router.metrics_port = 9000
        assert router.sd_targets("box.lan") == [
            {"targets": ["box.lan:9100"], "labels": {"lanai_node": "me", "lanai_services": "speech",
                                                     "lanai_role": "node"}}]
        assert router.sd_targets("")[0]["targets"] == [f"{A.rsplit(':', 1)[0]}:9100"]


@on_loop
async def test_sd_targets_without_a_metrics_port_or_host_list_no_router() -> None:
    async with routing() as (router, _):
        assert router.sd_targets("box.lan") == []
        router.metrics_port = 9000
        assert router.sd_targets("") == []
        assert router.sd_targets("box.lan") == [{"targets": ["box.lan:9000"], "labels": {
            "lanai_node": router.router_id, "lanai_services": "", "lanai_role": "router"}}]


# --- waiting for a node -------------------------------------------------------------------------------------------


@on_loop
async def test_wait_until_up_returns_once_the_node_reports_load() -> None:
    async with routing() as (router, _):
        router.found(A, "static")
        waiting = asyncio.create_task(router.wait_until_up(A, 10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        router._described(A, describe("gpu-1"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # described is not up
        router._loaded(A, report())
        await asyncio.wait_for(waiting, 2)


@on_loop
async def test_wait_until_up_times_out_on_the_routers_clock_with_the_reason() -> None:
    async with routing() as (router, clock):
        router.found(A, "static")
        router._lost(A, "unreachable: connection refused")
        waiting = asyncio.create_task(router.wait_until_up(A, 10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        clock.advance(10.5)
        with pytest.raises(TimeoutError, match=f"node at {A} did not come up within 10 s: "
                                               "unreachable: connection refused"):
            await asyncio.wait_for(waiting, 2)
        with pytest.raises(TimeoutError, match="not discovered"):
            await asyncio.wait_for(router.wait_until_up(B, -1), 2)


# --- with a real node ---------------------------------------------------------------------------------------------


class FakeNode(mesh_pb2_grpc.NodeServicer):
    """Describes itself and reports load every heartbeat until the server stops."""

    def __init__(self) -> None:
        self.heartbeats: list[int] = []

    async def Describe(self, request: Any, context: Any) -> mesh_pb2.DescribeResponse:
        return describe("real-1", metrics_port=9200)

    async def WatchLoad(self, request: Any, context: Any) -> AsyncIterator[mesh_pb2.LoadReport]:
        self.heartbeats.append(request.heartbeat_ms)
        while True:
            yield report(in_flight=1)
            await asyncio.sleep(request.heartbeat_ms / 1000)


@on_loop
async def test_a_found_node_is_watched_up_and_marked_down_when_it_goes_away() -> None:
    node = FakeNode()
    server = grpc.aio.server()
    mesh_pb2_grpc.add_NodeServicer_to_server(node, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        async with routing(RouterConfig(heartbeat_ms=100)) as (router, _):
            router.found(address, "static")
            async with asyncio.timeout(5):  # the router's clock is frozen: wait on the loop's
                await router.wait_until_up(address, 5)
            up = router.state.nodes[address]
            assert up.node_id == "real-1" and up.load == {"speech": LoadView(1, 0, 0)}
            assert node.heartbeats == [100]
            assert addresses(router) == [address]
            await server.stop(None)
            async with asyncio.timeout(5):
                while router.state.nodes[address].state is not NodeState.DOWN:
                    await asyncio.sleep(0.01)
            assert router.state.nodes[address].reason.startswith("unreachable: UNAVAILABLE")
            with pytest.raises(NoCandidate):
                router._candidates(SPEECH, set(), 0)
    finally:
        await server.stop(None)


@on_loop
async def test_a_refusal_makes_the_router_believe_the_node_full_until_its_next_report() -> None:
    async with routing() as (router, _):
        bring_up(router, A, "fast", models={"whisper-base": 10.0})
        bring_up(router, B, "slow", models={"whisper-base": 1.0})
        assert addresses(router) == [A, B]
        fail(router, A, 1, grpc.StatusCode.RESOURCE_EXHAUSTED)  # its last report said it had room
        assert addresses(router) == [B, A]
        assert router.state.nodes[A].state is NodeState.UP  # full is not failed
        router._loaded(A, report(in_flight=1))
        assert addresses(router) == [A, B]
