"""Language service benchmark: what does the gRPC node cost, and what does batching buy?

Every node is a real `lanai node --services language` subprocess on 127.0.0.1 (so the server
and this client do not share a GIL), called with grpc.aio from this process. Decoding is greedy
(temperature 0) with a fixed `max_tokens` and raw-text story openings that do not reach EOS that
early, so every generation has the same length; each row says whether all of them reached
max_tokens (the rates use the token counts the node reported either way).

1. Single stream, node vs in-process: the same model and prompt through `Language/GenerateStream`
   and through mlx-lm called in this process (`mlx_lm.load` + `mlx_lm.stream_generate` with the
   prompt's token ids, as the node encodes them, and an argmax sampler), with OpenBLAS preloaded
   in this process too (`lanai.services.language.blas.preload("auto")` before mlx is imported,
   as the node does). Runs alternate ABBA and never overlap, after a warm-up of each side.
   Per run: time to first token (service: request sent -> first non-empty delta received;
   in-process: call -> first token yielded), decode rate after the first token
   ((tokens - 1) / (last - first)) and end-to-end rate (tokens / (last - sent)). Targets: the
   median decode rate of the service >= 0.95 x in-process, and the service's median time to
   first token <= in-process + 10 ms. The node also reports its own view (`usage`: time from
   the engine receiving the request to its first token, and its decode rate), which splits the
   difference into the engine's share and the gRPC/servicer share.
2. Aggregate throughput: 1, 2, 4 and 8 concurrent `GenerateStream` clients (one channel,
   started together), each generating max_tokens tokens, on a node with --language-slots 8.
   Aggregate tokens/s = all tokens generated / (first request sent -> last stream finished);
   the median over rounds. Target: 4 streams >= 2x the single-stream aggregate.
3. The same with the BLAS fix off (`--language-blas off`: mlx's bundled reference BLAS), and the
   OpenBLAS/bundled ratio per level. A single stream decodes with matrix-vector products, where
   the bundled BLAS is not much slower; batches use matrix-matrix products, where it is.

The machine's cores are shared by the node and this client (and anything else running): compare
numbers within one run. Prints markdown tables and a verdict per target, and writes every raw
number, with the environment, to JSON. Needs the model prepared in $LANAI_HOME
(`lanai models prepare smollm2-135m`) and Debian's OpenBLAS (libopenblas0-pthread).

Run:  LANAI_HOME=/path/to/home python bench/language.py [--quick] [--out bench/results/language.json]
                                                       [--model smollm2-135m] [--tokens 128] [--repeat 5]
                                                       [--rounds 2] [--no-blas-off] [--openblas-threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, short, table  # noqa: E402
from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.services import models as model_cache
from lanai.services.language import blas

DECODE_RATIO_TARGET = 0.95
TTFT_OVERHEAD_TARGET_MS = 10.0
BATCH_TARGET = 2.0
BATCH_TARGET_STREAMS = 4
SLOTS = 8
NODE_START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 600.0
REST_S = 0.2
"""Pause between timed runs, so neither side starts while the other's threads still spin."""

PROMPTS = (
    "Once upon a time",
    "The old lighthouse keeper climbed the stairs",
    "It was the last day of summer, and the village",
    "Deep in the forest there lived a fox who",
    "The spaceship drifted silently past the moon",
    "My grandfather used to tell me stories about",
    "The market was crowded that morning, and",
    "When the rain finally stopped, the children",
)
"""Raw-text openings; stream i of a level continues PROMPTS[i % len(PROMPTS)]. The first is the
single-stream prompt."""


# ---------------------------------------------------------------- the node


@dataclass(frozen=True)
class NodeSpec:
    slots: int
    blas: str
    """--language-blas: "auto" (OpenBLAS) or "off" (mlx's bundled BLAS)."""

    @property
    def label(self) -> str:
        return f"{self.slots} slots, {'OpenBLAS' if self.blas == 'auto' else 'bundled BLAS' if self.blas == 'off' else self.blas}"


