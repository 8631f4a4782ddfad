"""Placement benchmark: how well does each placement policy spread load over a mixed mesh,
from 4 nodes and one router to an office of 100 nodes and ten routers?

A deterministic discrete-event SIMULATION in virtual time with seeded random numbers, so the
numbers do not depend on how busy the machine running it is, and the same seed gives the same
output (the `rank` cost table is the one wall-clock measurement).

What is real: the router's decisions. Every arrival calls `lanai.mesh.placement.rank` on the
router's own `MeshState`, and that state changes only through the real pure event functions of
`lanai.mesh.state` (`discovered`, `described`, `load_reported`, `call_started`,
`call_finished`, and `refused` when a node answers RESOURCE_EXHAUSTED). The node's
self-measured speed is the real `lanai.mesh.load.Throughput` average (seeded with the node's
true speed, as its start-up self-measurement does, then folded with a measurement after every
request), and its load reports follow `LoadBoard.watch`: one right after a change, then none
for `COALESCE_S` (further changes go out together at its end), and a heartbeat at the interval
the router asks for (`RouterConfig.heartbeat_ms`).

What is simulated: the engines and the network.
- `BenchmarkEngine` (a BENCHMARKING ENGINE, used by nothing but this file) stands in for a
  node's service: its slots, a FIFO wait queue of at most `max_queue` requests (a request
  that finds it full is refused, as `AdmissionController` raises `Overloaded`), and a service
  time of work / speed.
- Scenarios (`--scenario`): `four`, the 4-node mesh of speeds 1, 1, 2 and 4 with one slot
  and a 64-deep queue each, one router; `office`, 100 nodes (40 at speed 1 with 2 slots, 30 at
  speed 2 with 4, 20 at speed 4 with 8, 10 at speed 8 with 8; queue 8 each) behind 1, 4 and
  10 routers. `--nodes 40x1x2,30x2x4` (count x speed x slots), `--max-queue` and `--routers`
  override a scenario's mesh.
- Work per request is random with mean `--mean-work` units (exponential by default).
- Arrivals are open-loop Poisson at `load` x total capacity, where total capacity =
  sum(speed x slots) / mean work requests per second, for loads 50 %, 80 % and 95 %.
- A request and its answer each take `--net-delay` to cross the network; a load report takes
  `--report-delay` from the node's change to the router's state. As `lanai.mesh.router` does,
  a refused request (RESOURCE_EXHAUSTED) is ranked again among the nodes not yet tried, up to
  `RouterConfig.max_attempts` attempts, and fails when no untried node is left.
- With several routers, arrivals are split at random between routers that each keep their
  own state and know only their own calls, as on a mesh where every node routes.
- `--throughput-noise` blurs every speed measurement; `--unmeasured 0,3` starts those nodes with
  no measurement at all (placement then assumes `UNKNOWN_SPEED`, 1 work unit per second, so
  give speeds in a realistic unit, e.g. `--speeds 20,20,40,80 --mean-work 20` for audio s/s).
- The ideal reference: the same arrivals and work into one global FIFO queue with perfect,
  instant knowledge, each request taking the fastest free slot of the whole mesh (the same
  network delay each way, no queue limit, so nothing is ever refused).

Measured, per policy, routers and load: the first `--warmup` requests warm the mesh up; the
next `--requests` are measured, and arrivals go on until every measured request has finished
(so the last ones see the same load). Latency is arrival at the router -> answer back at the
router, over the measured requests that were answered; a request refused by `max_attempts`
nodes (or by every node) is a failure, counted apart (p99 over the answered and the failed
fraction side by side). Herding, at the fastest nodes: the most requests one received
within one of its report windows (from one load report it sent to the next), its deepest
queue, and the fraction of arrivals it refused. `rank` cost: median wall time of one call
on a router's state taken from the office mesh at 80 % load.

Targets (issues 3 and 17): `four` at 80 % load: least-loaded's p99 at most half of
round-robin's, with at least 95 % of the offered load completed; `office`: no failed
request at 80 % load with 1 and with 10 routers, at most 0.1 % at 95 % with 10 routers,
p99 at most 1.2 x the ideal's at 80 % with 10 routers, and `rank` (least-loaded, 100
candidates) at most 50 us median.

Prints markdown tables and writes parameters and every cell to JSON.

Run:  python bench/placement.py [--scenario four,office] [--requests 20000] [--warmup 2000] [--seed 1]
                                [--loads 0.5,0.8,0.95] [--out bench/results/placement.json]
(`--help` lists every flag.) Exits 1 when a target is missed. A few minutes of CPU time.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import heapq
import itertools
import json
import math
import platform
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import table  # noqa: E402 - bench/ sibling module
from lanai.mesh.load import COALESCE_S, Throughput
from lanai.mesh.placement import HEADROOM, NEAR_EQUAL, POLICIES, SAMPLE, Need, rank
from lanai.mesh.router import RouterConfig
from lanai.mesh.state import (LoadView, MeshState, ServiceView, call_finished, call_started, described, refused,
                              discovered, load_reported)

SERVICE = "bench"
MODEL = "stand-in"
NEED = Need(SERVICE)
"""Requests ask for the service's default model, as most clients do."""
ROUTER = RouterConfig()
"""The real router's defaults: its heartbeat (asked of every node) and its attempts per call."""
TARGET_LOAD = 0.8
TARGET_P99_RATIO = 0.5
TARGET_THROUGHPUT = 0.95
TARGET_FAILED_95 = 0.001
TARGET_IDEAL_RATIO = 1.2
TARGET_RANK_US = 50.0


