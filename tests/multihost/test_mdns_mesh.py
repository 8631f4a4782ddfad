"""A router and speech nodes on separate "hosts" (network namespaces on one bridge) that find each
other over mDNS with no configuration: placement over both, losing a node to SIGKILL without
failing a request, and the premises allow-list keeping a node out."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2

from .conftest import Mesh, RouterClient, Topology, wait_for

pytestmark = pytest.mark.multihost


def says_lazy_dog(text: str) -> bool:
    return "lazy dog" in text.lower()


def test_mdns_finds_both_nodes_and_requests_land_on_both(mesh: Mesh, client: RouterClient, topology: Topology,
                                                         fox_wav: bytes) -> None:
    router, a, b = mesh.router(), mesh.node("a", "nodeA"), mesh.node("b", "nodeB")
    mesh.ready(router, a, b)
    started = time.monotonic()
    client.wait_up("nodeA", "nodeB", timeout=30)
    print(f"\nboth nodes UP in ListNodes {time.monotonic() - started:.2f} s after all three were ready")

    nodes = {n.node_id: n for n in client.list_nodes()}
    assert set(nodes) == {"nodeA", "nodeB"}
    for key, node_id in (("a", "nodeA"), ("b", "nodeB")):
        assert nodes[node_id].address == topology.grpc_address(key)
        assert nodes[node_id].discovered_by == "mdns"
    # mDNS is joined on the bridge side only, never on the uplink the test reaches the router by.
    assert "224.0.0.251" in topology.run_in("r", ["ip", "maddr", "show", "dev", "mesh0"]).stdout
    assert "224.0.0.251" not in topology.run_in("r", ["ip", "maddr", "show", "dev", "up0"]).stdout

    responses = client.transcribe_rounds(fox_wav, rounds=3, concurrent=6)
    served = Counter(r.served_by.node_id for r in responses)
    print(f"served: {dict(served)}")
    assert all(says_lazy_dog(r.text) for r in responses), [r.text for r in responses]
    assert served["nodeA"] > 0 and served["nodeB"] > 0 and sum(served.values()) == 18, served


@dataclass(frozen=True)
class Outcome:
    at: float
    node_id: str = ""
    text: str = ""
    error: str = ""


class RequestLoop:
    """Unary Transcribe calls back to back on `concurrency` threads until stopped."""

    def __init__(self, client: RouterClient, wav: bytes, concurrency: int = 2, timeout: float = 60) -> None:
        self._client, self._wav, self._timeout = client, wav, timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._pending: dict[int, float] = {}  # thread -> when its call started
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]

    def __enter__(self) -> RequestLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout + 30)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            with self._lock:
                self._pending[me] = time.monotonic()
            try:
                response = self._client.transcribe_future(self._wav, timeout=self._timeout).result()
                outcome = Outcome(time.monotonic(), response.served_by.node_id, response.text)
            except grpc.RpcError as error:
                outcome = Outcome(time.monotonic(), error=f"{error.code().name}: {error.details()}")  # type: ignore[attr-defined]
            with self._lock:
                del self._pending[me]
                self._outcomes.append(outcome)

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        with self._lock:
            return [o for o in self._outcomes if o.at >= since]

    def served(self, since: float = 0.0) -> Counter[str]:
        return Counter(o.node_id for o in self.outcomes(since) if not o.error)

    def pending_since(self, before: float) -> list[float]:
        """Start times of calls still running that started before `before`."""
        with self._lock:
            return [t for t in self._pending.values() if t < before]


def _in_flight_on(client: RouterClient, node_id: str) -> bool:
    return any(n.node_id == node_id and n.router_in_flight > 0 for n in client.list_nodes())


def _when_busy(client: RouterClient, node_id: str) -> bool:
    """Wait (a little) for the router to have a call in flight on the node; whether it did."""
    try:
        wait_for(lambda: _in_flight_on(client, node_id), timeout=10, interval=0.02,
                 what=f"a request in flight on {node_id}")
        return True
    except AssertionError:
        return False


def _wait_gone(client: RouterClient, node_id: str, since: float) -> float:
    """Seconds from `since` until ListNodes (default request) no longer lists the node."""
    wait_for(lambda: all(n.node_id != node_id for n in client.list_nodes()), timeout=15, interval=0.05,
             what=f"{node_id} gone from ListNodes")
    return time.monotonic() - since


def test_sigkilled_node_costs_no_request_and_rejoins_on_restart(mesh: Mesh, client: RouterClient,
                                                                 fox_wav: bytes) -> None:
    router, a, b = mesh.router(), mesh.node("a", "nodeA"), mesh.node("b", "nodeB")
    mesh.ready(router, a, b)
    client.wait_up("nodeA", "nodeB", timeout=30)

    with RequestLoop(client, fox_wav, concurrency=2) as loop:
        wait_for(lambda: loop.served()["nodeA"] and loop.served()["nodeB"], timeout=60,
                 what="requests served by both nodes")
        busy = _when_busy(client, "nodeB")  # kill it mid-request: the router has a call to retry elsewhere
        b.kill()
        killed = time.monotonic()
        gone_after = _wait_gone(client, "nodeB", killed)
        down = {n.node_id: n for n in client.list_nodes(include_down=True)}
        print(f"\nnodeB (killed {'with' if busy else 'without'} a request in flight) left ListNodes "
              f"{gone_after:.3f} s after SIGKILL; include_down: "
              f"{mesh_pb2.NodeState.Name(down['nodeB'].state) if 'nodeB' in down else 'absent'} "
              f"({down['nodeB'].state_reason if 'nodeB' in down else ''})")
        assert gone_after <= 3.0, f"nodeB still listed {gone_after:.2f} s after SIGKILL"
        wait_for(lambda: len(loop.outcomes(since=killed)) >= 4, timeout=60, what="requests after the kill")

        b2 = mesh.start("b", b.args, "nodeB-restarted")  # the same command, the same node id
        b2.wait_ready()
        restarted = time.monotonic()
        client.wait_up("nodeB", timeout=30)
        print(f"restarted nodeB UP again {time.monotonic() - restarted:.2f} s after its ready line")
        wait_for(lambda: loop.served(since=restarted)["nodeB"], timeout=60, what="a request served by the "
                 "restarted nodeB")

    outcomes = loop.outcomes()
    errors = [o.error for o in outcomes if o.error]
    retries = router.log.read_text().count("trying another node")
    print(f"{len(outcomes)} requests, served: {dict(loop.served())}, after the restart: "
          f"{dict(loop.served(since=restarted))}; calls the router retried on another node: {retries}")
    assert not errors, f"{len(errors)} of {len(outcomes)} requests failed: {errors}"
    assert all(says_lazy_dog(o.text) for o in outcomes), [o.text for o in outcomes]
    assert client.states().get("nodeB") == mesh_pb2.NODE_STATE_UP


def test_unplugged_node_leaves_within_missed_heartbeats_and_rejoins(mesh: Mesh, client: RouterClient,
                                                                    topology: Topology, fox_wav: bytes) -> None:
    """No TCP reset this time (a pulled cable, a power cut): only the missed load heartbeats tell."""
    router, a, b = mesh.router(), mesh.node("a", "nodeA"), mesh.node("b", "nodeB")
    mesh.ready(router, a, b)
    client.wait_up("nodeA", "nodeB", timeout=30)
    unplugged = time.monotonic()
    topology.set_cable("b", plugged=False)
    try:
        gone_after = _wait_gone(client, "nodeB", unplugged)
        down = {n.node_id: n for n in client.list_nodes(include_down=True)}
        print(f"\nunplugged nodeB left ListNodes {gone_after:.3f} s after the cable was pulled "
              f"({down['nodeB'].state_reason if 'nodeB' in down else 'not listed'})")
        assert gone_after <= 3.0, f"nodeB still listed {gone_after:.2f} s after losing its cable"
        responses = client.transcribe_rounds(fox_wav, rounds=1, concurrent=4)
        assert Counter(r.served_by.node_id for r in responses) == {"nodeA": 4}
    finally:
        topology.set_cable("b", plugged=True)
    plugged = time.monotonic()
    client.wait_up("nodeB", timeout=30)
    print(f"nodeB UP again {time.monotonic() - plugged:.2f} s after its cable was plugged back")

    def a_round_reaches_b() -> bool:
        return any(r.served_by.node_id == "nodeB" for r in client.transcribe_rounds(fox_wav, rounds=1, concurrent=4))
    wait_for(a_round_reaches_b, timeout=60, interval=0, what="nodeB serving again")


def test_call_in_flight_on_an_unplugged_node_is_retried_elsewhere(mesh: Mesh, client: RouterClient,
                                                                  topology: Topology, fox_wav: bytes) -> None:
    router, a, b = mesh.router(), mesh.node("a", "nodeA"), mesh.node("b", "nodeB")
    mesh.ready(router, a, b)
    client.wait_up("nodeA", "nodeB", timeout=30)
    with RequestLoop(client, fox_wav, concurrency=2, timeout=15) as loop:
        wait_for(lambda: loop.served()["nodeA"] and loop.served()["nodeB"], timeout=60,
                 what="requests served by both nodes")
        assert _when_busy(client, "nodeB"), "no request went to nodeB"
        unplugged = time.monotonic()
        topology.set_cable("b", plugged=False)
        try:
            gone_after = _wait_gone(client, "nodeB", unplugged)
            given_up = time.monotonic()
            print(f"\nnodeB left ListNodes {gone_after:.3f} s after the cable was pulled")
            # A call takes a second or two of tiny.en: once the router has given nodeB up, the calls it
            # had placed there (in flight at the cut, or placed before it noticed) should run on nodeA,
            # not wait on a node it knows is gone until the client's deadline.
            wait_for(lambda: not loop.pending_since(given_up), timeout=8, interval=0.1,
                     what="the calls placed on nodeB before the router gave it up to finish")
        finally:
            topology.set_cable("b", plugged=True)
    errors = [o.error for o in loop.outcomes() if o.error]
    assert not errors, errors


def _request_counts(topology: Topology, key: str) -> dict[tuple[str, str], float]:
    """{(node, method): count} of lanai_requests_total on a node's /metrics, fetched from inside
    the router's namespace (the test process itself is not on the bridge)."""
    fetch = ("import urllib.request, sys; opener = urllib.request.build_opener(urllib.request.ProxyHandler({})); "
             "sys.stdout.write(opener.open(sys.argv[1], timeout=10).read().decode())")
    result = topology.run_in("r", [sys.executable, "-c", fetch, f"http://{topology.hosts[key].address}:9464/metrics"])
    assert result.returncode == 0, result.stderr
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in re.findall(r"^lanai_requests_total\{([^}]*)\} (\S+)$", result.stdout, re.M):
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(parsed["node"], parsed["method"])] += float(value)
    return dict(counts)