@contextlib.asynccontextmanager
async def running_node(home: Path, model: str, spec: NodeSpec, log_path: Path) -> AsyncIterator[str]:
    """A `lanai node` subprocess on 127.0.0.1; yields its address, stops it on exit."""
    args = ["--services", "language", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", "bench", "--language-models", model,
            "--language-slots", str(spec.slots), "--language-blas", spec.blas, "--language-queue", "64",
            "--grace", "1", "--discovery", "none", "--no-router"]
    async with node_process(args, log_path, start_timeout_s=NODE_START_TIMEOUT_S) as (port, proc):
        METER.pids.append(proc.pid)
        METER.node_pid = proc.pid
        try:
            yield f"127.0.0.1:{port}"
        finally:
            METER.pids.remove(proc.pid)


class CpuMeter:
    """CPU time taken on this machine by processes other than this one and the node (and by the
    hypervisor: steal), in cores, over an interval: how disturbed a measurement was."""

    def __init__(self) -> None:
        self.pids: list[int] = [os.getpid()]
        self.node_pid = 0
        self._hz = os.sysconf("SC_CLK_TCK")

    def read(self) -> tuple[float, int, dict[int, int]]:
        try:
            with open("/proc/stat") as f:
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
            ours = {pid: self._ticks(pid) for pid in self.pids}
        except (OSError, ValueError):
            return time.perf_counter(), 0, {}
        return time.perf_counter(), user + nice + system + irq + softirq + steal, ours

    def others_cores(self, start: tuple[float, int, dict[int, int]]) -> float:
        end = self.read()
        ours = sum(end[2].get(pid, 0) - ticks for pid, ticks in start[2].items())
        return max(0.0, ((end[1] - start[1]) - ours) / self._hz / max(end[0] - start[0], 1e-9))

    def cpu_s(self, start: tuple[float, int, dict[int, int]], pid: int) -> float:
        """CPU seconds process `pid` (one of ours) used since `start`."""
        try:
            return (self._ticks(pid) - start[2][pid]) / self._hz
        except (OSError, ValueError, KeyError):
            return 0.0

    @staticmethod
    def _ticks(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime of all its threads


METER = CpuMeter()


def _channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address)


def _request(prompt: str, max_tokens: int) -> language_pb2.GenerateRequest:
    """Greedy, fixed length; the node serves one model, its default: the request names none."""
    return language_pb2.GenerateRequest(prompt=prompt, sampling=language_pb2.SamplingOptions(
        max_tokens=max_tokens, temperature=0.0))


# ---------------------------------------------------------------- one generation


@dataclass
class Run:
    side: str
    """"service" or "in-process"."""
    prompt: str
    completion_tokens: int
    finish: str
    ttft_s: float
    """Service: request sent -> first non-empty delta. In-process: call -> first token."""
    total_s: float
    """Service: request sent -> last message (with usage). In-process: call -> generator exhausted."""
    first_text_s: float | None = None
    """In-process: call -> first non-empty text (the service's first delta is that)."""
    server_ttft_ms: float | None = None
    """usage.time_to_first_token_ms: the engine's request -> its first token."""
    server_tps: float | None = None
    """usage.tokens_per_second: the engine's decode rate after the first token."""
    prompt_tokens: int = 0
    others_cores: float = 0.0
    """CPU taken by other processes while it ran (CpuMeter), in cores; 0 on a quiet machine."""
    cpu_s: float = 0.0
    """CPU seconds of the process that generated (service: the node; in-process: this one)."""
    text: str = field(default="", repr=False)

    @property
    def decode_tps(self) -> float:
        return (self.completion_tokens - 1) / (self.total_s - self.ttft_s) if self.total_s > self.ttft_s else 0.0

    @property
    def e2e_tps(self) -> float:
        return self.completion_tokens / self.total_s if self.total_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decode_tps": self.decode_tps, "e2e_tps": self.e2e_tps}


