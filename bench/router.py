"""Router benchmark: what does a hop through the router cost, and how fast does it follow the mesh?

Every process is real: `lanai node --no-router` and `lanai router --peers ...` started as
subprocesses on 127.0.0.1, called by grpc.aio from this process. The machine's cores are shared
by the node(s), the router and this client, so compare numbers within one run (ratios, A/B
interleaved), not across machines.

1. Hop latency, tiny request: the cheapest call the router *forwards* (Node/Describe and
   Mesh/ListNodes are answered by the router itself, and a request for a model no node serves
   is refused by the router without forwarding). Two kinds, both rejected by the node with
   INVALID_ARGUMENT and no inference, timed including that error status:
   - "no audio": `Transcribe` with no audio at all, refused by the servicer on the event loop
     before admission: the pure cost of a forwarded unary call;
   - "empty audio": `Transcribe` with `audio.encoded = b""` for the default model, refused
     inside an admission slot (thread pool), so each call also sends the router a load report
     or two over WatchLoad, as every real call does.
   Each call is made directly to the node, through a bare hop and through the router, in an
   order reversed every round (ABC CBA ...) after a warm-up. The bare hop is the reference for
   "one extra gRPC hop": this file run as `--bare-proxy-for HOST:PORT`, a minimal grpc.aio
   pass-through in its own process (one cached generic unary handler, the caller's deadline
   passed on, errors relayed with `context.abort`; no interceptors, placement, state, metrics
   or retries). Reports p50 and p99 of each side, the routed/direct ratio of the p50s (target
   <= 2.0: the router costs no more than one extra gRPC hop) and of the p99s, and the
   bare/direct and routed/bare ratios: what any Python hop costs on this machine, and what the
   router's own logic adds to it.
2. Hop latency, real transcription: a ~5 s espeak-ng clip, direct vs routed, interleaved.
   Reports p50 ratio (target <= 1.02), and the hop's cost as the difference of the medians of
   (client wall time - compute_ms the node reported), which is less noisy than the ratio.
3. Router throughput: "no audio" calls per second through the router with 1, 4 and 16
   concurrent callers in this process, each level split in alternating windows (direct, bare
   hop, routed, routed, bare hop, direct).
   On a 2-core machine the router, the node and this Python client compete for the same cores:
   the numbers are what this machine does, not the router's ceiling.
4. Node start -> first routed request: the router starts first with `--peers` naming a free
   port; then (right away, and in a second trial after the router has waited a few seconds, so
   its reconnect backoff has grown) the node is started on that port. From the node's Popen:
   its ready line, and the first routed call answered by the node (this client polls the
   router with the "no audio" call every 20 ms: INVALID_ARGUMENT means the node answered,
   UNAVAILABLE that the router had no node yet). The ready -> routed gap is the router's share:
   its watcher's reconnect backoff (0.2 s doubling to 2 s) and the channel's own reconnect
   backoff, then Describe and the first load report.
5. SIGKILL -> not chosen: two nodes behind a router (static peers); two callers send a ~1 s
   real clip through the router back to back (real calls, so `served_by` says which node served
   each one: the "no audio" call's error reply does not), while ListNodes(include_down) is
   polled every 10 ms. One node is SIGKILLed. Reports the time from the kill until ListNodes
   stops showing it UP (10 ms resolution), the router's own "is down" log line, the attempts the
   router sent to the dead node and retried elsewhere (its INFO log: "... trying another node";
   this includes the call that was running on the node when it died), with the time of the last
   one, and the client calls that failed (target: 0, the router retries unary calls that got no
   response on another node). The router runs at log level INFO here (its timestamps have 1 ms
   resolution, wall clock).
6. TLS vs plaintext through the router, same run: two fleets side by side, each a node and a
   router on 127.0.0.1. "plaintext" is the `--insecure` mode of parts 1-5 (one plaintext port per
   process; the router dials the node's client port). "TLS" is the secure default: the node
   creates a mesh in a LANAI_HOME of its own (sharing the prepared models through a symlink),
   `lanai mesh key create` makes an API key there, and the router runs in the same home (it
   holds the CA, so it issues itself a certificate) with `--peers` naming the node's mesh port:
   router -> node is mutual TLS, client -> router is TLS (verified against the mesh CA) with the
   key as per-call `authorization` metadata added by the `lanai` CLI's own interceptor
   (mesh/cli/connect.py, as every CLI command sends it), and, as a third, reference side,
   passed as `grpc.access_token_call_credentials` composed with the channel credentials (gRPC
   Python runs a call-credentials plugin in a new thread per call: this side shows what that
   costs, and why the CLI does not use it). Measured after a warm-up, the fleets
   strictly alternating (plaintext, TLS, plaintext, TLS with the key as call credentials, ...; processes
   that have just served a call answer the next one faster, so an ABC CBA order would favour
   the two TLS sides, which share their router and node; the plaintext side gets twice the
   calls): the two tiny calls of part 1 (target: TLS p50 <= 1.15x plaintext) and the real ~5 s
   clip of part 2 (target: TLS p50 <= 1.01x plaintext; that ratio also carries the difference
   between two node processes' compute, so the TLS cost is also given as the difference of the
   medians of wall time - the compute the node reported), p50 and p90. New TCP
   connections per call (target 0: channels are reused), to the router's client port and to
   the port the router dials on the node, during the measured calls: every TCP connection
   starts with a SYN, so a packet socket on `lo` counts the SYNs to those ports (a kernel BPF
   filter hands it only SYNs, so it costs nothing per call; it is read, without blocking,
   between calls; its drop counter must stay 0). That needs CAP_NET_RAW (root); as a
   cross-check, and alone without it, /proc/net/tcp{,6} is read before, every ~2 s between and
   after the calls: a connection is new if its (client, server) address pair is new, if either
   end is a different socket (inode), or if its TIME_WAIT timer restarted. That count is a
   lower bound: a connection closed with a reset leaves no TIME_WAIT behind. The machine-wide
   TCP ActiveOpens counter (/proc/net/snmp) over the same window is reported too: an upper
   bound that includes every other process on this machine.
   `--tls` runs only this part (JSON by default in bench/results/router-tls.json).

Prints markdown tables and a verdict line per target, and writes every raw number, with the
environment, to JSON. Every process is stopped with SIGTERM at the end of its part (SIGKILL
after 10 s, reported: a process that does not stop by itself is a finding too). Needs espeak-ng
on PATH and the model prepared in $LANAI_HOME.

Run:  LANAI_HOME=/path/to/home python bench/router.py [--quick] [--tls] [--out bench/results/router.json]
                                                      [--model tiny.en] [--calls 500] [--real 15]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, short, table  # noqa: E402
from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.cli import connect
from lanai.services import models as model_cache

TINY_RATIO_TARGET = 2.0
REAL_RATIO_TARGET = 1.02
TLS_TINY_TARGET = 1.15
TLS_REAL_TARGET = 1.01
CONN_SAMPLE_S = 2.0
"""Part 6: how often /proc/net/tcp is read between the measured calls (TIME_WAIT lasts 60 s)."""
START_TIMEOUT_S = 120.0
UP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
POLL_S = 0.02
LIST_POLL_S = 0.01
STOP_TIMEOUT_S = 10.0
LANAI = [sys.executable, "-m", "lanai.mesh.cli"]
READY = re.compile(r" ready on \S+:(\d+)")
MESH_PORT = re.compile(r" mesh_port=(\d+)")
UPSTREAM_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
"""The bare hop's channel to the node: the limits the router's channels set."""
SIDES = ("direct", "bare", "routed")
TLS_SIDES = ("plaintext", "tls", "tls-callcreds")
"""Part 6: through the --insecure router; through the TLS router with the key as metadata from the
CLI's interceptor; the same with the key as call credentials (reference, tiny calls only)."""
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+): (.*)$")

TINY_REQUESTS = {
    "no audio": speech_pb2.TranscribeRequest(),
    "empty audio": speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=b"")),
}
REAL_TEXT = ("The weather report says it will rain tomorrow afternoon, "
             "so please remember to take an umbrella.")
SHORT_TEXT = "Turn off the lights."


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    """A subprocess; times are time.perf_counter() readings."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    spawned_at: float
    spawned_wall: float
    ready_at: float = 0.0
    port: int = 0
    mesh_port: int = 0
    """The mutual-TLS port of a secure process (0 when --insecure)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mesh_address(self) -> str:
        return f"127.0.0.1:{self.mesh_port}"