@dataclass(frozen=True)
class Scenario:
    """A mesh to simulate: (speed, slots) per node, a queue limit, and how many routers share it."""

    name: str
    nodes: tuple[tuple[float, int], ...]
    max_queue: int
    routers: tuple[int, ...]
    policies: tuple[str, ...]


def mix(spec: str) -> tuple[tuple[float, int], ...]:
    """'40x1x2,30x2x4' -> 40 nodes at speed 1 with 2 slots, then 30 at speed 2 with 4."""
    nodes: list[tuple[float, int]] = []
    for group in spec.split(","):
        count, speed, slots = group.strip().split("x")
        nodes += [(float(speed), int(slots))] * int(count)
    return tuple(nodes)


SCENARIOS = {
    "four": Scenario("four", mix("2x1x1,1x2x1,1x4x1"), 64, (1,), ("least-loaded", "round-robin", "random")),
    "office": Scenario("office", mix("40x1x2,30x2x4,20x4x8,10x8x8"), 8, (1, 4, 10), ("least-loaded", "round-robin")),
}


@dataclass(frozen=True)
class Params:
    scenario: str
    speeds: tuple[float, ...]
    slots: tuple[int, ...]
    """Execution slots per node, in the order of `speeds`."""
    max_queue: int
    mean_work: float
    work: str
    work_cv: float
    routers: tuple[int, ...]
    """Router counts to simulate, a cell each."""
    net_delay: float
    report_delay: float
    coalesce: float
    heartbeat: float
    throughput_noise: float
    unmeasured: tuple[int, ...]
    """Nodes (by index) that start with no speed measurement, as a node does before its first request."""
    max_attempts: int
    """Nodes tried for one request at most (1: a refused request fails)."""
    requests: int
    warmup: int
    seed: int
    loads: tuple[float, ...]
    policies: tuple[str, ...]
    sample: int
    """Nodes least-loaded draws and scores per request (0: every candidate, the exact ranking)."""
    headroom: int
    """Queue places a router leaves to the others' calls before it ranks a node with the full ones."""

    def capacity(self) -> float:
        """Requests per second the whole mesh can serve."""
        return sum(s * n for s, n in zip(self.speeds, self.slots)) / self.mean_work


@dataclass
class Request:
    index: int
    router: int
    arrived: float
    work: float
    tried: set[str] = field(default_factory=set)
    refusals: int = 0
    done: float | None = None
    failed: bool = False


class BenchmarkEngine:
    """A BENCHMARKING ENGINE, not a lanai engine: a stand-in for one node's service (its model
    and admission controller) with a fixed speed in work units per second per slot, `slots`
    slots and a FIFO queue of at most `max_queue` waiting requests. It never runs in a node;
    nothing outside this benchmark constructs it."""

    def __init__(self, address: str, speed: float, slots: int, max_queue: int) -> None:
        self.address = address
        self.speed = speed
        self.slots = slots
        self.max_queue = max_queue
        self.running = 0
        self.queue: deque[Request] = deque()
        self.max_queued = 0

    def service_time(self, request: Request) -> float:
        return request.work / self.speed

    def admit(self, request: Request) -> str:
        """'started' (a slot was free), 'queued', or 'refused' (the queue is full)."""
        if self.running < self.slots and not self.queue:
            self.running += 1
            return "started"
        if len(self.queue) >= self.max_queue:
            return "refused"
        self.queue.append(request)
        self.max_queued = max(self.max_queued, len(self.queue))
        return "queued"

    def finish(self) -> Request | None:
        """A slot came free: the next queued request that takes it, if any."""
        if self.queue:
            return self.queue.popleft()
        self.running -= 1
        return None

    def load(self) -> LoadView:
        return LoadView(in_flight=self.running, queued=len(self.queue))