async def service_run(stub: language_pb2_grpc.LanguageStub, prompt: str, max_tokens: int,
                      t0: float | None = None) -> Run:
    """One GenerateStream; times relative to `t0` (default: just before the call)."""
    request = _request(prompt, max_tokens)
    meter = METER.read()
    sent = time.perf_counter()
    t0 = sent if t0 is None else t0
    first: float | None = None
    parts: list[str] = []
    last: language_pb2.GenerateStreamResponse | None = None
    async for response in stub.GenerateStream(request, timeout=REQUEST_TIMEOUT_S):
        now = time.perf_counter()
        if response.delta:
            first = now if first is None else first
            parts.append(response.delta)
        if response.HasField("usage"):
            last, end = response, now
    if last is None:
        raise RuntimeError("the stream ended without a last message (usage)")
    u = last.usage
    return Run("service", prompt, u.completion_tokens, language_pb2.FinishReason.Name(last.finish_reason),
               (first if first is not None else end) - t0, end - t0, server_ttft_ms=u.time_to_first_token_ms,
               server_tps=u.tokens_per_second, prompt_tokens=u.prompt_tokens, others_cores=METER.others_cores(meter),
               cpu_s=METER.cpu_s(meter, METER.node_pid),
               text="".join(parts))


class InProcess:
    """mlx-lm in this process, on the CPU like the node; OpenBLAS must be preloaded before this."""

    def __init__(self, model_dir: Path) -> None:
        import mlx.core as mx
        from mlx_lm import load

        mx.set_default_device(mx.cpu)
        self.mx = mx
        self.model, self.tokenizer = load(str(model_dir))[:2]

    def encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer.encode(prompt))  # as the engine encodes a raw prompt

    def run(self, prompt: str, max_tokens: int) -> Run:
        from mlx_lm import stream_generate

        mx = self.mx
        tokens = self.encode(prompt)
        meter = METER.read()
        started = time.perf_counter()
        first = first_text = None
        parts: list[str] = []
        response: Any = None
        for response in stream_generate(self.model, self.tokenizer, tokens, max_tokens=max_tokens,
                                        sampler=lambda logprobs: mx.argmax(logprobs, axis=-1)):
            now = time.perf_counter()
            first = now if first is None else first
            if response.text:
                first_text = now if first_text is None else first_text
                parts.append(response.text)
        end = time.perf_counter()
        assert response is not None and first is not None
        finish = {"length": "FINISH_REASON_LENGTH", "stop": "FINISH_REASON_STOP"}.get(response.finish_reason,
                                                                                         str(response.finish_reason))
        return Run("in-process", prompt, response.generation_tokens, finish, first - started, end - started,
                   first_text_s=None if first_text is None else first_text - started, prompt_tokens=len(tokens),
                   others_cores=METER.others_cores(meter), cpu_s=METER.cpu_s(meter, os.getpid()),
                   text="".join(parts))


# ---------------------------------------------------------------- 1. single stream


@dataclass
class SingleResult:
    node: str
    prompt: str
    max_tokens: int
    service: list[Run]
    in_process: list[Run]
    warmup: list[Run]
    decode_ratio: float = 0.0
    e2e_ratio: float = 0.0
    ttft_overhead_ms: float = 0.0
    decode_passed: bool = False
    ttft_passed: bool = False
    same_text: bool = False