@dataclass
class Stopped:
    name: str
    seconds: float
    """SIGTERM -> exit."""
    killed: bool
    """It had not exited STOP_TIMEOUT_S after SIGTERM: SIGKILLed."""
    returncode: int | None


class Fleet:
    """Starts processes and stops every one of them on exit (SIGTERM, then SIGKILL), last
    started first; `stops` records how each one went. `secure`: the secure default (a mesh in
    `home`, mutual TLS on a mesh port picked by the kernel, TLS + API keys on the client port)
    instead of --insecure."""

    def __init__(self, workdir: Path, home: Path, model: str, stops: list[Stopped], *, secure: bool = False) -> None:
        self._dir, self._home, self._model = workdir, home, model
        self._trust = ["--mesh-port", "0"] if secure else ["--insecure"]
        self._procs: list[Proc] = []
        self.stops = stops

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in reversed(self._procs):
            await self.stop(proc)

    async def stop(self, proc: Proc) -> None:
        if proc.process.returncode is None:
            self.stops.append(await stop(proc))

    def spawn_node(self, node_id: str, port: int = 0) -> Awaitable[Proc]:
        return self._spawn(node_id, [*LANAI, "--log-level", "WARNING",
            "node", *self._trust, "--services", "speech", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1", "--home", str(self._home),
            "--speech-models", self._model, "--discovery", "none", "--no-router", "--node-id", node_id,
            "--grace", "1"])

    def spawn_router(self, router_id: str, peers: Sequence[str], log_level: str = "WARNING") -> Awaitable[Proc]:
        return self._spawn(router_id, [*LANAI, "--log-level", log_level,
            "router", *self._trust, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--home", str(self._home),
            "--peers", ",".join(peers), "--node-id", router_id, "--grace", "1"])

    async def node(self, node_id: str, port: int = 0) -> Proc:
        proc = await self.spawn_node(node_id, port)
        await wait_ready(proc)
        return proc

    async def router(self, router_id: str, peers: Sequence[str], log_level: str = "WARNING") -> Proc:
        proc = await self.spawn_router(router_id, peers, log_level)
        await wait_ready(proc)
        return proc

    async def bare_proxy(self, target: str) -> Proc:
        proc = await self._spawn("bare-proxy", [sys.executable, str(Path(__file__).resolve()),
                                                "--bare-proxy-for", target])
        await wait_ready(proc)
        return proc

    async def _spawn(self, name: str, argv: list[str]) -> Proc:
        log_path = self._dir / f"{name}.log"
        with log_path.open("wb") as log:
            spawned_at, spawned_wall = time.perf_counter(), time.time()
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=log, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        proc = Proc(name, process, log_path, spawned_at, spawned_wall)
        self._procs.append(proc)
        return proc


async def wait_ready(proc: Proc) -> None:
    """Read the process's stdout until its ready line; sets ready_at and port."""
    stdout = proc.process.stdout
    assert stdout is not None
    deadline = time.perf_counter() + START_TIMEOUT_S
    while (left := deadline - time.perf_counter()) > 0:
        try:
            line = (await asyncio.wait_for(stdout.readline(), left)).decode(errors="replace")
        except TimeoutError:
            break
        if not line:
            break
        if match := READY.search(line):
            proc.ready_at, proc.port = time.perf_counter(), int(match.group(1))
            if mesh := MESH_PORT.search(line):
                proc.mesh_port = int(mesh.group(1))
            return
    await asyncio.sleep(0.2)  # let a dying process finish its log
    tail = proc.log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{proc.name} did not become ready (exit code {proc.process.returncode}); its log:\n{tail}")


async def stop(proc: Proc) -> Stopped:
    started = time.perf_counter()
    killed = False
    if proc.process.returncode is None:
        proc.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            killed = True
            proc.process.kill()
            await proc.process.wait()
    return Stopped(proc.name, time.perf_counter() - started, killed, proc.process.returncode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                      ("grpc.max_send_message_length", 64 << 20)])


async def wait_up(mesh: mesh_pb2_grpc.MeshAsyncStub, addresses: Sequence[str],
                  timeout: float = UP_TIMEOUT_S) -> None:
    """Poll the router's ListNodes until every address is listed UP."""
    deadline = time.perf_counter() + timeout
    states: dict[str, int] = {}
    while time.perf_counter() < deadline:
        reply = await mesh.ListNodes(mesh_pb2.ListNodesRequest(include_down=True), timeout=5)
        states = {n.address: n.state for n in reply.nodes}
        if all(states.get(a) == mesh_pb2.NODE_STATE_UP for a in addresses):
            return
        await asyncio.sleep(POLL_S)
    seen = {a: mesh_pb2.NodeState.Name(s) for a, s in states.items()}
    raise RuntimeError(f"the router never listed {', '.join(addresses)} as UP within {timeout:.0f} s: {seen}")


# ---------------------------------------------------------------- calls


async def tiny_call(stub: speech_pb2_grpc.SpeechAsyncStub, request: speech_pb2.TranscribeRequest) -> float:
    """Seconds for one tiny call, which the node must refuse with INVALID_ARGUMENT."""
    started = time.perf_counter()
    try:
        await stub.Transcribe(request, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is not grpc.StatusCode.INVALID_ARGUMENT:
            raise
        return time.perf_counter() - started
    raise RuntimeError("the node accepted a request without audio")


async def real_call(stub: speech_pb2_grpc.SpeechAsyncStub,
                    wav: bytes) -> tuple[float, speech_pb2.TranscribeResponse]:
    started = time.perf_counter()
    response = await stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)),
                                     timeout=CALL_TIMEOUT_S)
    return time.perf_counter() - started, response


def say(text: str, workdir: Path) -> tuple[bytes, float]:
    """espeak-ng's WAV of the text, and its duration in seconds."""
    path = workdir / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    data = path.read_bytes()
    with wave.open(io.BytesIO(data)) as w:
        return data, w.getnframes() / w.getframerate()


# ---------------------------------------------------------------- 1. and 2. hop latency


@dataclass
class HopResult:
    request: str
    target: float
    seconds: dict[str, list[float]] = field(default_factory=dict)
    """Side ("direct", "bare", "routed") -> client wall time of each call."""
    compute_s: dict[str, list[float]] = field(default_factory=dict)
    """Side -> compute_ms the node reported (real transcriptions only)."""
    audio_s: float = 0.0
    top: str = "routed"
    bottom: str = "direct"
    """The target is on p50(top) / p50(bottom)."""

    def p(self, side: str, q: float) -> float | None:
        return pct(self.seconds[side], q) if self.seconds.get(side) else None

    def ratio(self, top: str, bottom: str, q: float = 50) -> float | None:
        a, b = self.p(top, q), self.p(bottom, q)
        return None if a is None or b is None else a / b

    @property
    def p50_ratio(self) -> float:
        return pct(self.seconds[self.top], 50) / pct(self.seconds[self.bottom], 50)

    @property
    def passed(self) -> bool:
        return self.p50_ratio <= self.target


Call = Callable[[], Awaitable[None]]


async def rotate(n: int, calls: Sequence[Call]) -> None:
    """n rounds of every call, the order reversed every other round (ABC CBA ...), so drift
    and warm-up effects hit every side alike."""
    for i in range(n):
        for call in (calls if i % 2 == 0 else calls[::-1]):
            await call()