@dataclass
class SimNode:
    """A node: its engine, its self-measured speed, and its load-report stream."""

    engine: BenchmarkEngine
    measured: Throughput
    version: int = 0
    sent_version: int = -1
    reports: int = 0
    coalescing: bool = False
    placed: int = 0
    """Measured requests first sent here."""
    arrivals: int = 0
    """Requests that reached it (measured or not), refused ones included."""
    refused: int = 0
    window: int = 0
    """Arrivals since the last load report it sent."""
    peak_window: int = 0


class SimRouter:
    """One router, as `lanai.mesh.router.Router` without the network: its own MeshState, changed
    only by the real event functions, and the real `rank` for every placement."""

    def __init__(self, policy: str, rng: random.Random, nodes: Sequence[SimNode], params: Params) -> None:
        self.policy = policy
        self.rng = rng
        self.turn = 0
        self.p = params
        state = MeshState()
        for node in nodes:
            address = node.engine.address
            service = ServiceView(node.engine.slots, params.max_queue, (MODEL,), MODEL)
            state = discovered(state, address, "static", allowed=True, now=0.0)
            state = described(state, address, f"node-{address}", {SERVICE: service},
                              {(SERVICE, MODEL): node.measured.value})
            state = load_reported(state, address, {SERVICE: node.engine.load()}, {}, draining=False, now=0.0)
        self.state = state

    def place(self, now: float, tried: set[str]) -> str | None:
        """As `Router._candidates`: a fresh ranking (a new turn) among the nodes not tried yet."""
        self.turn += 1
        ranked = rank(self.state, NEED, policy=self.policy, now=now, rng=self.rng, turn=self.turn, exclude=tried,
                      sample=self.p.sample, headroom=self.p.headroom)
        return ranked[0].address if ranked else None

    def sent(self, address: str, now: float) -> None:
        self.state = call_started(self.state, address, now)

    def answered(self, address: str, now: float) -> None:
        self.state = call_finished(self.state, address, node_failed=False, now=now)

    def refused_by(self, address: str, now: float) -> None:
        """As `Router._finished` on RESOURCE_EXHAUSTED: the call ended, and the node is full until its next report."""
        self.state = refused(call_finished(self.state, address, node_failed=False, now=now), address, SERVICE)

    def reported(self, address: str, load: LoadView, throughput: float, now: float) -> None:
        self.state = load_reported(self.state, address, {SERVICE: load}, {(SERVICE, MODEL): throughput},
                                   draining=False, now=now)


class Arrivals:
    """The seeded arrival stream of a cell: the same times and work for every policy, router
    count and the ideal reference."""

    def __init__(self, params: Params, load: float) -> None:
        self.p = params
        self.rate = load * params.capacity()
        self.rng = random.Random(f"{params.seed}:{load}:arrivals")

    def gap(self) -> float:
        return self.rng.expovariate(self.rate)

    def work(self) -> float:
        mean = self.p.mean_work
        if self.p.work == "fixed":
            return mean
        if self.p.work == "lognormal":
            sigma2 = math.log(1 + self.p.work_cv ** 2)
            return self.rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        return self.rng.expovariate(1 / mean)


class EventLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run_while(self, going: Callable[[], bool]) -> None:
        while going() and self._events:
            self.now, _, action = heapq.heappop(self._events)
            action()