async def measure_single(stub: language_pb2_grpc.LanguageStub, local: InProcess, spec: NodeSpec, prompt: str,
                         max_tokens: int, repeat: int) -> SingleResult:
    warm = [await service_run(stub, prompt, max_tokens)]  # warm-up of both sides, and the texts to compare
    await asyncio.sleep(REST_S)
    warm.append(local.run(prompt, max_tokens))
    result = SingleResult(spec.label, prompt, max_tokens, [], [], warm)
    for i in range(repeat):
        for side in (("service", "local") if i % 2 == 0 else ("local", "service")):  # ABBA: cancels drift
            await asyncio.sleep(REST_S)
            if side == "service":
                result.service.append(await service_run(stub, prompt, max_tokens))
            else:
                result.in_process.append(local.run(prompt, max_tokens))
    s, p = result.service, result.in_process
    result.decode_ratio = _median(r.decode_tps for r in s) / _median(r.decode_tps for r in p)
    result.e2e_ratio = _median(r.e2e_tps for r in s) / _median(r.e2e_tps for r in p)
    result.ttft_overhead_ms = 1000 * (_median(r.ttft_s for r in s) - _median(r.ttft_s for r in p))
    result.decode_passed = result.decode_ratio >= DECODE_RATIO_TARGET
    result.ttft_passed = result.ttft_overhead_ms <= TTFT_OVERHEAD_TARGET_MS
    result.same_text = len({r.text for r in (*s, *p, *warm)}) == 1
    return result


# ---------------------------------------------------------------- 2./3. concurrency


@dataclass
class Level:
    node: str
    blas: str
    streams: int
    round: int
    max_tokens: int
    elapsed_s: float
    """First request sent -> last stream finished."""
    runs: list[Run]
    others_cores: float = 0.0

    @property
    def tokens(self) -> int:
        return sum(r.completion_tokens for r in self.runs)

    @property
    def aggregate_tps(self) -> float:
        return self.tokens / self.elapsed_s

    @property
    def all_full(self) -> bool:
        return all(r.completion_tokens == self.max_tokens for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "blas": self.blas, "streams": self.streams, "round": self.round,
                "max_tokens": self.max_tokens, "elapsed_s": self.elapsed_s, "tokens": self.tokens,
                "aggregate_tps": self.aggregate_tps, "all_full": self.all_full, "others_cores": self.others_cores,
                "runs": [r.as_dict() for r in self.runs]}


async def measure_level(stub: language_pb2_grpc.LanguageStub, spec: NodeSpec, streams: int, round_: int,
                        max_tokens: int) -> Level:
    meter = METER.read()
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(service_run(stub, PROMPTS[i % len(PROMPTS)], max_tokens, t0)
                                  for i in range(streams)))
    elapsed = time.perf_counter() - t0
    return Level(spec.label, spec.blas, streams, round_, max_tokens, elapsed, list(runs), METER.others_cores(meter))


async def measure_levels(stub: language_pb2_grpc.LanguageStub, spec: NodeSpec, levels: Sequence[int],
                         rounds: int, max_tokens: int) -> list[Level]:
    """Each level `rounds` times; the levels interleaved round by round, so drift hits all alike."""
    results: list[Level] = []
    for round_ in range(rounds):
        for streams in (levels if round_ % 2 == 0 else tuple(reversed(levels))):
            await asyncio.sleep(REST_S)
            results.append(await measure_level(stub, spec, streams, round_, max_tokens))
    return results


# ---------------------------------------------------------------- reporting


def _median(values: Any) -> float:
    return float(statistics.median(list(values)))