async def measure_tiny(stubs: dict[str, speech_pb2_grpc.SpeechAsyncStub], calls: int,
                       warmup: int) -> list[HopResult]:
    results = {name: HopResult(name, TINY_RATIO_TARGET, {side: [] for side in stubs}) for name in TINY_REQUESTS}

    def one(side: str, name: str, keep: bool) -> Call:
        async def call() -> None:
            seconds = await tiny_call(stubs[side], TINY_REQUESTS[name])
            if keep:
                results[name].seconds[side].append(seconds)
        return call

    for name in TINY_REQUESTS:
        await rotate(warmup, [one(side, name, False) for side in stubs])
    for _ in range(calls // 2):  # the kinds interleaved too, so both see the same machine
        for name in TINY_REQUESTS:
            await rotate(2, [one(side, name, True) for side in stubs])
    return list(results.values())


def real_calls(result: HopResult, stubs: Mapping[str, Any], wav: bytes) -> Callable[[str, bool], Call]:
    """one(side, keep): a real transcription on that side, its wall and compute time kept when `keep`."""
    def one(side: str, keep: bool) -> Call:
        async def call() -> None:
            await asyncio.sleep(0.05)  # neither side starts while the other's threads still spin
            seconds, response = await real_call(stubs[side], wav)
            if keep:
                result.seconds[side].append(seconds)
                result.compute_s[side].append(response.served_by.compute_ms / 1000)
        return call
    return one


async def measure_real(stubs: dict[str, speech_pb2_grpc.SpeechAsyncStub], wav: bytes, audio_s: float,
                       calls: int) -> HopResult:
    result = HopResult("real", REAL_RATIO_TARGET, {side: [] for side in stubs}, {side: [] for side in stubs},
                       audio_s=audio_s)

    one = real_calls(result, stubs, wav)

    await rotate(1, [one(side, False) for side in stubs])  # warm-up
    await rotate(calls, [one(side, True) for side in stubs])
    return result


# ---------------------------------------------------------------- 3. throughput


@dataclass
class Window:
    side: str
    concurrency: int
    seconds: float
    ok: int
    errors: dict[str, int]
    latencies_s: list[float]

    @property
    def calls_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def blast(stub: speech_pb2_grpc.SpeechAsyncStub, side: str, concurrency: int, seconds: float) -> Window:
    """`concurrency` callers sending "no audio" calls back to back for `seconds`."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    request = TINY_REQUESTS["no audio"]
    started = time.perf_counter()
    deadline = started + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            try:
                latencies.append(await tiny_call(stub, request))
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return Window(side, concurrency, time.perf_counter() - started, len(latencies), errors, latencies)


async def measure_throughput(stubs: dict[str, speech_pb2_grpc.SpeechAsyncStub], levels: Sequence[int],
                             seconds: float) -> list[Window]:
    """Per level, a window of seconds/2 for each side, then each again in reverse order."""
    order = [*stubs, *reversed(stubs)]
    return [await blast(stubs[side], side, n, seconds / 2) for n in levels for side in order]


def merged(windows: Sequence[Window], side: str, n: int) -> Window:
    mine = [w for w in windows if w.side == side and w.concurrency == n]
    errors: dict[str, int] = {}
    for w in mine:
        for code, count in w.errors.items():
            errors[code] = errors.get(code, 0) + count
    return Window(side, n, sum(w.seconds for w in mine), sum(w.ok for w in mine), errors,
                  [s for w in mine for s in w.latencies_s])


# ---------------------------------------------------------------- 4. node start -> first routed


@dataclass
class ColdStart:
    trial: int
    router_idle_s: float
    """How long the router had been waiting for the node (and backing off) before it started."""
    ready_s: float
    """Node Popen -> its ready line."""
    first_routed_sent_s: float
    """Node Popen -> sending the first poll the node answered (through the router)."""
    first_routed_s: float
    """Node Popen -> that poll's answer."""
    polls_refused: dict[str, int]
    """Polls before it, by status (the router answers UNAVAILABLE while it knows no node)."""

    @property
    def router_share_s(self) -> float:
        return self.first_routed_s - self.ready_s


async def cold_start(fleet: Fleet, trial: int, router_idle_s: float) -> ColdStart:
    port = free_port()
    router = await fleet.router(f"coldrouter{trial}", [f"127.0.0.1:{port}"])
    async with channel(router.address) as ch:
        stub = speech_pb2_grpc.SpeechStub(ch)
        await tiny_call_refused(stub)  # the router is serving (and refusing: no node yet)
        await asyncio.sleep(router_idle_s)
        node = await fleet.spawn_node(f"coldnode{trial}", port)
        ready = asyncio.ensure_future(wait_ready(node))
        refused: dict[str, int] = {}
        try:
            while True:
                sent = time.perf_counter()
                if sent - node.spawned_at > START_TIMEOUT_S:
                    raise RuntimeError(f"no routed call reached {node.name} in {START_TIMEOUT_S:.0f} s")
                try:
                    await tiny_call(stub, TINY_REQUESTS["no audio"])
                    answered = time.perf_counter()
                    break
                except grpc.aio.AioRpcError as exc:
                    refused[exc.code().name] = refused.get(exc.code().name, 0) + 1
                await asyncio.sleep(max(0.0, POLL_S - (time.perf_counter() - sent)))
            await ready
        finally:
            ready.cancel()
    start = node.spawned_at
    return ColdStart(trial, router_idle_s, node.ready_at - start, sent - start, answered - start, refused)


async def tiny_call_refused(stub: speech_pb2_grpc.SpeechAsyncStub) -> None:
    try:
        await stub.Transcribe(TINY_REQUESTS["no audio"], timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            return
        raise
    raise RuntimeError("a router with no node accepted a call")


# ---------------------------------------------------------------- 5. SIGKILL -> not chosen


@dataclass
class CallRecord:
    sent_s: float
    """Seconds relative to the SIGKILL (negative: before it)."""
    done_s: float
    code: str
    served_by: str


@dataclass
class KillTrial:
    trial: int
    victim: str
    survivor: str
    calls: list[CallRecord]
    list_polls: list[tuple[float, str, str]]
    """(seconds after the kill, victim's state in ListNodes, reason), one per poll after the kill."""
    router_log: list[tuple[float, str]]
    """(seconds after the kill, message) of the router's log lines about the victim."""
    not_up_s: float | None = None
    down_logged_s: float | None = None
    retried_attempts: int = 0
    last_attempt_s: float | None = None

    @property
    def failed_after_kill(self) -> list[CallRecord]:
        return [c for c in self.calls if c.done_s >= 0 and c.code != "OK"]

    @property
    def in_flight_at_kill(self) -> list[CallRecord]:
        return [c for c in self.calls if c.sent_s < 0 <= c.done_s]

    @property
    def served_by_victim_after_kill(self) -> int:
        return sum(1 for c in self.calls if c.done_s >= 0 and c.served_by == self.victim)


async def kill_trial(fleet: Fleet, trial: int, wav: bytes, before_s: float, after_s: float) -> KillTrial:
    victim, survivor = await asyncio.gather(fleet.node(f"victim{trial}"), fleet.node(f"survivor{trial}"))
    router = await fleet.router(f"killrouter{trial}", [victim.address, survivor.address], log_level="INFO")
    async with channel(router.address) as ch:
        mesh, stub = mesh_pb2_grpc.MeshStub(ch), speech_pb2_grpc.SpeechStub(ch)
        await wait_up(mesh, [victim.address, survivor.address])
        raw_calls: list[tuple[float, float, str, str]] = []
        polls: list[tuple[float, str, str]] = []
        stopping = asyncio.Event()
        callers = [asyncio.ensure_future(keep_calling(stub, wav, raw_calls, stopping)) for _ in range(2)]
        poller = asyncio.ensure_future(keep_listing(mesh, victim.address, polls, stopping))
        try:
            await victim_has_served(raw_calls, victim.name, before_s)
            killed_at, killed_wall = time.perf_counter(), time.time()
            victim.process.send_signal(signal.SIGKILL)
            await asyncio.sleep(after_s)
        finally:
            stopping.set()
            await asyncio.gather(*callers, poller, return_exceptions=True)
    await fleet.stop(router)  # flush its log
    calls = [CallRecord(s - killed_at, d - killed_at, code, by) for s, d, code, by in raw_calls]
    after = [(t - killed_at, state, reason) for t, state, reason in polls if t >= killed_at]
    result = KillTrial(trial, victim.name, survivor.name, calls, after,
                       router_lines(router.log_path, victim.address, killed_wall))
    summarise_kill(result)
    return result


async def keep_calling(stub: speech_pb2_grpc.SpeechAsyncStub, wav: bytes, into: list[tuple[float, float, str, str]],
                       stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        sent = time.perf_counter()
        try:
            _, response = await real_call(stub, wav)
            into.append((sent, time.perf_counter(), "OK", response.served_by.node_id))
        except grpc.aio.AioRpcError as exc:
            into.append((sent, time.perf_counter(), exc.code().name, ""))
            await asyncio.sleep(POLL_S)


async def keep_listing(mesh: mesh_pb2_grpc.MeshAsyncStub, address: str, into: list[tuple[float, str, str]],
                       stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        reply = await mesh.ListNodes(mesh_pb2.ListNodesRequest(include_down=True), timeout=5)
        entry = next((n for n in reply.nodes if n.address == address), None)
        state = mesh_pb2.NodeState.Name(entry.state) if entry else "(not listed)"
        into.append((time.perf_counter(), state.removeprefix("NODE_STATE_"), entry.state_reason if entry else ""))
        await asyncio.sleep(LIST_POLL_S)


async def victim_has_served(calls: list[tuple[float, float, str, str]], victim: str, at_least_s: float) -> None:
    """Wait at least `at_least_s`, and until the victim served a call (so it was being chosen)."""
    started = time.perf_counter()
    await asyncio.sleep(at_least_s)
    while not any(by == victim for *_, by in calls):
        if time.perf_counter() - started > 30:
            raise RuntimeError(f"the router sent no call to {victim} in 30 s")
        await asyncio.sleep(POLL_S)


def router_lines(log_path: Path, address: str, killed_wall: float) -> list[tuple[float, str]]:
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match is not None and (f"({address})" in match.group(4) or f" at {address} " in match.group(4)):
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            lines.append((stamp - killed_wall, match.group(4)))
    return lines


def summarise_kill(r: KillTrial) -> None:
    r.not_up_s = next((t for t, state, _ in r.list_polls if state != "UP"), None)
    r.down_logged_s = next((t for t, msg in r.router_log if t >= -0.002 and " is down" in msg), None)
    attempts = [t for t, msg in r.router_log if t >= -0.002 and "trying another node" in msg]
    r.retried_attempts = len(attempts)
    r.last_attempt_s = max(attempts) if attempts else None


# ---------------------------------------------------------------- 6. TLS vs plaintext


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING", "0C": "NEW_SYN_RECV"}


@dataclass(frozen=True)
class Socket:
    """One end of a TCP connection as /proc/net/tcp lists it."""

    state: str
    inode: int
    """0 once in TIME_WAIT (the socket is gone, the kernel keeps the connection's record)."""
    timer_ticks: int
    """What is left of the socket's timer, in clock ticks: in TIME_WAIT, of its 60 s."""


Ends = dict[tuple[str, str, str], Socket]
"""(client address, server address, "client" or "server") -> that end; addresses as /proc
writes them (hex IP:port), so both ends of one loopback connection name it alike when their
sockets are of one family (gRPC's are IPv6 sockets with IPv4-mapped addresses; a connection
between an IPv4 and an IPv6 socket would count twice: an overcount, never a miss)."""


def tcp_ends(server_ports: Collection[int]) -> Ends:
    """Every end of every TCP connection on this machine whose server side is one of
    `server_ports`, in any state but LISTEN."""
    found: Ends = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], TCP_STATES.get(fields[3], fields[3])
            if state == "LISTEN":
                continue
            timer = fields[5].split(":")  # "tr:tm->when"
            end = Socket(state, int(fields[9]), int(timer[1], 16) if timer[0] != "00" else 0)
            if int(local.rsplit(":", 1)[1], 16) in server_ports:
                found[(remote, local, "server")] = end
            elif int(remote.rsplit(":", 1)[1], 16) in server_ports:
                found[(local, remote, "client")] = end
    return found


def opened_between(before: Ends, after: Ends) -> set[tuple[str, str]]:
    """The connections (client, server) of `after` opened since `before` was read: a new address
    pair, a different socket at either end, or a TIME_WAIT that started again (a later
    connection reusing the pair, which Linux allows on loopback)."""
    opened = set()
    for key, now in after.items():
        then = before.get(key)
        if (then is None or (now.inode and now.inode != then.inode)
                or (now.state == then.state == "TIME_WAIT" and now.timer_ticks > then.timer_ticks)):
            opened.add(key[:2])
    return opened


SYN_FILTER = ((0x28, 0, 0, 12), (0x15, 0, 9, 0x800), (0x30, 0, 0, 23), (0x15, 0, 7, 6), (0x28, 0, 0, 20),
              (0x45, 5, 0, 0x1FFF), (0xB1, 0, 0, 14), (0x50, 0, 0, 27), (0x54, 0, 0, 0x12), (0x15, 0, 1, 2),
              (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0))
"""Classic BPF (`tcpdump -dd 'ip and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn'`): IPv4 TCP
SYNs without ACK, i.e. connection attempts; the kernel drops every other packet."""
SOL_PACKET, PACKET_STATISTICS, SO_ATTACH_FILTER, ETH_P_IP, PACKET_OUTGOING = 263, 6, 26, 0x0800, 4


class SynCounter:
    """Connection attempts to `ports` on the loopback interface, counted from the packets
    themselves: a packet socket on `lo` that the kernel hands only SYNs (so it costs nothing per
    call), read without blocking between calls. Exact where /proc/net/tcp is not: a connection
    closed with a reset leaves no TIME_WAIT behind. Needs CAP_NET_RAW: `open` returns None
    without it."""

    def __init__(self, sock: socket.socket, ports: Collection[int]) -> None:
        self._sock, self._ports = sock, set(ports)
        self._program: Any = None
        self.seen: dict[tuple[bytes, int, bytes, int, int], int] = {}
        """(source IP, source port, destination IP, destination port, sequence number) -> destination
        port: one entry per attempt (a retransmitted SYN repeats its sequence number)."""

    @classmethod
    def open(cls, ports: Collection[int]) -> SynCounter | None:
        import ctypes
        import struct

        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: no packets until bound
        except (OSError, AttributeError):
            return None
        try:
            program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in SYN_FILTER))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                            struct.pack("HL", len(SYN_FILTER), ctypes.addressof(program)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("lo", ETH_P_IP))
            sock.setblocking(False)
        except OSError:
            sock.close()
            return None
        counter = cls(sock, ports)
        counter._program = program  # the kernel copied it; kept anyway for the socket's lifetime
        return counter

    def read(self) -> None:
        while True:
            try:
                packet, address = self._sock.recvfrom(256)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:  # loopback shows each packet leaving and arriving
                continue
            ip = packet[14:]
            tcp = ip[4 * (ip[0] & 0x0F):]
            dport = int.from_bytes(tcp[2:4], "big")
            if dport in self._ports:
                self.seen[(ip[12:16], int.from_bytes(tcp[0:2], "big"), ip[16:20], dport,
                           int.from_bytes(tcp[4:8], "big"))] = dport

    def drops(self) -> int:
        """Packets the kernel dropped for want of buffer since the last call (0: none missed)."""
        import struct

        return int(struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1])

    def close(self) -> None:
        self._sock.close()