class Simulation(EventLoop):
    """One cell: a policy at a load behind some routers, from the first arrival until every
    measured request ended."""

    def __init__(self, params: Params, policy: str, load: float, routers: int) -> None:
        super().__init__()
        self.p = params
        self.load = load
        self.arrivals = Arrivals(params, load)
        self.rate = self.arrivals.rate
        cell = f"{params.seed}:{load}"
        self.noise_rng = random.Random(f"{cell}:noise")
        self.split_rng = random.Random(f"{cell}:routers")
        self.nodes = {n.engine.address: n for n in self._make_nodes()}
        nodes = list(self.nodes.values())
        self.router_count = routers
        self.routers = [SimRouter(policy, random.Random(f"{cell}:{policy}:router{i}"), nodes, params)
                        for i in range(routers)]
        self.requests: list[Request] = []
        self.completions: list[float] = []
        self.refusals = 0
        self.unresolved = params.requests
        self.snapshot: MeshState | None = None
        """Router 0's state when the last measured request arrived (for the rank cost)."""

    # -- set-up -------------------------------------------------------------------------------

    def _make_nodes(self) -> list[SimNode]:
        nodes = []
        for i, (speed, slots) in enumerate(zip(self.p.speeds, self.p.slots)):
            engine = BenchmarkEngine(f"10.0.{i // 200}.{10 + i % 200}:50051", speed, slots, self.p.max_queue)
            measured = Throughput("work/s")
            if i not in self.p.unmeasured:
                measured = measured.observe(self._measure(speed))
            nodes.append(SimNode(engine, measured))
        return nodes

    def _measure(self, speed: float) -> float:
        """What the node measures its speed as (its start-up self-measurement, then each request)."""
        if self.p.throughput_noise <= 0:
            return speed
        return speed * math.exp(self.noise_rng.gauss(0.0, self.p.throughput_noise))

    def run(self) -> None:
        self.at(self.arrivals.gap(), self._arrive)
        self.run_while(lambda: self.unresolved > 0)

    # -- router side --------------------------------------------------------------------------

    def _arrive(self) -> None:
        index = len(self.requests)
        router = self.split_rng.randrange(self.router_count)
        request = Request(index, router, self.now, self.arrivals.work())
        self.requests.append(request)
        if index == self.p.warmup + self.p.requests - 1:
            self.snapshot = self.routers[0].state
        self._attempt(request)
        self.at(self.arrivals.gap(), self._arrive)

    def _attempt(self, request: Request) -> None:
        """Place the request (again, after a refusal), as one turn of `Router._attempts`."""
        router = self.routers[request.router]
        address = router.place(self.now, request.tried) if len(request.tried) < self.p.max_attempts else None
        if address is None:
            request.failed = True
            self._resolve(request)
            return
        if not request.tried and self._measured(request):
            self.nodes[address].placed += 1
        request.tried.add(address)
        router.sent(address, self.now)
        self.at(self.p.net_delay, lambda: self._receive(request, address))

    def _answered(self, request: Request, address: str) -> None:
        self.routers[request.router].answered(address, self.now)
        request.done = self.now
        self.completions.append(self.now)
        self._resolve(request)

    def _refused(self, request: Request, address: str) -> None:
        self.routers[request.router].refused_by(address, self.now)
        self._attempt(request)

    def _measured(self, request: Request) -> bool:
        return self.p.warmup <= request.index < self.p.warmup + self.p.requests

    def _resolve(self, request: Request) -> None:
        if self._measured(request):
            self.unresolved -= 1

    # -- node side ----------------------------------------------------------------------------

    def _receive(self, request: Request, address: str) -> None:
        node = self.nodes[address]
        node.arrivals += 1
        node.window += 1
        node.peak_window = max(node.peak_window, node.window)
        outcome = node.engine.admit(request)
        if outcome == "refused":
            node.refused += 1
            request.refusals += 1
            if self._measured(request):
                self.refusals += 1
            self.at(self.p.net_delay, lambda: self._refused(request, address))
            return
        if outcome == "started":
            self._start(node, request)
        self._changed(node)

    def _start(self, node: SimNode, request: Request) -> None:
        self.at(node.engine.service_time(request), lambda: self._done(node, request))

    def _done(self, node: SimNode, request: Request) -> None:
        following = node.engine.finish()
        if following is not None:
            self._start(node, following)
        node.measured = node.measured.observe(self._measure(node.engine.speed))  # as the node does after each request
        self._changed(node)
        self.at(self.p.net_delay, lambda: self._answered(request, node.engine.address))

    def _changed(self, node: SimNode) -> None:
        """As `LoadBoard.watch`: report now unless a report went out less than `coalesce` ago."""
        node.version += 1
        if not node.coalescing:
            self._report(node)

    def _report(self, node: SimNode) -> None:
        node.sent_version = node.version
        node.reports += 1
        node.window = 0
        load, throughput, address = node.engine.load(), node.measured.value, node.engine.address
        for router in self.routers:
            self.at(self.p.report_delay, functools.partial(router.reported, address, load, throughput,
                                                           self.now + self.p.report_delay))
        node.coalescing = True
        self.at(self.p.coalesce, lambda: self._coalesced(node))

    def _coalesced(self, node: SimNode) -> None:
        node.coalescing = False
        if node.version != node.sent_version:
            self._report(node)
            return
        reports = node.reports
        self.at(self.p.heartbeat, lambda: self._heartbeat(node, reports))

    def _heartbeat(self, node: SimNode, reports: int) -> None:
        if node.reports == reports and not node.coalescing:
            self._report(node)

    # -- results ------------------------------------------------------------------------------

    def result(self, policy: str) -> dict[str, Any]:
        measured = self.requests[self.p.warmup:self.p.warmup + self.p.requests]
        start, end = measured[0].arrived, measured[-1].arrived
        window = end - start
        completed_in_window = sum(1 for t in self.completions if start <= t <= end)
        latencies = sorted(r.done - r.arrived for r in measured if r.done is not None)
        failed = sum(1 for r in measured if r.failed)
        fastest = max(self.p.speeds)
        fast = [n for n in self.nodes.values() if n.engine.speed == fastest]
        by_speed: dict[float, int] = {}
        for n in self.nodes.values():
            by_speed[n.engine.speed] = by_speed.get(n.engine.speed, 0) + n.placed
        return {
            "policy": policy, "load": self.load, "routers": self.router_count,
            "offered_per_s": self.rate, "arrived_per_s": (len(measured) - 1) / window,
            "completed_per_s": completed_in_window / window,
            "throughput_fraction": completed_in_window / (len(measured) - 1),
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99),
            "mean_s": statistics.fmean(latencies) if latencies else math.nan,
            "max_s": latencies[-1] if latencies else math.nan,
            "completed": len(latencies), "failed": failed, "failed_fraction": failed / len(measured),
            "refusals": self.refusals,
            "retried": sum(1 for r in measured if r.refusals and not r.failed),
            "max_queue_seen": max(n.engine.max_queued for n in self.nodes.values()),
            "fast_peak_window_arrivals": max(n.peak_window for n in fast),
            "fast_peak_queue": max(n.engine.max_queued for n in fast),
            "fast_refused_fraction": sum(n.refused for n in fast) / max(1, sum(n.arrivals for n in fast)),
            "first_choice_by_speed": {f"{s:g}": c / len(measured) for s, c in sorted(by_speed.items())},
            "per_node": [{"address": a, "speed": n.engine.speed, "slots": n.engine.slots,
                          "share": n.placed / len(measured), "max_queue_seen": n.engine.max_queued,
                          "load_reports": n.reports, "peak_window_arrivals": n.peak_window}
                         for a, n in self.nodes.items()],
            "window_s": window, "simulated_s": self.now, "total_requests": len(self.requests),
        }