def test_node_outside_the_allow_list_is_refused_and_never_contacted(mesh: Mesh, client: RouterClient,
                                                                    topology: Topology, fox_wav: bytes) -> None:
    allow = f"10.77.{topology.x}.0/25"  # nodeC, at .200 on the same bridge, is outside it
    router = mesh.router(allow=allow)
    a, c = mesh.node("a", "nodeA", metrics=True), mesh.node("c", "nodeC", metrics=True)
    mesh.ready(router, a, c)

    def settled() -> dict[str, int] | None:
        states = client.states()
        return states if states.get("nodeA") == mesh_pb2.NODE_STATE_UP and "nodeC" in states else None
    states = wait_for(settled, timeout=30, what="nodeA UP and nodeC listed")
    assert states["nodeC"] == mesh_pb2.NODE_STATE_REFUSED, mesh_pb2.NodeState.Name(states["nodeC"])
    outsider = next(n for n in client.list_nodes() if n.node_id == "nodeC")
    assert outsider.address == topology.grpc_address("c")
    assert "allow-list" in outsider.state_reason, outsider.state_reason

    responses = client.transcribe_rounds(fox_wav, rounds=2, concurrent=4)
    served = Counter(r.served_by.node_id for r in responses)
    assert served == {"nodeA": 8}, served
    assert all(says_lazy_dog(r.text) for r in responses)
    assert client.states()["nodeC"] == mesh_pb2.NODE_STATE_REFUSED

    # The outsider was never called at all (not even Describe/WatchLoad); nodeA's count shows the probe works.
    outsider_counts = _request_counts(topology, "c")
    assert not outsider_counts, f"the router called the refused node: {outsider_counts}"
    assert _request_counts(topology, "a").get(("nodeA", "Transcribe")) == 8