def tcp_active_opens() -> int:
    """This machine's (network namespace's) count of connect()s that sent a SYN, all processes."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])


@dataclass
class Connections:
    """TCP connections opened to each watched server port during one measured window."""

    window: str
    ports: dict[str, int]
    """Role ("TLS: router -> node mesh port", ...) -> the server port."""
    measured: bool = True
    """False for the control window (the clients' first calls, which must connect): no target."""
    calls: dict[str, int] = field(default_factory=dict)
    """Role -> calls that went over it in the window."""
    opened: dict[str, int] = field(default_factory=dict)
    """Role -> connections opened: SYNs seen on lo (exact), else the /proc/net/tcp count."""
    method: str = ""
    """"SYNs on lo" or "/proc/net/tcp" (no CAP_NET_RAW: a lower bound)."""
    opened_proc: dict[str, int] = field(default_factory=dict)
    """Role -> connections opened by the /proc/net/tcp readings (a lower bound: misses resets)."""
    syn_drops: int = 0
    open_at_end: dict[str, int] = field(default_factory=dict)
    """Role -> connections ESTABLISHED at the end of the window."""
    machine_active_opens: int = 0
    """Machine-wide ActiveOpens over the window (every process: an upper bound)."""
    seconds: float = 0.0
    samples: int = 0
    seen: list[str] = field(default_factory=list)
    """Each new connection: when (s into the window), where, and its ends' states then."""

    def per_call(self, role: str) -> float | None:
        return self.opened[role] / self.calls[role] if self.calls.get(role) else None

    @property
    def tls_passed(self) -> bool:
        return self.syn_drops == 0 and all(self.opened[r] == 0 for r in self.ports if r.startswith("TLS"))


class ConnWatch:
    """Counts the connections opened to each watched port between start() and finish(): the
    SYNs a SynCounter sees, and, as a cross-check (or alone, without CAP_NET_RAW), /proc/net/tcp
    read at start(), on tick() at most every CONN_SAMPLE_S, and at finish(), comparing
    consecutive readings."""

    def __init__(self, window: str, ports: Mapping[str, int], *, measured: bool = True) -> None:
        self.result = Connections(window, dict(ports), measured=measured)
        self._by_port = {port: role for role, port in ports.items()}
        self._opened = {role: 0 for role in ports}
        self._last: Ends = {}
        self._last_at = self._started = 0.0
        self._opens = 0
        self._syns = SynCounter.open(self._by_port)

    def start(self) -> None:
        if self._syns is not None:
            self._syns.read()  # what came before the window
            self._syns.seen.clear()
            self._syns.drops()
        self._last, self._opens = tcp_ends(self._by_port), tcp_active_opens()
        self._last_at = self._started = time.perf_counter()
        self.result.samples = 1

    def tick(self) -> None:
        if self._started and time.perf_counter() - self._last_at >= CONN_SAMPLE_S:  # not before start()
            self._sample()

    def _sample(self) -> Ends:
        if self._syns is not None:
            self._syns.read()
        now = tcp_ends(self._by_port)
        for client, server in opened_between(self._last, now):
            role = self._by_port[int(server.rsplit(":", 1)[1], 16)]
            self._opened[role] += 1
            states = "/".join(f"{end} {now[(client, server, end)].state}" for end in ("client", "server")
                              if (client, server, end) in now)
            self.result.seen.append(f"{time.perf_counter() - self._started:.1f} s: {role}: {client} -> {server} "
                                    f"({states})")
        self._last, self._last_at = now, time.perf_counter()
        self.result.samples += 1
        return now

    def finish(self, calls: Mapping[str, int]) -> Connections:
        end = self._sample()
        r = self.result
        r.machine_active_opens = tcp_active_opens() - self._opens
        r.seconds = time.perf_counter() - self._started
        r.calls = dict(calls)
        r.opened_proc = dict(self._opened)
        if self._syns is None:
            r.method, r.opened = "/proc/net/tcp", dict(self._opened)
        else:
            r.method, r.syn_drops = "SYNs on lo", self._syns.drops()
            r.opened = {role: sum(1 for port in self._syns.seen.values() if port == r.ports[role]) for role in r.ports}
            self._syns.close()
        established = {(c, s) for (c, s, _), e in end.items() if e.state == "ESTABLISHED"}
        r.open_at_end = {role: sum(1 for _, s in established if int(s.rsplit(":", 1)[1], 16) == port)
                         for role, port in r.ports.items()}
        return r


@dataclass
class TlsRun:
    tiny: list[HopResult] = field(default_factory=list)
    real: HopResult | None = None
    connections: list[Connections] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)
    """How the secure side came up: ports, refusals seen while waiting for the key and the node."""