class IdealSimulation(EventLoop):
    """The reference: one global FIFO queue with perfect, instant knowledge; a request takes the
    fastest free slot of the whole mesh, or waits in the one queue for the next slot to come free."""

    def __init__(self, params: Params, load: float) -> None:
        super().__init__()
        self.p = params
        self.load = load
        self.arrivals = Arrivals(params, load)
        self.split_rng = random.Random(f"{params.seed}:{load}:routers")  # drawn as in Simulation, unused
        self.free = [(-speed, i) for i, (speed, slots) in enumerate(zip(params.speeds, params.slots))
                     for _ in range(slots)]
        heapq.heapify(self.free)
        self.waiting: deque[Request] = deque()
        self.requests: list[Request] = []
        self.unresolved = params.requests

    def run(self) -> None:
        self.at(self.arrivals.gap(), self._arrive)
        self.run_while(lambda: self.unresolved > 0)

    def _arrive(self) -> None:
        index = len(self.requests)
        self.split_rng.randrange(1)
        request = Request(index, 0, self.now, self.arrivals.work())
        self.requests.append(request)
        self.at(self.p.net_delay, lambda: self._queue(request))
        self.at(self.arrivals.gap(), self._arrive)

    def _queue(self, request: Request) -> None:
        if self.free:
            self._start(heapq.heappop(self.free), request)
        else:
            self.waiting.append(request)

    def _start(self, slot: tuple[float, int], request: Request) -> None:
        self.at(request.work / -slot[0], lambda: self._done(slot, request))

    def _done(self, slot: tuple[float, int], request: Request) -> None:
        request.done = self.now + self.p.net_delay
        if self.p.warmup <= request.index < self.p.warmup + self.p.requests:
            self.unresolved -= 1
        if self.waiting:
            self._start(slot, self.waiting.popleft())
        else:
            heapq.heappush(self.free, slot)

    def result(self) -> dict[str, Any]:
        measured = self.requests[self.p.warmup:self.p.warmup + self.p.requests]
        latencies = sorted(r.done - r.arrived for r in measured if r.done is not None)
        return {"policy": "ideal", "load": self.load, "p50_s": percentile(latencies, 50),
                "p99_s": percentile(latencies, 99), "mean_s": statistics.fmean(latencies), "failed": 0,
                "failed_fraction": 0.0, "completed": len(latencies)}


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Linear interpolation between the closest ranks of an ascending list."""
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * pct / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_cell(params: Params, policy: str, load: float, routers: int = 1) -> tuple[dict[str, Any], Simulation]:
    started = time.perf_counter()
    sim = Simulation(params, policy, load, routers)
    sim.run()
    result = sim.result(policy)
    result["wall_s"] = time.perf_counter() - started
    return result, sim


def run_ideal(params: Params, load: float) -> dict[str, Any]:
    sim = IdealSimulation(params, load)
    sim.run()
    return sim.result()


def rank_cost(state: MeshState, params: Params, calls: int = 3000) -> list[dict[str, Any]]:
    """Wall time of one `rank` call on a real router state, per policy (the one non-simulated number)."""
    rows = []
    candidates = sum(1 for n in state.nodes.values() if SERVICE in n.services)
    for policy in params.policies:
        rng = random.Random(0)
        times = []
        for turn in range(calls):
            started = time.perf_counter_ns()
            rank(state, NEED, policy=policy, now=1.0, rng=rng, turn=turn, sample=params.sample,
                 headroom=params.headroom)
            times.append((time.perf_counter_ns() - started) / 1000)
        times.sort()
        rows.append({"policy": policy, "candidates": candidates, "calls": calls,
                     "median_us": percentile(times, 50), "p90_us": percentile(times, 90)})
    return rows


# -- reporting --------------------------------------------------------------------------------


def load_table(cells: Sequence[dict[str, Any]], speeds: Sequence[float]) -> str:
    shares = f"first choice per node (speeds {'/'.join(f'{s:g}' for s in speeds)})"
    header = ["policy", "offered req/s", "arrived req/s", "completed req/s", "throughput", "p50 s", "p99 s",
              "mean s", "max queue", "refusals", "failed", shares]
    rows = []
    for c in cells:
        rows.append([c["policy"], f"{c['offered_per_s']:.2f}", f"{c['arrived_per_s']:.2f}",
                     f"{c['completed_per_s']:.2f}", f"{c['throughput_fraction']:.1%}", f"{c['p50_s']:.2f}",
                     f"{c['p99_s']:.2f}", f"{c['mean_s']:.2f}", str(c["max_queue_seen"]), str(c["refusals"]),
                     str(c["failed"]), " / ".join(f"{n['share']:.2f}" for n in c["per_node"])])
    return table(header, rows)


def office_table(cells: Sequence[dict[str, Any]], ideal: dict[str, Any]) -> str:
    speeds = "/".join(cells[0]["first_choice_by_speed"]) if cells else ""
    header = ["routers", "policy", "p50 s", "p99 s (answered)", "p99 / ideal", "failed", "refusals",
              "retried", "fast node: peak arrivals per report", "fast node: peak queue", "fast node: refused",
              f"first choice by speed {speeds}"]
    rows = [["-", "ideal", f"{ideal['p50_s']:.3f}", f"{ideal['p99_s']:.3f}", "1.00", "0", "-", "-", "-", "-",
             "-", "-"]]
    for c in cells:
        rows.append([str(c["routers"]), c["policy"], f"{c['p50_s']:.3f}", f"{c['p99_s']:.3f}",
                     f"{c['p99_s'] / ideal['p99_s']:.2f}", f"{c['failed_fraction']:.2%}", str(c["refusals"]),
                     str(c["retried"]), str(c["fast_peak_window_arrivals"]), str(c["fast_peak_queue"]),
                     f"{c['fast_refused_fraction']:.1%}",
                     " / ".join(f"{v:.2f}" for v in c["first_choice_by_speed"].values())])
    return table(header, rows)


def cost_table(rows: Sequence[dict[str, Any]]) -> str:
    return table(["policy", "candidates", "median us", "p90 us"],
                 [[r["policy"], str(r["candidates"]), f"{r['median_us']:.1f}", f"{r['p90_us']:.1f}"] for r in rows])


def four_verdict(cells: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    by_policy = {c["policy"]: c for c in cells if math.isclose(c["load"], TARGET_LOAD)}
    ll, rr = by_policy.get("least-loaded"), by_policy.get("round-robin")
    if ll is None or rr is None:
        return None
    ratio = ll["p99_s"] / rr["p99_s"]
    passed = ratio <= TARGET_P99_RATIO and ll["throughput_fraction"] >= TARGET_THROUGHPUT
    return {"load": TARGET_LOAD, "least_loaded_p99_s": ll["p99_s"], "round_robin_p99_s": rr["p99_s"],
            "p99_ratio": ratio, "p99_ratio_target": TARGET_P99_RATIO,
            "throughput_fraction": ll["throughput_fraction"], "throughput_target": TARGET_THROUGHPUT,
            "pass": passed}


def office_verdict(cells: Sequence[dict[str, Any]], ideals: dict[float, dict[str, Any]],
                   cost: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue-17 targets that this run's cells can check, each with its measured value."""
    def cell(load: float, routers: int) -> dict[str, Any] | None:
        return next((c for c in cells if c["policy"] == "least-loaded" and c["routers"] == routers
                     and math.isclose(c["load"], load)), None)

    checks = []
    for routers in (1, 10):
        if (c := cell(0.8, routers)) is not None:
            checks.append({"measure": f"failed requests, {routers} router(s), 80% load", "value": c["failed_fraction"],
                           "target": "0", "pass": c["failed"] == 0})
    if (c := cell(0.95, 10)) is not None:
        checks.append({"measure": "failed requests, 10 routers, 95% load", "value": c["failed_fraction"],
                       "target": f"<= {TARGET_FAILED_95:.1%}", "pass": c["failed_fraction"] <= TARGET_FAILED_95})
    if (c := cell(0.8, 10)) is not None and 0.8 in ideals:
        ratio = c["p99_s"] / ideals[0.8]["p99_s"]
        checks.append({"measure": "p99 / ideal p99, 10 routers, 80% load", "value": ratio,
                       "target": f"<= {TARGET_IDEAL_RATIO}", "pass": ratio <= TARGET_IDEAL_RATIO})
    for row in cost:
        if row["policy"] == "least-loaded":
            checks.append({"measure": f"rank, least-loaded, {row['candidates']} candidates, median us",
                           "value": row["median_us"], "target": f"<= {TARGET_RANK_US:g}",
                           "pass": row["median_us"] <= TARGET_RANK_US})
    return checks


