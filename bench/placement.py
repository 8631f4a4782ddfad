"""Placement benchmark: how well does each placement policy spread load over a mixed mesh?

A deterministic discrete-event SIMULATION in virtual time with seeded random numbers, so the
numbers do not depend on how busy the machine running it is, and the same seed gives the same
output.

What is real: the router's decisions. Every arrival calls `lanai.mesh.placement.rank` on the
router's own `MeshState`, and that state changes only through the real pure event functions of
`lanai.mesh.state` (`discovered`, `described`, `load_reported`, `call_started`,
`call_finished`, and `refused` when a node answers RESOURCE_EXHAUSTED). The node's self-measured speed is the real `lanai.mesh.load.Throughput`
average (seeded with the node's true speed, as its start-up self-measurement does, then folded
with a measurement after every request), and its load reports follow `LoadBoard.watch`: one
right after a change, then none for `COALESCE_S` (further changes go out together at its end),
and a heartbeat at the interval the router asks for (`RouterConfig.heartbeat_ms`).

What is simulated: the engines and the network.
- `BenchmarkEngine` (a BENCHMARKING ENGINE, used by nothing but this file) stands in for a
  node's service: `slots` execution slots, a FIFO wait queue of at most `max_queue` requests
  (a request that finds it full is refused, as `AdmissionController` raises `Overloaded`),
  and a service time of work / speed. Speeds default to 1, 1, 2 and 4 work units per second.
- Work per request is random with mean `--mean-work` units (exponential by default).
- Arrivals are open-loop Poisson at `load` x total capacity, where total capacity =
  sum(speed x slots) / mean work requests per second, for loads 50 %, 80 % and 95 %.
- A request and its answer each take `--net-delay` to cross the network; a load report takes
  `--report-delay` from the node's change to the router's state. As `lanai.mesh.router` does,
  a refused request (RESOURCE_EXHAUSTED) is ranked again among the nodes not yet tried, up to
  `RouterConfig.max_attempts` attempts, and fails when no untried node is left.
- With `--routers 2`, arrivals are split at random between two routers that each keep their
  own state and know only their own calls, as on a mesh with two entry points.
- `--throughput-noise` blurs every speed measurement; `--unmeasured 0,3` starts those nodes with
  no measurement at all (placement then assumes `UNKNOWN_SPEED`, 1 work unit per second, so
  give speeds in a realistic unit, e.g. `--speeds 20,20,40,80 --mean-work 20` for audio s/s).

Measured, per policy and load: the first `--warmup` requests warm the mesh up; the next
`--requests` are measured, and arrivals go on until every measured request has finished (so
the last ones see the same load). Throughput is completions per second over the window from
the first to the last measured arrival, as a fraction of the arrivals in it; latency is
arrival at the router -> answer back at the router, over the measured requests that completed.

Target (issue): at 80 % load, least-loaded's p99 latency is at most half of round-robin's, and
least-loaded completes at least 95 % of the offered load.

Prints one markdown table per load level and writes parameters and every cell to JSON.

Run:  python bench/placement.py [--requests 20000] [--warmup 2000] [--seed 1] [--speeds 1,1,2,4]
                                [--slots 1] [--max-queue 64] [--routers 1] [--work exp|lognormal|fixed]
                                [--report-delay 0.005] [--throughput-noise 0.0] [--unmeasured ...]
                                [--loads 0.5,0.8,0.95] [--out bench/results/placement.json]
(`--help` lists every flag.) Exits 1 when the 80 % target is missed. About 8 s of CPU time.
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
from lanai.mesh.placement import NEAR_EQUAL, POLICIES, Need, rank
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


@dataclass(frozen=True)
class Params:
    speeds: tuple[float, ...]
    slots: int
    max_queue: int
    mean_work: float
    work: str
    work_cv: float
    routers: int
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

    def capacity(self) -> float:
        """Requests per second the whole mesh can serve."""
        return sum(s * self.slots for s in self.speeds) / self.mean_work


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


class SimRouter:
    """One router, as `lanai.mesh.router.Router` without the network: its own MeshState, changed
    only by the real event functions, and the real `rank` for every placement."""

    def __init__(self, policy: str, rng: random.Random, nodes: Sequence[SimNode], params: Params) -> None:
        self.policy = policy
        self.rng = rng
        self.turn = 0
        state = MeshState()
        service = ServiceView(params.slots, params.max_queue, (MODEL,), MODEL)
        for node in nodes:
            address = node.engine.address
            state = discovered(state, address, "static", allowed=True, now=0.0)
            state = described(state, address, f"node-{address}", {SERVICE: service},
                              {(SERVICE, MODEL): node.measured.value})
            state = load_reported(state, address, {SERVICE: node.engine.load()}, {}, draining=False, now=0.0)
        self.state = state

    def place(self, now: float, tried: set[str]) -> list[str]:
        """As `Router._candidates`: a fresh ranking (a new turn), without the nodes already tried."""
        self.turn += 1
        ranked = rank(self.state, NEED, policy=self.policy, now=now, rng=self.rng, turn=self.turn)
        return [n.address for n in ranked if n.address not in tried]

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


class Simulation:
    """One cell: a policy at a load, from the first arrival until every measured request ended."""

    def __init__(self, params: Params, policy: str, load: float) -> None:
        self.p = params
        self.load = load
        self.rate = load * params.capacity()
        cell = f"{params.seed}:{load}"
        self.arrival_rng = random.Random(f"{cell}:arrivals")  # same arrivals and work for every policy
        self.noise_rng = random.Random(f"{cell}:noise")
        self.split_rng = random.Random(f"{cell}:routers")
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.nodes = {n.engine.address: n for n in self._make_nodes()}
        nodes = list(self.nodes.values())
        self.routers = [SimRouter(policy, random.Random(f"{cell}:{policy}:router{i}"), nodes, params)
                        for i in range(params.routers)]
        self.requests: list[Request] = []
        self.completions: list[float] = []
        self.refusals = 0
        self.unresolved = params.requests

    # -- set-up -------------------------------------------------------------------------------

    def _make_nodes(self) -> list[SimNode]:
        nodes = []
        for i, speed in enumerate(self.p.speeds):
            engine = BenchmarkEngine(f"10.0.0.{10 + i}:50051", speed, self.p.slots, self.p.max_queue)
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

    def _work(self) -> float:
        mean = self.p.mean_work
        if self.p.work == "fixed":
            return mean
        if self.p.work == "lognormal":
            sigma2 = math.log(1 + self.p.work_cv ** 2)
            return self.arrival_rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        return self.arrival_rng.expovariate(1 / mean)

    # -- event queue --------------------------------------------------------------------------

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run(self) -> None:
        self.at(self.arrival_rng.expovariate(self.rate), self._arrive)
        while self.unresolved and self._events:
            self.now, _, action = heapq.heappop(self._events)
            action()

    # -- router side --------------------------------------------------------------------------

    def _arrive(self) -> None:
        index = len(self.requests)
        router = self.split_rng.randrange(self.p.routers)
        request = Request(index, router, self.now, self._work())
        self.requests.append(request)
        self._attempt(request)
        self.at(self.arrival_rng.expovariate(self.rate), self._arrive)

    def _attempt(self, request: Request) -> None:
        """Place the request (again, after a refusal), as one turn of `Router._attempts`."""
        router = self.routers[request.router]
        candidates = router.place(self.now, request.tried) if len(request.tried) < self.p.max_attempts else []
        if not candidates:
            request.failed = True
            self._resolve(request)
            return
        address = candidates[0]
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
        outcome = node.engine.admit(request)
        if outcome == "refused":
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
        load, throughput, address = node.engine.load(), node.measured.value, node.engine.address
        for router in self.routers:
            self.at(self.p.report_delay, functools.partial(self._deliver, router, address, load, throughput))
        node.coalescing = True
        self.at(self.p.coalesce, lambda: self._coalesced(node))

    def _deliver(self, router: SimRouter, address: str, load: LoadView, throughput: float) -> None:
        router.reported(address, load, throughput, self.now)

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
        return {
            "policy": policy, "load": self.load,
            "offered_per_s": self.rate, "arrived_per_s": (len(measured) - 1) / window,
            "completed_per_s": completed_in_window / window,
            "throughput_fraction": completed_in_window / (len(measured) - 1),
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99),
            "mean_s": statistics.fmean(latencies), "max_s": latencies[-1],
            "completed": len(latencies), "failed": failed, "refusals": self.refusals,
            "retried": sum(1 for r in measured if r.refusals and not r.failed),
            "max_queue_seen": max(n.engine.max_queued for n in self.nodes.values()),
            "per_node": [{"address": a, "speed": n.engine.speed, "share": n.placed / len(measured),
                          "max_queue_seen": n.engine.max_queued, "load_reports": n.reports}
                         for a, n in self.nodes.items()],
            "window_s": window, "simulated_s": self.now, "total_requests": len(self.requests),
        }


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Linear interpolation between the closest ranks of an ascending list."""
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * pct / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_cell(params: Params, policy: str, load: float) -> dict[str, Any]:
    started = time.perf_counter()
    sim = Simulation(params, policy, load)
    sim.run()
    result = sim.result(policy)
    result["wall_s"] = time.perf_counter() - started
    return result


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