async def alternate(rounds: int, plaintext: Call, tls: Sequence[Call],
                    after_round: Callable[[], None] | None = None) -> None:
    """Rounds of P T1 P T2 ...: a call through one fleet never follows one through the same
    fleet. (Processes that have just served a call answer the next one faster, so an ABC CBA
    order over plaintext, tls and tls-callcreds would favour the two TLS sides, which share their
    router and node.) `after_round` runs, untimed, after each round."""
    for _ in range(rounds):
        for call in tls:
            await plaintext()
            await call()
        if after_round is not None:
            after_round()


async def measure_tls_tiny(stubs: Mapping[str, Any], calls: int, warmup: int, watch: ConnWatch) -> list[HopResult]:
    """`calls` per TLS side and kind (the plaintext side gets twice as many: one before each TLS call)."""
    results = {name: HopResult(name, TLS_TINY_TARGET, {side: [] for side in stubs}, top="tls", bottom="plaintext")
               for name in TINY_REQUESTS}

    def one(side: str, name: str, keep: bool) -> Call:
        async def call() -> None:
            seconds = await tiny_call(stubs[side], TINY_REQUESTS[name])
            if keep:
                results[name].seconds[side].append(seconds)
        return call

    tls_sides = [side for side in stubs if side != "plaintext"]
    for keep, rounds in ((False, warmup), (True, calls)):
        if keep:
            watch.start()
        for _ in range(rounds):
            for name in TINY_REQUESTS:  # the kinds interleaved too, so both see the same machine
                await alternate(1, one("plaintext", name, keep), [one(side, name, keep) for side in tls_sides],
                                watch.tick)
    return list(results.values())


async def measure_tls_real(stubs: Mapping[str, Any], wav: bytes, audio_s: float, calls: int,
                           watch: ConnWatch) -> HopResult:
    result = HopResult("real", TLS_REAL_TARGET, {side: [] for side in stubs}, {side: [] for side in stubs},
                       audio_s=audio_s, top="tls", bottom="plaintext")

    one = real_calls(result, stubs, wav)

    await alternate(1, one("plaintext", False), [one("tls", False)])  # warm-up
    watch.start()
    await alternate(calls, one("plaintext", True), [one("tls", True)], watch.tick)
    return result


def shared_home(path: Path, home: Path) -> Path:
    """A LANAI_HOME of its own (so its own mesh) whose models are those prepared in `home`."""
    path.mkdir()
    (path / "models").symlink_to((home / "models").resolve())
    return path


async def create_key(home: Path, name: str = "bench") -> str:
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "mesh", "key", "create", name, "--home", str(home), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "LANAI_HOME": str(home)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    key = next((w for w in out.decode().split() if w.startswith("lanai_")), None)
    if proc.returncode or key is None:
        raise RuntimeError(f"`lanai mesh key create` failed ({proc.returncode}): {err.decode()[-1000:]}")
    return key


async def until_forwarded(stub: speech_pb2_grpc.SpeechAsyncStub,
                          timeout: float = UP_TIMEOUT_S) -> dict[str, int]:
    """Poll with the "no audio" call until the node answers it through the router (the key is
    live on the router, the node is UP there); the refusals seen before, by status."""
    refused: dict[str, int] = {}
    deadline = time.perf_counter() + timeout
    while True:
        try:
            await tiny_call(stub, TINY_REQUESTS["no audio"])  # type: ignore[arg-type]
            return refused
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE) \
                    or time.perf_counter() > deadline:
                raise
            refused[exc.code().name] = refused.get(exc.code().name, 0) + 1
        await asyncio.sleep(POLL_S)


def secure_channel(address: str, credentials: grpc.ChannelCredentials,
                   interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, credentials, options=[("grpc.max_receive_message_length", 64 << 20),
                                                                  ("grpc.max_send_message_length", 64 << 20)],
                                   interceptors=interceptors)


async def tls_phase(plan: Plan, workdir: Path, home: Path, clip: tuple[bytes, float], results: Results) -> None:
    run = results.tls = TlsRun()
    tls_home = shared_home(workdir / "tls-home", home)
    async with Fleet(workdir, home, plan.model, results.stops) as plain, \
            Fleet(workdir, tls_home, plan.model, results.stops, secure=True) as secure:
        plain_node, tls_node = await asyncio.gather(plain.node("plainnode"), secure.node("tlsnode"))
        key = await create_key(tls_home)  # the node made the mesh; the router starts with the key in its policy
        plain_router, tls_router = await asyncio.gather(plain.router("plainrouter", [plain_node.address]),
                                                        secure.router("tlsrouter", [tls_node.mesh_address]))
        tls = grpc.ssl_channel_credentials((tls_home / "mesh" / "ca.crt").read_bytes())
        call_creds = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(key))
        key_md = connect.aio_key_interceptors(key)
        ports = {"plaintext: client -> router": plain_router.port, "plaintext: router -> node": plain_node.port,
                 "TLS: client -> router": tls_router.port, "TLS: router -> node mesh port": tls_node.mesh_port}
        run.setup["ports"] = {**ports, "TLS: node client port (unused)": tls_node.port,
                              "TLS: router mesh port (unused)": tls_router.mesh_port}
        # Both routers reach their nodes first (the TLS router's probe, then its channel), seen through
        # throwaway channels that share no connection with the measured ones.
        own = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(plain_router.address, options=own) as plain_ch, \
                grpc.aio.secure_channel(tls_router.address, tls, options=own, interceptors=key_md) as tls_ch:
            run.setup["refused_before_up"] = {
                "plaintext": await until_forwarded(speech_pb2_grpc.SpeechStub(plain_ch)),
                "tls": await until_forwarded(speech_pb2_grpc.SpeechStub(tls_ch))}
            await wait_up(mesh_pb2_grpc.MeshStub(plain_ch), [plain_node.address])
            await wait_up(mesh_pb2_grpc.MeshStub(tls_ch), [tls_node.mesh_address])
        async with channel(plain_router.address) as plain_ch, \
                secure_channel(tls_router.address, tls, key_md) as tls_ch, \
                secure_channel(tls_router.address, call_creds) as cc_ch:
            stubs: dict[str, Any] = {"plaintext": speech_pb2_grpc.SpeechStub(plain_ch),
                                     "tls": speech_pb2_grpc.SpeechStub(tls_ch),
                                     "tls-callcreds": speech_pb2_grpc.SpeechStub(cc_ch)}
            # The control: the channels connect on their first call (the counters must see that).
            watch = ConnWatch("first calls (control)", ports, measured=False)
            watch.start()
            refused = run.setup["refused_before_forwarded"] = {side: await until_forwarded(stub)
                                                               for side, stub in stubs.items()}
            run.connections.append(watch.finish(calls_over(ports, {s: 1 + sum(refused[s].values()) for s in TLS_SIDES})))
            watch = ConnWatch("tiny calls", ports)
            run.tiny = await measure_tls_tiny(stubs, plan.tls_calls, plan.tls_warmup, watch)
            run.connections.append(watch.finish(calls_over(ports, {s: sum(len(r.seconds[s]) for r in run.tiny)
                                                                   for s in TLS_SIDES})))
            emit("\n## 6. TLS vs plaintext through the router: tiny requests (refused by the node with "
                 "INVALID_ARGUMENT), interleaved\n")
            emit(tls_table(run.tiny))
            watch = ConnWatch("real transcriptions", ports)
            real_stubs = {s: stubs[s] for s in ("plaintext", "tls")}
            run.real = await measure_tls_real(real_stubs, *clip, plan.tls_real, watch)
            run.connections.append(watch.finish(calls_over(ports, {s: len(run.real.seconds[s]) for s in real_stubs})))
            emit(f"\n### TLS vs plaintext, real transcription ({plan.model}, default node config), interleaved\n")
            emit(tls_table([run.real]))
            emit("\n" + tls_real_summary(run.real))
            emit("\n### New TCP connections: the clients' first calls (a control: they must connect), then the "
                 "measured calls (after the warm-up)\n")
            emit(connections_table(run.connections))