def describe_params(p: Params) -> str:
    groups: dict[tuple[float, int], int] = {}
    for key in zip(p.speeds, p.slots):
        groups[key] = groups.get(key, 0) + 1
    mesh = ", ".join(f"{n} x speed {s:g} with {k} slot{'s' if k > 1 else ''}" for (s, k), n in groups.items())
    return (f"{len(p.speeds)} nodes ({mesh}), queue <= {p.max_queue}; work {p.work} mean {p.mean_work:g}"
            + (f" cv {p.work_cv:g}" if p.work == "lognormal" else "")
            + f"; capacity {p.capacity():.2f} req/s; router(s) {', '.join(map(str, p.routers))}; "
            f"net {p.net_delay * 1000:g} ms, reports +{p.report_delay * 1000:g} ms (coalesce {p.coalesce * 1000:g} ms, "
            f"heartbeat {p.heartbeat:g} s); throughput noise {p.throughput_noise:g}; "
            + (f"unmeasured at start: node {', '.join(map(str, p.unmeasured))}; " if p.unmeasured else "")
            + f"at most {p.max_attempts} attempt(s) per request; least-loaded draws "
            + (f"{p.sample} nodes per request; " if p.sample else "none (ranks every candidate); ")
            + f"headroom {p.headroom}; "
            + f"{p.requests} requests after {p.warmup} warm-up, seed {p.seed}")