def verdict(cells: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
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


def describe_params(p: Params) -> str:
    return (f"{len(p.speeds)} nodes, speeds {', '.join(f'{s:g}' for s in p.speeds)} work/s x {p.slots} slot(s), "
            f"queue <= {p.max_queue}; work {p.work} mean {p.mean_work:g}"
            + (f" cv {p.work_cv:g}" if p.work == "lognormal" else "")
            + f"; capacity {p.capacity():.2f} req/s; {p.routers} router(s); net {p.net_delay * 1000:g} ms, "
            f"reports +{p.report_delay * 1000:g} ms (coalesce {p.coalesce * 1000:g} ms, heartbeat {p.heartbeat:g} s); "
            f"throughput noise {p.throughput_noise:g}; "
            + (f"unmeasured at start: node {', '.join(map(str, p.unmeasured))}; " if p.unmeasured else "")
            + f"at most {p.max_attempts} attempt(s) per request; "
            f"{p.requests} requests after {p.warmup} warm-up, seed {p.seed}")


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


def parse_args(argv: Sequence[str] | None = None) -> tuple[Params, Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speeds", type=floats, default=(1.0, 1.0, 2.0, 4.0), help="relative node speeds (work/s/slot)")
    ap.add_argument("--slots", type=int, default=1, help="execution slots per node")
    ap.add_argument("--max-queue", type=int, default=64, help="waiting requests per node before it refuses")
    ap.add_argument("--mean-work", type=float, default=1.0, help="mean work per request (units)")
    ap.add_argument("--work", choices=("exp", "lognormal", "fixed"), default="exp", help="work distribution")
    ap.add_argument("--work-cv", type=float, default=1.0, help="coefficient of variation for --work lognormal")
    ap.add_argument("--routers", type=int, default=1, help="routers sharing the nodes")
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
    ap.add_argument("--policies", type=names, default=("least-loaded", "round-robin", "random"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "placement.json")
    a = ap.parse_args(argv)
    unknown = [p for p in a.policies if p not in POLICIES]
    if unknown:
        ap.error(f"unknown policy {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    if a.requests < 2 or a.warmup < 0 or a.slots < 1 or a.routers < 1 or a.max_queue < 0 or a.max_attempts < 1:
        ap.error("need --requests >= 2, --warmup >= 0, --slots >= 1, --routers >= 1, --max-queue >= 0 "
                 "and --max-attempts >= 1")
    if min(a.speeds) <= 0 or a.mean_work <= 0 or min(a.loads) <= 0:
        ap.error("speeds, --mean-work and loads must be positive")
    if any(not 0 <= i < len(a.speeds) for i in a.unmeasured):
        ap.error(f"--unmeasured takes node indices from 0 to {len(a.speeds) - 1}")
    params = Params(speeds=a.speeds, slots=a.slots, max_queue=a.max_queue, mean_work=a.mean_work, work=a.work,
                    work_cv=a.work_cv, routers=a.routers, net_delay=a.net_delay, report_delay=a.report_delay,
                    coalesce=a.coalesce, heartbeat=a.heartbeat, throughput_noise=a.throughput_noise,
                    unmeasured=a.unmeasured, max_attempts=a.max_attempts, requests=a.requests, warmup=a.warmup,
                    seed=a.seed, loads=a.loads, policies=a.policies)
    return params, a.out


def main(argv: Sequence[str] | None = None) -> int:
    params, out = parse_args(argv)
    started = time.perf_counter()
    print(f"# Placement, simulated: {describe_params(params)}\n")
    cells: list[dict[str, Any]] = []
    for load in params.loads:
        level = [run_cell(params, policy, load) for policy in params.policies]
        cells.extend(level)
        print(f"## Load {load:.0%} of capacity ({load * params.capacity():.2f} req/s offered)\n")
        print(load_table(level, params.speeds) + "\n")
    result = verdict(cells)
    if result is not None:
        print(f"At {TARGET_LOAD:.0%} load: least-loaded p99 {result['least_loaded_p99_s']:.2f} s / round-robin p99 "
              f"{result['round_robin_p99_s']:.2f} s = {result['p99_ratio']:.3f} "
              f"(target <= {TARGET_P99_RATIO}), least-loaded throughput {result['throughput_fraction']:.1%} "
              f"of offered (target >= {TARGET_THROUGHPUT:.0%}): {'PASS' if result['pass'] else 'FAIL'}")
    wall = time.perf_counter() - started
    print(f"simulated in {wall:.1f} s wall time")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"params": asdict(params), "environment": environment(), "verdict": result,
                               "wall_s": wall, "cells": cells}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if result is None or result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