def calls_over(ports: Mapping[str, int], calls: Mapping[str, int]) -> dict[str, int]:
    """Role -> calls that went over it: the plaintext side's over the plaintext ports, both TLS sides' over the TLS ones."""
    tls = sum(n for side, n in calls.items() if side.startswith("tls"))
    return {role: calls.get("plaintext", 0) if role.startswith("plaintext") else tls for role in ports}


def tls_table(results: Sequence[HopResult]) -> str:
    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = [[r.request + (f" ({r.audio_s:.1f} s clip)" if r.audio_s else ""),
             f"{len(r.seconds['plaintext'])} / {len(r.seconds['tls'])}",
             ms(r.p("plaintext", 50)), ms(r.p("tls", 50)), ratio(r.ratio("tls", "plaintext")),
             ms(r.p("plaintext", 90)), ms(r.p("tls", 90)), ratio(r.ratio("tls", "plaintext", 90)),
             ms(r.p("tls-callcreds", 50)), ratio(r.ratio("tls-callcreds", "plaintext")),
             f"<= {r.target:.2f}", verdict(r.passed)] for r in results]
    return table(["request", "calls plaintext / TLS", "plaintext p50 ms", "TLS p50 ms", "TLS/plaintext p50",
                  "plaintext p90 ms", "TLS p90 ms", "TLS/plaintext p90", "TLS, key as call credentials p50 ms",
                  "call credentials/plaintext p50", "target (TLS/plaintext p50)", "verdict"], rows)


def tls_real_summary(r: HopResult) -> str:
    overhead = real_overhead_ms(r)
    extra = overhead["tls"] - overhead["plaintext"]
    compute = statistics.median(r.compute_s["tls"]) / statistics.median(r.compute_s["plaintext"])
    return (f"wall - node compute, median: plaintext {overhead['plaintext']:.1f} ms, TLS {overhead['tls']:.1f} ms: "
            f"TLS costs {extra:.1f} ms, {extra / (1000 * pct(r.seconds['plaintext'], 50)) * 100:.2f}% of the "
            f"plaintext p50. The node's own compute differed by {abs(compute - 1) * 100:.1f}% between the sides "
            "(same work, two node processes: the noise floor of the wall-time ratio).")


def connections_table(windows: Sequence[Connections]) -> str:
    rows = []
    for w in windows:
        for role, port in w.ports.items():
            per_call = w.per_call(role)
            rows.append([w.window, role, port, w.calls[role], w.opened[role], w.opened_proc[role],
                         "-" if per_call is None else f"{per_call:.3f}", w.open_at_end[role],
                         "0" if w.measured and role.startswith("TLS") else "-",
                         verdict(w.opened[role] == 0) if w.measured and role.startswith("TLS") else "-"])
    out = table(["window", "connection", "server port", "calls over it", f"new connections ({windows[0].method})",
                 "new by /proc/net/tcp", "per call", "established at end", "target (new)", "verdict"], rows)
    return out + "\n\n" + "; ".join(
        f"{w.window}: {w.seconds:.1f} s, {w.samples} readings of /proc/net/tcp, {w.syn_drops} SYN packets dropped "
        f"by the counter's socket, machine-wide TCP ActiveOpens +{w.machine_active_opens} (every process on this "
        "machine)" for w in windows)


# ---------------------------------------------------------------- reporting


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def hop_table(results: Sequence[HopResult]) -> str:
    """One row per request; the bare-hop columns only when it was measured."""
    bare = any(r.seconds.get("bare") for r in results)

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def row(r: HopResult) -> list[str]:
        gap = (r.p("routed", 50) or 0.0) - (r.p("direct", 50) or 0.0)
        cells = {"request": r.request + (f" ({r.audio_s:.1f} s clip)" if r.audio_s else ""),
                 "calls per side": str(len(r.seconds["direct"])), "direct p50 ms": ms(r.p("direct", 50)),
                 "bare hop p50 ms": ms(r.p("bare", 50)), "routed p50 ms": ms(r.p("routed", 50)),
                 "routed - direct p50 ms": ms(gap), "routed/direct p50": ratio(r.ratio("routed", "direct")),
                 "bare/direct p50": ratio(r.ratio("bare", "direct")),
                 "routed/bare p50": ratio(r.ratio("routed", "bare")), "direct p99 ms": ms(r.p("direct", 99)),
                 "bare hop p99 ms": ms(r.p("bare", 99)), "routed p99 ms": ms(r.p("routed", 99)),
                 "routed/direct p99": ratio(r.ratio("routed", "direct", 99)), "target (p50)": f"<= {r.target:.2f}",
                 "verdict": verdict(r.passed)}
        return [v for k, v in cells.items() if bare or "bare" not in k]

    headers = ["request", "calls per side", "direct p50 ms", "bare hop p50 ms", "routed p50 ms",
               "routed - direct p50 ms", "routed/direct p50", "bare/direct p50", "routed/bare p50", "direct p99 ms",
               "bare hop p99 ms", "routed p99 ms", "routed/direct p99", "target (p50)", "verdict"]
    return table([h for h in headers if bare or "bare" not in h], [row(r) for r in results])


def real_overhead_ms(r: HopResult) -> dict[str, float]:
    """Per side, the median of (wall - node compute) in ms: gRPC, protobuf, the hop."""
    return {side: 1000 * statistics.median(w - c for w, c in zip(r.seconds[side], r.compute_s[side]))
            for side in r.seconds}


def throughput_table(windows: Sequence[Window], levels: Sequence[int]) -> str:
    rows = []
    for n in levels:
        d, b, r = (merged(windows, side, n) for side in SIDES)
        rows.append([n, f"{d.calls_per_s:.0f}", f"{b.calls_per_s:.0f}", f"{r.calls_per_s:.0f}",
                     f"{r.calls_per_s / d.calls_per_s:.2f}" if d.calls_per_s else "-",
                     f"{r.calls_per_s / b.calls_per_s:.2f}" if b.calls_per_s else "-",
                     *(ms(pct(w.latencies_s, 50)) if w.ok else "-" for w in (d, b, r)),
                     sum(sum(w.errors.values()) for w in (d, b, r))])
    return table(["callers", "direct calls/s", "bare hop calls/s", "routed calls/s", "routed/direct",
                  "routed/bare", "direct p50 ms", "bare hop p50 ms", "routed p50 ms", "errors"], rows)


def cold_table(trials: Sequence[ColdStart]) -> str:
    rows = [[t.trial, f"{t.router_idle_s:.1f}", f"{t.ready_s:.2f}", f"{t.first_routed_sent_s:.2f}",
             f"{t.first_routed_s:.2f}", ms(t.router_share_s),
             ", ".join(f"{k} {v}" for k, v in sorted(t.polls_refused.items())) or "-"] for t in trials]
    return table(["trial", "router waited before node start s", "Popen -> ready line s",
                  "Popen -> first routed call sent s", "Popen -> first routed answer s",
                  "ready -> first routed answer ms", "polls refused before"], rows)