def _p90(values: Any) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _opt(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def single_table(r: SingleResult) -> str:
    def row(side: str, runs: Sequence[Run]) -> list[str]:
        server = side == "service"
        return [side, str(len(runs)), f"{1000 * _median(x.ttft_s for x in runs):.1f}",
                f"{1000 * _p90(x.ttft_s for x in runs):.1f}",
                f"{_median(x.decode_tps for x in runs):.2f}", f"{min(x.decode_tps for x in runs):.2f}",
                f"{max(x.decode_tps for x in runs):.2f}", f"{_median(x.e2e_tps for x in runs):.2f}",
                _opt(_median(x.server_ttft_ms or 0 for x in runs) if server else None),
                _opt(_median(x.server_tps or 0 for x in runs) if server else None, "{:.2f}"),
                f"{_median(x.completion_tokens for x in runs):.0f}",
                f"{_median(1000 * x.cpu_s / max(x.completion_tokens, 1) for x in runs):.1f}",
                f"{_median(x.others_cores for x in runs):.2f} / {max(x.others_cores for x in runs):.2f}"]

    return table(["side", "runs", "TTFT median ms", "TTFT p90 ms", "decode tok/s median", "decode min",
                  "decode max", "end-to-end tok/s median", "node-reported TTFT ms", "node-reported decode tok/s",
                  "tokens", "CPU ms per token", "others' CPU cores median / max"], [row("service", r.service), row("in-process", r.in_process)])


def single_summary(r: SingleResult) -> str:
    s_ttft = _median(x.ttft_s for x in r.service)
    engine_ttft = _median((x.server_ttft_ms or 0) / 1000 for x in r.service)
    local_text = _median(x.first_text_s or x.ttft_s for x in r.in_process)
    return (f"decode rate service/in-process: {r.decode_ratio:.3f} (target >= {DECODE_RATIO_TARGET:.2f}: "
            f"{_verdict(r.decode_passed)}); end-to-end rate ratio {r.e2e_ratio:.3f}\n"
            f"time to first token, service - in-process: {r.ttft_overhead_ms:+.1f} ms (target <= "
            f"{TTFT_OVERHEAD_TARGET_MS:.0f} ms: {_verdict(r.ttft_passed)}); of the service's "
            f"{1000 * s_ttft:.1f} ms the engine reports {1000 * engine_ttft:.1f} ms from receiving the request to "
            f"its first token, so {1000 * (s_ttft - engine_ttft):.1f} ms are gRPC, servicer, tokenising and "
            f"admission; in-process first non-empty text: {1000 * local_text:.1f} ms\n"
            f"same text on every run, both sides: {'yes' if r.same_text else 'NO'}; all runs reached max_tokens: "
            f"{'yes' if all(x.completion_tokens == r.max_tokens for x in (*r.service, *r.in_process)) else 'NO'}")


def _by_level(levels: Sequence[Level]) -> dict[int, list[Level]]:
    grouped: dict[int, list[Level]] = {}
    for level in levels:
        grouped.setdefault(level.streams, []).append(level)
    return dict(sorted(grouped.items()))


def levels_table(levels: Sequence[Level]) -> tuple[str, bool | None]:
    grouped = _by_level(levels)
    single = _median(x.aggregate_tps for x in grouped[1]) if 1 in grouped else None
    rows = []
    passed = None
    for n, group in grouped.items():
        agg = _median(x.aggregate_tps for x in group)
        runs = [r for x in group for r in x.runs]
        scale = agg / single if single else None
        target = None
        if n == BATCH_TARGET_STREAMS and scale is not None:
            passed = scale >= BATCH_TARGET
            target = passed
        rows.append([n, len(group), group[0].max_tokens, f"{agg:.2f}",
                     " / ".join(f"{x.aggregate_tps:.1f}" for x in group), _opt(scale, "{:.2f}"),
                     f"{_median(r.decode_tps for r in runs):.2f}",
                     f"{_median(r.server_tps or 0 for r in runs):.2f}",
                     f"{1000 * _median(r.ttft_s for r in runs):.0f}", f"{1000 * max(r.ttft_s for r in runs):.0f}",
                     f"{_median(x.elapsed_s for x in group):.1f}",
                     "yes" if all(x.all_full for x in group) else "NO",
                     " / ".join(f"{x.others_cores:.2f}" for x in group),
                     f">= {BATCH_TARGET:.1f}x: {_verdict(target)}" if n == BATCH_TARGET_STREAMS else "-"])
    return table(["streams", "rounds", "tokens/stream", "aggregate tok/s (median)", "each round",
                  "x 1 stream", "per-stream decode tok/s", "node-reported decode tok/s", "TTFT median ms",
                  "TTFT max ms", "elapsed s", "all max_tokens", "others' CPU cores", "target"], rows), passed


def blas_table(fast: Sequence[Level], slow: Sequence[Level]) -> str:
    f, s = _by_level(fast), _by_level(slow)
    rows = []
    for n in sorted(set(f) & set(s)):
        a, b = _median(x.aggregate_tps for x in f[n]), _median(x.aggregate_tps for x in s[n])
        ta = _median(r.ttft_s for x in f[n] for r in x.runs)
        tb = _median(r.ttft_s for x in s[n] for r in x.runs)
        rows.append([n, f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}", f"{1000 * ta:.0f}", f"{1000 * tb:.0f}"])
    return table(["streams", "OpenBLAS aggregate tok/s", "bundled BLAS aggregate tok/s", "OpenBLAS / bundled",
                  "OpenBLAS TTFT median ms", "bundled TTFT median ms"], rows)


DISTURBED_CORES = 0.25
"""Other processes taking more CPU than this during a measurement: its numbers are suspect."""


def disturbance(runs: Sequence[Run] = (), levels: Sequence[Level] = ()) -> str:
    worst = max([x.others_cores for x in runs] + [x.others_cores for x in levels], default=0.0)
    if worst <= DISTURBED_CORES:
        return f"quiet: other processes took at most {worst:.2f} cores during these measurements"
    return (f"DISTURBED: other processes took up to {worst:.2f} cores of {os.cpu_count()} during these "
            "measurements (see the others' CPU column); re-run when the machine is idle")


def _blas_in_this_process() -> list[str]:
    """The BLAS libraries mapped into this process (checks that the preload took)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line})
    return []


def environment(model: str, model_dir: Path, preloaded: str | None) -> dict[str, Any]:
    return benchlib.environment(
        ("lanai", "mlx", "mlx-cpu", "mlx-lm", "grpcio", "protobuf", "transformers", "numpy"),
        model=model, model_dir=str(model_dir), in_process_blas=preloaded, openblas=blas.find_openblas(),
        blas_env={k: v for k, v in os.environ.items() if "BLAS" in k or k == "OMP_NUM_THREADS"})


# ---------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    model: str
    single_tokens: int
    repeat: int
    level_tokens: int
    levels: tuple[int, ...]
    rounds: int
    blas_off_tokens: int
    blas_off_levels: tuple[int, ...]
    blas_off_rounds: int


def plan_from(args: argparse.Namespace) -> Plan:
    blas_off: tuple[int, ...] = () if args.no_blas_off else (1, 4) if args.quick else (1, 2, 4, 8)
    if args.quick:
        tokens = args.tokens or 24
        return Plan(args.model, tokens, args.repeat or 2, tokens, (1, 2, 4, 8), args.rounds or 1, tokens, blas_off,
                    1)
    tokens = args.tokens or 128
    return Plan(args.model, tokens, args.repeat or 5, tokens, (1, 2, 4, 8), args.rounds or 2, args.tokens or 64,
                blas_off, 1)


async def run(plan: Plan, home: Path, out: Path, preloaded: str | None) -> None:
    model_dir = model_cache.resolve(home, plan.model, "language", auto_prepare=False).path
    env = environment(plan.model, model_dir, preloaded)
    fast, slow = NodeSpec(SLOTS, "auto"), NodeSpec(SLOTS, "off")
    report: dict[str, Any] = {"environment": env, "plan": asdict(plan)}
    emit(f"# lanai language benchmark: {plan.model}, {env['cpu_count']} CPU(s), {env['date']}\n")
    emit(f"greedy decoding; in-process BLAS: {preloaded or 'bundled (preload failed)'}; "
         f"mapped here: {', '.join(_blas_in_this_process()) or '-'}")
    with tempfile.TemporaryDirectory(prefix="lanai-bench-language-") as tmp:
        workdir = Path(tmp)
        log_path = workdir / "node-openblas.log"
        started = time.perf_counter()
        async with running_node(home, plan.model, fast, log_path) as address, _channel(address) as channel:
            report["node_start_s"] = {"openblas": time.perf_counter() - started}
            await asyncio.wait_for(channel.channel_ready(), 30)
            stub = language_pb2_grpc.LanguageStub(channel)
            local = InProcess(model_dir)
            single = await measure_single(stub, local, fast, PROMPTS[0], plan.single_tokens, plan.repeat)
            report["single"] = {**asdict(single), "service": [r.as_dict() for r in single.service],
                                "in_process": [r.as_dict() for r in single.in_process],
                                "warmup": [r.as_dict() for r in single.warmup]}
            emit(f"\n## 1. Single stream: GenerateStream on the node vs mlx-lm in-process "
                 f"({plan.single_tokens} tokens, prompt {PROMPTS[0]!r}, {plan.repeat} runs per side, ABBA)\n")
            emit(single_table(single))
            emit("\n" + single_summary(single))
            emit(disturbance(single.service + single.in_process))
            emit(f"\ntext: {short(single.service[0].text.replace(chr(10), ' '), 100)}")
            del local
            fast_levels = await measure_levels(stub, fast, plan.levels, plan.rounds, plan.level_tokens)
            report["concurrency"] = [x.as_dict() for x in fast_levels]
            text, passed = levels_table(fast_levels)
            report["batch_scaling_passed"] = passed
            emit(f"\n## 2. Aggregate throughput, concurrent streams (node {fast.label}, "
                 f"{plan.level_tokens} tokens per stream)\n")
            emit(text)
            emit("\n" + disturbance(levels=fast_levels))
        if plan.blas_off_levels:
            log_path = workdir / "node-bundled.log"
            started = time.perf_counter()
            async with running_node(home, plan.model, slow, log_path) as address, _channel(address) as channel:
                report["node_start_s"]["bundled"] = time.perf_counter() - started
                await asyncio.wait_for(channel.channel_ready(), 30)
                stub = language_pb2_grpc.LanguageStub(channel)
                slow_levels = await measure_levels(stub, slow, plan.blas_off_levels, plan.blas_off_rounds,
                                                   plan.blas_off_tokens)
            report["concurrency_blas_off"] = [x.as_dict() for x in slow_levels]
            emit(f"\n## 3. The same without the BLAS fix (node {slow.label}: --language-blas off, "
                 f"{plan.blas_off_tokens} tokens per stream)\n")
            emit(levels_table(slow_levels)[0])
            emit("\n" + disturbance(levels=slow_levels))
            emit("\n" + blas_table(fast_levels, slow_levels))
    report["load_average_at_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    emit(f"\nraw numbers: {out}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--model", default="smollm2-135m", help="language model name or directory (default smollm2-135m)")
    p.add_argument("--tokens", type=int, default=0,
                   help="max_tokens per generation (default 128, 64 for the BLAS-off node; --quick 24)")
    p.add_argument("--repeat", type=int, default=0, help="single-stream runs per side (default 5; --quick 2)")
    p.add_argument("--rounds", type=int, default=0, help="rounds per concurrency level (default 2; --quick 1)")
    p.add_argument("--no-blas-off", action="store_true", help="skip the node with --language-blas off")
    p.add_argument("--openblas-threads", type=int, default=0,
                   help="set OPENBLAS_NUM_THREADS for the nodes and the in-process baseline (default: unset, "
                        "OpenBLAS uses every core)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "language.json",
                   help="JSON file for the raw numbers (default bench/results/language.json)")
    p.add_argument("--quick", action="store_true", help="short generations, fewer runs: a smoke test")
    args = p.parse_args(argv)
    if args.tokens < 0 or args.repeat < 0 or args.rounds < 0 or args.openblas_threads < 0:
        p.error("--tokens, --repeat, --rounds and --openblas-threads must not be negative (0: the default)")
    if args.openblas_threads > 0:  # read when OpenBLAS loads; the nodes inherit the environment
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.openblas_threads)
    # The in-process baseline must use OpenBLAS like the node: load it before anything imports mlx.
    preloaded = blas.preload("auto")
    home = model_cache.default_home()
    try:
        asyncio.run(run(plan_from(args), home, args.out, preloaded))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, grpc.aio.AioRpcError) as exc:
        print(f"bench/language.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