def environment() -> dict[str, Any]:
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(), "near_equal": NEAR_EQUAL}


# -- command line -----------------------------------------------------------------------------


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(","))


def parse_args(argv: Sequence[str] | None = None) -> tuple[list[Params], Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", type=names, default=tuple(SCENARIOS), help="four, office, or both (default)")
    ap.add_argument("--nodes", type=mix, help="the mesh, overriding the scenario's: COUNTxSPEEDxSLOTS,...")
    ap.add_argument("--speeds", type=floats, help="node speeds (work/s/slot), overriding the scenario's mesh")
    ap.add_argument("--slots", type=int, default=1, help="execution slots per node, with --speeds")
    ap.add_argument("--max-queue", type=int, help="waiting requests per node before it refuses (scenario's)")
    ap.add_argument("--routers", type=ints, help="router counts sharing the nodes, e.g. 1,4,10 (scenario's)")
    ap.add_argument("--mean-work", type=float, default=1.0, help="mean work per request (units)")
    ap.add_argument("--work", choices=("exp", "lognormal", "fixed"), default="exp", help="work distribution")
    ap.add_argument("--work-cv", type=float, default=1.0, help="coefficient of variation for --work lognormal")
    ap.add_argument("--net-delay", type=float, default=0.0005, help="one-way network delay, s")
    ap.add_argument("--report-delay", type=float, default=0.005, help="node change -> router state, s")
    ap.add_argument("--coalesce", type=float, default=COALESCE_S, help="load report coalescing, s")
    ap.add_argument("--heartbeat", type=float, default=ROUTER.heartbeat_ms / 1000, help="load report heartbeat, s")
    ap.add_argument("--throughput-noise", type=float, default=0.0,
                    help="sigma of the log-normal error of each speed measurement (0: exact)")
    ap.add_argument("--unmeasured", type=ints, default=(),
                    help="indices of nodes that start without a speed measurement (e.g. 0,3)")
    ap.add_argument("--max-attempts", type=int, default=ROUTER.max_attempts,
                    help="nodes tried per request at most (1: no retry)")
    ap.add_argument("--requests", type=int, default=20000, help="measured requests per cell")
    ap.add_argument("--warmup", type=int, default=2000, help="requests before the measured ones")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loads", type=floats, default=(0.5, 0.8, 0.95), help="fractions of total capacity")
    ap.add_argument("--policies", type=names, help="policies to compare (scenario's)")
    ap.add_argument("--sample", type=int, default=SAMPLE,
                    help=f"nodes least-loaded draws per request (default {SAMPLE}; 0: rank every candidate)")
    ap.add_argument("--headroom", type=int, default=HEADROOM,
                    help=f"queue places a router leaves to other routers (default {HEADROOM})")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "placement.json")
    a = ap.parse_args(argv)
    unknown = [s for s in a.scenario if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if a.policies and (bad := [p for p in a.policies if p not in POLICIES]):
        ap.error(f"unknown policy {', '.join(bad)}; choose from {', '.join(POLICIES)}")
    if (a.requests < 2 or a.warmup < 0 or a.sample < 0 or a.headroom < 0 or a.slots < 1 or (a.routers and min(a.routers) < 1)
            or (a.max_queue or 0) < 0 or a.max_attempts < 1):
        ap.error("need --requests >= 2, --warmup >= 0, --sample >= 0, --headroom >= 0, --slots >= 1, --routers >= 1, --max-queue >= 0 "
                 "and --max-attempts >= 1")
    if (a.speeds and min(a.speeds) <= 0) or a.mean_work <= 0 or min(a.loads) <= 0:
        ap.error("speeds, --mean-work and loads must be positive")
    runs = []
    for name in a.scenario:
        scenario = SCENARIOS[name]
        nodes = a.nodes or (tuple((s, a.slots) for s in a.speeds) if a.speeds else scenario.nodes)
        if any(not 0 <= i < len(nodes) for i in a.unmeasured):
            ap.error(f"--unmeasured takes node indices from 0 to {len(nodes) - 1}")
        runs.append(Params(
            scenario=name, speeds=tuple(s for s, _ in nodes), slots=tuple(k for _, k in nodes),
            max_queue=scenario.max_queue if a.max_queue is None else a.max_queue, mean_work=a.mean_work,
            work=a.work, work_cv=a.work_cv, routers=a.routers or scenario.routers, net_delay=a.net_delay,
            report_delay=a.report_delay, coalesce=a.coalesce, heartbeat=a.heartbeat,
            throughput_noise=a.throughput_noise, unmeasured=a.unmeasured, max_attempts=a.max_attempts,
            requests=a.requests, warmup=a.warmup, seed=a.seed, loads=a.loads,
            policies=a.policies or scenario.policies, sample=a.sample, headroom=a.headroom))
    return runs, a.out


def run_scenario(params: Params) -> dict[str, Any]:
    print(f"# Placement, simulated, {params.scenario}: {describe_params(params)}\n")
    cells: list[dict[str, Any]] = []
    ideals: dict[float, dict[str, Any]] = {}
    snapshot: MeshState | None = None
    for load in params.loads:
        ideals[load] = ideal = run_ideal(params, load)
        level = []
        for routers in params.routers:
            for policy in params.policies:
                cell, sim = run_cell(params, policy, load, routers)
                cell["p99_over_ideal"] = cell["p99_s"] / ideal["p99_s"]
                level.append(cell)
                if policy == "least-loaded" and routers == params.routers[0] and math.isclose(load, TARGET_LOAD):
                    snapshot = sim.snapshot
        cells.extend(level)
        print(f"## Load {load:.0%} of capacity ({load * params.capacity():.2f} req/s offered)\n")
        if len(params.speeds) <= 8 and params.routers == (1,):
            print(load_table(level, params.speeds) + "\n")
            print(f"ideal reference: p50 {ideal['p50_s']:.2f} s, p99 {ideal['p99_s']:.2f} s\n")
        else:
            print(office_table(level, ideal) + "\n")
    cost = rank_cost(snapshot, params) if snapshot is not None else []
    if cost:
        print(f"## rank cost: one call on router 0's state at {TARGET_LOAD:.0%} load (wall time, this machine)\n")
        print(cost_table(cost) + "\n")
    result: dict[str, Any] = {"params": asdict(params), "cells": cells, "ideal": list(ideals.values()),
                              "rank_cost": cost}
    if params.scenario == "four":
        verdict = four_verdict(cells)
        result["checks"] = [] if verdict is None else [{
            "measure": "p99 least-loaded / round-robin, 80% load", "value": verdict["p99_ratio"],
            "target": f"<= {TARGET_P99_RATIO}", "pass": verdict["p99_ratio"] <= TARGET_P99_RATIO}, {
            "measure": "least-loaded throughput, 80% load", "value": verdict["throughput_fraction"],
            "target": f">= {TARGET_THROUGHPUT:.0%}", "pass": verdict["throughput_fraction"] >= TARGET_THROUGHPUT}]
    else:
        result["checks"] = office_verdict(cells, ideals, cost)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    runs, out = parse_args(argv)
    started = time.perf_counter()
    results = [run_scenario(params) for params in runs]
    checks = [dict(c, scenario=r["params"]["scenario"]) for r in results for c in r["checks"]]
    if checks:
        print("## Targets\n")
        print(table(["scenario", "measure", "value", "target", "verdict"],
                    [[c["scenario"], c["measure"], f"{c['value']:.4g}", c["target"], "PASS" if c["pass"] else "FAIL"]
                     for c in checks]) + "\n")
    wall = time.perf_counter() - started
    print(f"simulated in {wall:.1f} s wall time")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": environment(), "wall_s": wall, "checks": checks,
                               "scenarios": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