def kill_table(trials: Sequence[KillTrial]) -> str:
    rows = []
    for t in trials:
        state_after = next((f"{s} ({reason})" for _, s, reason in t.list_polls if s != "UP"), "UP")
        rows.append([t.trial, ms(t.not_up_s), short(state_after, 60), ms(t.down_logged_s), t.retried_attempts,
                     ms(t.last_attempt_s), len(t.in_flight_at_kill),
                     ms(max((c.done_s for c in t.in_flight_at_kill), default=None)),
                     sum(1 for c in t.calls if c.done_s >= 0), len(t.failed_after_kill),
                     t.served_by_victim_after_kill])
    return table(["trial", "kill -> not UP in ListNodes ms", "state then", "kill -> 'is down' logged ms",
                  "attempts on dead node (retried)", "kill -> last such attempt ms", "calls in flight at kill",
                  "kill -> last of them done ms", "calls after kill", "failed", "served by dead node"], rows)


def environment(model: str) -> dict[str, Any]:
    return benchlib.environment(("lanai", "grpcio", "protobuf", "faster-whisper", "ctranslate2"), model=model)


# ---------------------------------------------------------------- the bare hop (reference)


async def serve_bare_proxy(target: str) -> None:
    """Relay every unary call to `target` as raw bytes, until SIGTERM/SIGINT."""
    upstream = grpc.aio.insecure_channel(target, options=UPSTREAM_OPTIONS)
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}

    def relay_to(method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = upstream.unary_unary(method)

        async def relay(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                return await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise  # abort raised already

        return grpc.unary_unary_rpc_method_handler(relay)

    class Relay(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes] | None:
            method: str = details.method
            if method not in handlers:
                handlers[method] = relay_to(method)
            return handlers[method]

    server = grpc.aio.server(options=UPSTREAM_OPTIONS)
    server.add_generic_rpc_handlers((Relay(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop_now = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop_now.set)
    print(f"bench: bare proxy to {target} ready on 127.0.0.1:{port}", flush=True)
    await stop_now.wait()
    await server.stop(1)
    await upstream.close()


# ---------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    model: str
    tiny_calls: int
    tiny_warmup: int
    real_calls: int
    throughput_levels: tuple[int, ...]
    throughput_seconds: float
    """Per level and side."""
    cold_router_idle_s: tuple[float, ...]
    """One node-start trial per value: how long the router waits for the node before it starts."""
    kill_trials: int
    kill_before_s: float
    kill_after_s: float
    tls_calls: int
    """Part 6: tiny calls per side and kind."""
    tls_warmup: int
    tls_real: int
    """Part 6: real transcriptions per side."""
    tls_only: bool = False
    """Only part 6 (--tls)."""


def plan_from(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(args.model, args.calls or 200, 20, args.real or 5, (1, 4, 16), 2.0, (0.0,), 1, 1.5, 2.0,
                    args.calls or 200, 20, args.real or 5, args.tls)
    return Plan(args.model, args.calls or 500, 50, args.real or 15, (1, 4, 16), 4.0, (0.0, 4.0), 2, 2.0, 3.0,
                args.calls or 500, 50, args.real or 30, args.tls)


@dataclass
class Results:
    tiny: list[HopResult] = field(default_factory=list)
    real: HopResult | None = None
    throughput: list[Window] = field(default_factory=list)
    cold: list[ColdStart] = field(default_factory=list)
    kill: list[KillTrial] = field(default_factory=list)
    tls: TlsRun | None = None
    stops: list[Stopped] = field(default_factory=list)


async def hop_phase(plan: Plan, fleet: Fleet, clip: tuple[bytes, float], results: Results) -> None:
    node = await fleet.node("benchnode")
    router = await fleet.router("benchrouter", [node.address])
    bare = await fleet.bare_proxy(node.address)
    async with channel(node.address) as direct_ch, channel(bare.address) as bare_ch, \
            channel(router.address) as routed_ch:
        await wait_up(mesh_pb2_grpc.MeshStub(routed_ch), [node.address])
        stubs = {side: speech_pb2_grpc.SpeechStub(ch) for side, ch in zip(SIDES, (direct_ch, bare_ch, routed_ch))}
        results.tiny = await measure_tiny(stubs, plan.tiny_calls, plan.tiny_warmup)
        emit("\n## 1. Hop latency, tiny request (refused by the node with INVALID_ARGUMENT): direct, through a "
             "bare grpc.aio hop, and routed; interleaved\n")
        emit(hop_table(results.tiny))
        results.real = await measure_real({s: stubs[s] for s in ("direct", "routed")}, *clip, plan.real_calls)
        emit(f"\n## 2. Hop latency, real transcription ({plan.model}, default node config): direct vs routed, "
             "interleaved\n")
        emit(hop_table([results.real]))
        emit("\n" + real_summary(results.real))
        results.throughput = await measure_throughput(stubs, plan.throughput_levels, plan.throughput_seconds)
        emit(f"\n## 3. Throughput, \"no audio\" calls, {plan.throughput_seconds:.0f} s per level and side "
             "(alternating windows)\n")
        emit(throughput_table(results.throughput, plan.throughput_levels))
        emit(f"\n{os.cpu_count()} CPU(s) shared by the node, the hop (router or bare) and this Python client "
             "(one asyncio process): the rates are what this machine does, not the router's ceiling.")


def real_summary(r: HopResult) -> str:
    overhead = real_overhead_ms(r)
    extra = overhead["routed"] - overhead["direct"]
    direct_p50 = pct(r.seconds["direct"], 50)
    compute = statistics.median(r.compute_s["routed"]) / statistics.median(r.compute_s["direct"])
    return (f"wall - node compute, median: direct {overhead['direct']:.1f} ms, routed {overhead['routed']:.1f} ms: "
            f"the hop costs {extra:.1f} ms, {extra / (1000 * direct_p50) * 100:.2f}% of the direct p50. "
            f"The node's own compute differed by {abs(compute - 1) * 100:.1f}% between the sides (same work: "
            "that is the noise floor of the wall-time ratio on this machine).")


async def run(plan: Plan, home: Path, out: Path) -> Results:
    env = environment(plan.model)
    emit(f"# lanai router benchmark: {plan.model}, {env['cpu_count']} CPU(s), {env['date']}")
    results = Results()
    with tempfile.TemporaryDirectory(prefix="lanai-bench-router-") as tmp:
        workdir = Path(tmp)
        real_clip, short_clip = say(REAL_TEXT, workdir), say(SHORT_TEXT, workdir)
        if plan.tls_only:
            await tls_phase(plan, workdir, home, real_clip, results)
        else:
            await all_phases(plan, workdir, home, real_clip, short_clip, results)
    env["load_average_at_end"] = os.getloadavg()
    emit("\n## Verdicts\n")
    for verdict_line in verdicts(results):
        emit(verdict_line)
    write_json(out, env, plan, results, real_clip[1], short_clip[1])
    emit(f"\nraw numbers: {out}")
    return results


async def all_phases(plan: Plan, workdir: Path, home: Path, real_clip: tuple[bytes, float],
                     short_clip: tuple[bytes, float], results: Results) -> None:
    async with Fleet(workdir, home, plan.model, results.stops) as fleet:
        await hop_phase(plan, fleet, real_clip, results)
    for trial, idle_s in enumerate(plan.cold_router_idle_s):
        async with Fleet(workdir, home, plan.model, results.stops) as fleet:
            results.cold.append(await cold_start(fleet, trial, idle_s))
    emit("\n## 4. Node start -> first routed request (router started first, `--peers` naming the node's "
         f"port; polled every {POLL_S * 1000:.0f} ms)\n")
    emit(cold_table(results.cold))
    for trial in range(plan.kill_trials):
        async with Fleet(workdir, home, plan.model, results.stops) as fleet:
            results.kill.append(await kill_trial(fleet, trial, short_clip[0], plan.kill_before_s,
                                                 plan.kill_after_s))
    emit(f"\n## 5. SIGKILL -> not chosen (2 nodes, 2 callers sending a {short_clip[1]:.1f} s clip through the "
         f"router; ListNodes polled every {LIST_POLL_S * 1000:.0f} ms)\n")
    emit(kill_table(results.kill))
    await tls_phase(plan, workdir, home, real_clip, results)


def verdicts(results: Results) -> list[str]:
    lines = []
    for r in results.tiny:
        bare, over_bare = r.ratio("bare", "direct"), r.ratio("routed", "bare")
        extra = (r.p("routed", 50) or 0) - (r.p("bare", 50) or 0)
        lines.append(f"- tiny request \"{r.request}\": routed/direct p50 {r.p50_ratio:.2f} (target <= {r.target:.1f}): "
                     f"{verdict(r.passed)}; p99 ratio {r.ratio('routed', 'direct', 99):.2f}. For reference a bare "
                     f"grpc.aio hop is {bare:.2f}x direct; the router is {over_bare:.2f}x the bare hop "
                     f"({extra * 1000:+.2f} ms at p50).")
    if results.real is not None:
        r = results.real
        lines.append(f"- real transcription: routed/direct p50 {r.p50_ratio:.3f} (target <= {r.target:.2f}): "
                     f"{verdict(r.passed)}")
    if results.kill:
        failed = sum(len(t.failed_after_kill) for t in results.kill)
        lines.append(f"- SIGKILL: {failed} client call(s) failed after the kill (target 0): {verdict(failed == 0)}; "
                     "kill -> not UP in ListNodes: " + ", ".join(f"{ms(t.not_up_s)} ms" for t in results.kill))
    if results.cold:
        lines.append("- node start -> first routed answer (no target): " + ", ".join(
            f"{t.first_routed_s:.2f} s ({ms(t.router_share_s)} ms after its ready line)" for t in results.cold))
    if results.tls is not None:
        lines.extend(tls_verdicts(results.tls))
    killed = [s for s in results.stops if s.killed]
    lines.append(f"- shutdown: {len(results.stops) - len(killed)}/{len(results.stops)} processes exited within "
                 f"{STOP_TIMEOUT_S:.0f} s of SIGTERM" + (f"; SIGKILLed: {', '.join(s.name for s in killed)}"
                                                         if killed else ""))
    return lines


def tls_verdicts(run: TlsRun) -> list[str]:
    lines = []
    for r in run.tiny:
        cc = r.ratio("tls-callcreds", "plaintext")
        lines.append(f"- TLS, tiny request \"{r.request}\": TLS/plaintext p50 {r.p50_ratio:.3f} (target <= {r.target:.2f}): "
                     f"{verdict(r.passed)} ({ms(r.p('tls', 50))} vs {ms(r.p('plaintext', 50))} ms); p90 ratio "
                     f"{r.ratio('tls', 'plaintext', 90):.3f}; with the key as call credentials instead of metadata "
                     f"{cc:.3f}.")
    if run.real is not None:
        r = run.real
        overhead = real_overhead_ms(r)
        share = (overhead["tls"] - overhead["plaintext"]) / (1000 * pct(r.seconds["plaintext"], 50))
        compute = statistics.median(r.compute_s["tls"]) / statistics.median(r.compute_s["plaintext"])
        lines.append(f"- TLS, real transcription: TLS/plaintext p50 {r.p50_ratio:.3f} (target <= {r.target:.2f}): "
                     f"{verdict(r.passed)}; p90 ratio {r.ratio('tls', 'plaintext', 90):.3f}. The two nodes' own compute "
                     f"differed by {(compute - 1) * 100:+.1f}% (TLS/plaintext); without it (wall - compute) TLS adds "
                     f"{share * 100:+.2f}% of the plaintext p50 (would be {verdict(1 + share <= r.target)}).")
    for w in run.connections:
        if not w.measured:
            lines.append("- connection counter control: the clients' first calls opened "
                         + ", ".join(f"{w.opened[role]} ({role})" for role in w.ports)
                         + " (expected: 1, 0, 2, 0: the plaintext and the two TLS client channels connect; the "
                         "routers had reached their nodes before)")
            continue
        tls_roles = [role for role in w.ports if role.startswith("TLS")]
        opened = sum(w.opened[role] for role in tls_roles)
        calls = w.calls[tls_roles[0]] if tls_roles else 0
        lines.append(f"- TLS, new connections during the {w.window} ({calls} TLS calls): {opened} (target 0): "
                     f"{verdict(w.tls_passed)}; plaintext side: {sum(w.opened.values()) - opened}")
    return lines


def write_json(out: Path, env: dict[str, Any], plan: Plan, results: Results, real_s: float, short_s: float) -> None:
    summary: dict[str, Any] = {
        "tiny": [{"request": r.request, "passed": r.passed, "p50_s": {s: r.p(s, 50) for s in r.seconds},
                  "p99_s": {s: r.p(s, 99) for s in r.seconds}, "routed_direct_p50": r.p50_ratio,
                  "routed_direct_p99": r.ratio("routed", "direct", 99), "bare_direct_p50": r.ratio("bare", "direct"),
                  "routed_bare_p50": r.ratio("routed", "bare")} for r in results.tiny],
        "throughput_calls_per_s": [{"callers": n, **{s: merged(results.throughput, s, n).calls_per_s for s in SIDES}}
                                   for n in plan.throughput_levels] if results.throughput else [],
    }
    if results.tls is not None:
        summary["tls"] = tls_summary(results.tls)
    if results.real is not None:
        summary["real"] = {"routed_direct_p50": results.real.p50_ratio, "passed": results.real.passed,
                           "wall_minus_compute_median_ms": real_overhead_ms(results.real)}
    raw = asdict(results)
    raw["throughput"] = [window_record(w) for w in results.throughput]
    report = {"environment": env, "plan": asdict(plan), "clips_s": {"real": real_s, "short": short_s},
              "summary": summary, "results": raw}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rounded(report), indent=1) + "\n")


def tls_summary(run: TlsRun) -> dict[str, Any]:
    def hop(r: HopResult) -> dict[str, Any]:
        return {"request": r.request, "passed": r.passed, "target_p50_ratio": r.target,
                "p50_s": {s: r.p(s, 50) for s in r.seconds}, "p90_s": {s: r.p(s, 90) for s in r.seconds},
                "tls_plaintext_p50": r.p50_ratio, "tls_plaintext_p90": r.ratio("tls", "plaintext", 90),
                "callcreds_plaintext_p50": r.ratio("tls-callcreds", "plaintext")}

    summary: dict[str, Any] = {"tiny": [hop(r) for r in run.tiny], "connections": [
        {"window": w.window, "passed": w.tls_passed if w.measured else None, "opened": w.opened, "calls": w.calls,
         "per_call": {role: w.per_call(role) for role in w.ports}, "open_at_end": w.open_at_end,
         "method": w.method, "opened_by_proc_net_tcp": w.opened_proc, "syn_drops": w.syn_drops,
         "machine_active_opens": w.machine_active_opens} for w in run.connections]}
    if run.real is not None:
        summary["real"] = {**hop(run.real), "wall_minus_compute_median_ms": real_overhead_ms(run.real)}
    return summary


def window_record(w: Window) -> dict[str, Any]:
    """A throughput window without its thousands of per-call latencies: their percentiles."""
    record = {k: v for k, v in asdict(w).items() if k != "latencies_s"}
    record["calls_per_s"] = w.calls_per_s
    record["latency_s"] = {f"p{q}": pct(w.latencies_s, q) for q in (50, 90, 99)} if w.latencies_s else {}
    if w.latencies_s:
        record["latency_s"]["max"] = max(w.latencies_s)
    return record


def rounded(value: Any) -> Any:
    """Floats to 7 decimals (0.1 us on seconds) to keep the JSON small; the rest as it is."""
    if isinstance(value, float):
        return round(value, 7)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--model", default="tiny.en", help="speech model name or directory (default tiny.en)")
    p.add_argument("--calls", type=int, default=0, help="tiny calls per side and kind (default 500; --quick 200)")
    p.add_argument("--real", type=int, default=0,
                   help="real transcriptions per side (default 15, in part 6 30; --quick 5)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file for the raw numbers (default bench/results/router.json; --tls: router-tls.json)")
    p.add_argument("--quick", action="store_true", help="fewer calls, trials and seconds: a smoke test")
    p.add_argument("--tls", action="store_true",
                   help="only part 6: TLS vs plaintext through the router (tiny and real calls, new connections)")
    p.add_argument("--bare-proxy-for", metavar="HOST:PORT", help=argparse.SUPPRESS)  # the bare hop's process
    args = p.parse_args(argv)
    if args.bare_proxy_for:
        asyncio.run(serve_bare_proxy(args.bare_proxy_for))
        return 0
    if args.calls < 0 or args.real < 0:
        p.error("--calls and --real must not be negative (0: the default)")
    out = args.out or Path(__file__).resolve().parent / "results" / ("router-tls.json" if args.tls else "router.json")
    try:
        asyncio.run(run(plan_from(args), model_cache.default_home(), out))
    except (RuntimeError, OSError, subprocess.SubprocessError, grpc.aio.AioRpcError) as exc:
        print(f"bench/router.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
