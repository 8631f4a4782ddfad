"""Language service benchmark: the llama.cpp engine against llama.cpp itself and against the mlx
engine, what slots buy, embeddings, and memory.

Every node is a real `lanai node --services language` subprocess on 127.0.0.1 (so the server
and this client do not share a GIL), called with grpc.aio from this process; only one node runs
at a time. Decoding is greedy (temperature 0) with a fixed `max_tokens` and raw-text story
openings that do not reach EOS that early; each row says whether all generations reached
max_tokens (rates use the token counts the node reported either way).

1. Single stream, node vs in-process: the same GGUF and prompt through `Language/GenerateStream`
   on a llama.cpp node and through xllamacpp's `Server.handle_completions` (streaming) in this
   process, with the node's settings (slots, threads, context per slot). Runs alternate ABBA and
   never overlap, after a warm-up of each side; run i of either side continues PROMPTS[i], so
   each side prefills every prompt once (llama.cpp caches prompts). Per run: time to first
   token (service: request sent -> first non-empty delta; in-process: call -> first non-empty
   piece) and decode rate after the first token ((tokens - 1) / (last - first)). Targets: median
   decode rate of the node >= 0.95 x in-process; median TTFT of the node <= in-process + 10 ms.
2. llama.cpp engine vs mlx engine, single stream: the same runs on an mlx node (the GGUF's
   float32 conversion, OpenBLAS), same prompts. Target: llama.cpp decode >= 3.5 x mlx.
3. Slots: llama.cpp nodes with --language-slots 1, 2 and 4; on each, 1, 2 and 4 concurrent
   streams (started together); aggregate tokens/s = all tokens / (first sent -> last finished),
   median over rounds. Reported: 4 streams vs 1 per slot setting (target >= 1.5x if any reaches
   it here).
4. Embeddings: `Language/Embed` with 32 texts on the llama.cpp node vs the same ONNX model run
   in this process with onnxruntime and tokenizers directly (the node's thread count, the same
   pooling), ABBA, texts/s. Target: node >= 0.9 x in-process.
5. Memory: resident set (VmRSS) of the llama.cpp node and of the mlx node after their runs
   (both also hold the embedding model). Reported; expected <= 0.4x.

The machine's cores are shared by the node and this client (and anything else running): compare
numbers within one run. Prints markdown tables and a verdict per target, and writes every raw
number, with the environment, to JSON. Needs the model prepared for both engines
(`lanai models prepare --engine all`).

Run:  LANAI_HOME=/path/to/home python bench/language.py [--quick] [--out bench/results/language.json]
                                                       [--model smollm2-135m] [--tokens 128] [--repeat 6]
                                                       [--rounds 2]
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
import numpy as np

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, short, table  # noqa: E402
from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.services import models as model_cache
from lanai.services.language.engines import LLAMA_CPP, LLAMA_CPP_SLOTS, MLX
from lanai.services.language.llamacpp_engine import DEFAULT_CONTEXT, gguf_path

DECODE_RATIO_TARGET = 0.95
TTFT_OVERHEAD_TARGET_MS = 10.0
ENGINE_RATIO_TARGET = 3.5
BATCH_TARGET = 1.5
EMBED_RATIO_TARGET = 0.9
RSS_EXPECTED = 0.4
EMBED_BATCH = 32
NODE_START_TIMEOUT_S = 600.0
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
"""Raw-text openings; single-stream run i and stream i of a level continue PROMPTS[i % len(PROMPTS)]."""
EMBED_TEXTS = tuple(f"{p}, and then something happened that nobody in the story expected ({i})."
                    for i, p in enumerate(PROMPTS * 4))


# ---------------------------------------------------------------- the node


@dataclass(frozen=True)
class NodeSpec:
    engine: str
    slots: int

    @property
    def label(self) -> str:
        return f"{self.engine}, {self.slots} slots"


@contextlib.asynccontextmanager
async def running_node(home: Path, model: str, spec: NodeSpec, log_path: Path) -> AsyncIterator[tuple[str, int]]:
    """A `lanai node` subprocess on 127.0.0.1; yields its address and pid, stops it on exit."""
    args = ["--services", "language", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", "bench", "--language-models", model, "--language-engine", spec.engine,
            "--language-slots", str(spec.slots), "--language-queue", "64",
            "--grace", "1", "--discovery", "none", "--no-router"]
    async with node_process(args, log_path, start_timeout_s=NODE_START_TIMEOUT_S) as (port, proc):
        METER.pids.append(proc.pid)
        METER.node_pid = proc.pid
        try:
            yield f"127.0.0.1:{port}", proc.pid
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


METER = CpuMeter()


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
    end = sent
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
               cpu_s=METER.cpu_s(meter, METER.node_pid), text="".join(parts))


class InProcess:
    """llama.cpp's server in this process through xllamacpp, with the node's settings."""

    def __init__(self, gguf: Path, slots: int, threads: int) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_parallel = slots
        params.n_ctx = DEFAULT_CONTEXT * slots
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.n_gpu_layers = 0
        params.verbosity = -1
        self._folder = tempfile.TemporaryDirectory(prefix="lanai-bench-llama-")
        params.hostnames = [os.path.join(self._folder.name, "s.sock")]
        params.api_keys = ["bench"]
        self.server: Any = xllamacpp.Server(params)

    def run(self, prompt: str, max_tokens: int) -> Run:
        meter = METER.read()
        stamps: list[tuple[float, str]] = []
        last: dict[str, Any] = {}

        def piece(chunk: dict[str, Any]) -> bool:
            now = time.perf_counter()
            choice = chunk["choices"][0]
            if choice.get("text"):
                stamps.append((now, choice["text"]))
            if choice.get("finish_reason") is not None:
                last.update(chunk, end=now)
            return False

        started = time.perf_counter()
        self.server.handle_completions({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "top_k": 0,
                                        "min_p": 0.0, "stream": True, "stream_options": {"include_usage": True}},
                                       piece)
        end = last.get("end", time.perf_counter())
        tokens = int(last.get("usage", {}).get("completion_tokens", len(stamps)))
        finish = {"length": "FINISH_REASON_LENGTH", "stop": "FINISH_REASON_STOP"}.get(
            last.get("choices", [{}])[0].get("finish_reason", ""), "?")
        first = stamps[0][0] if stamps else end
        return Run("in-process", prompt, tokens, finish, first - started, end - started,
                   prompt_tokens=int(last.get("usage", {}).get("prompt_tokens", 0)),
                   others_cores=METER.others_cores(meter), cpu_s=METER.cpu_s(meter, os.getpid()),
                   text="".join(t for _, t in stamps))

    def close(self) -> None:
        self.server = None
        self._folder.cleanup()


# ---------------------------------------------------------------- 1./2. single stream


@dataclass
class SingleResult:
    node: str
    max_tokens: int
    service: list[Run]
    in_process: list[Run]
    warmup: list[Run]
    decode_ratio: float = 0.0
    ttft_overhead_ms: float = 0.0
    decode_passed: bool = False
    ttft_passed: bool = False
    same_text: bool = False


async def measure_single(stub: language_pb2_grpc.LanguageStub, local: InProcess, spec: NodeSpec, max_tokens: int,
                         repeat: int) -> SingleResult:
    warm = [await service_run(stub, "Warm up: " + PROMPTS[-1], max_tokens)]
    await asyncio.sleep(REST_S)
    warm.append(local.run("Warm up: " + PROMPTS[-1], max_tokens))
    result = SingleResult(spec.label, max_tokens, [], [], warm)
    for i in range(repeat):
        prompt = PROMPTS[i % len(PROMPTS)]
        for side in (("service", "local") if i % 2 == 0 else ("local", "service")):  # ABBA: cancels drift
            await asyncio.sleep(REST_S)
            if side == "service":
                result.service.append(await service_run(stub, prompt, max_tokens))
            else:
                result.in_process.append(local.run(prompt, max_tokens))
    s, p = result.service, result.in_process
    result.decode_ratio = _median(r.decode_tps for r in s) / _median(r.decode_tps for r in p)
    result.ttft_overhead_ms = 1000 * (_median(r.ttft_s for r in s) - _median(r.ttft_s for r in p))
    result.decode_passed = result.decode_ratio >= DECODE_RATIO_TARGET
    result.ttft_passed = result.ttft_overhead_ms <= TTFT_OVERHEAD_TARGET_MS
    result.same_text = all(a.text == b.text for a, b in zip(s, p))
    return result


async def service_runs(stub: language_pb2_grpc.LanguageStub, max_tokens: int, repeat: int) -> list[Run]:
    await service_run(stub, "Warm up: " + PROMPTS[-1], max_tokens)
    runs = []
    for i in range(repeat):
        await asyncio.sleep(REST_S)
        runs.append(await service_run(stub, PROMPTS[i % len(PROMPTS)], max_tokens))
    return runs


# ---------------------------------------------------------------- 3. slots


@dataclass
class Level:
    node: str
    slots: int
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
        return {"node": self.node, "slots": self.slots, "streams": self.streams, "round": self.round,
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
    return Level(spec.label, spec.slots, streams, round_, max_tokens, elapsed, list(runs), METER.others_cores(meter))


async def measure_levels(stub: language_pb2_grpc.LanguageStub, spec: NodeSpec, levels: Sequence[int],
                         rounds: int, max_tokens: int) -> list[Level]:
    """Each level `rounds` times; the levels interleaved round by round, so drift hits all alike."""
    results: list[Level] = []
    for round_ in range(rounds):
        for streams in (levels if round_ % 2 == 0 else tuple(reversed(levels))):
            await asyncio.sleep(REST_S)
            results.append(await measure_level(stub, spec, streams, round_, max_tokens))
    return results


# ---------------------------------------------------------------- 4. embeddings


class LocalEncoder:
    """all-MiniLM-L6-v2 run directly: tokenizers, onnxruntime, mean pooling, unit length."""

    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batch = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        unit: np.ndarray = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return unit


@dataclass
class EmbedResult:
    texts: int
    service_s: list[float] = field(default_factory=list)
    in_process_s: list[float] = field(default_factory=list)
    max_abs_difference: float = 0.0

    @property
    def ratio(self) -> float:
        return _median(self.in_process_s) / _median(self.service_s)


async def measure_embed(stub: language_pb2_grpc.LanguageStub, local: LocalEncoder, repeat: int) -> EmbedResult:
    texts = list(EMBED_TEXTS[:EMBED_BATCH])
    request = language_pb2.EmbedRequest(texts=texts)
    reply = await stub.Embed(request, timeout=REQUEST_TIMEOUT_S)  # warm-up, and the vectors to compare
    mine = local.embed(texts)
    result = EmbedResult(len(texts), max_abs_difference=float(np.abs(
        np.array([e.values for e in reply.embeddings]) - mine).max()))
    for i in range(repeat):
        for side in (("service", "local") if i % 2 == 0 else ("local", "service")):
            await asyncio.sleep(REST_S)
            started = time.perf_counter()
            if side == "service":
                await stub.Embed(request, timeout=REQUEST_TIMEOUT_S)
                result.service_s.append(time.perf_counter() - started)
            else:
                local.embed(texts)
                result.in_process_s.append(time.perf_counter() - started)
    return result


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- reporting


def _median(values: Any) -> float:
    return float(statistics.median(list(values)))


def _p90(values: Any) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))])


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _opt(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)

def _by_level(levels: Sequence[Level]) -> dict[int, list[Level]]:
    grouped: dict[int, list[Level]] = {}
    for level in levels:
        grouped.setdefault(level.streams, []).append(level)
    return dict(sorted(grouped.items()))

DISTURBED_CORES = 0.25
"""Other processes taking more CPU than this during a measurement: its numbers are suspect."""


def disturbance(runs: Sequence[Run] = (), levels: Sequence[Level] = ()) -> str:
    worst = max([x.others_cores for x in runs] + [x.others_cores for x in levels], default=0.0)
    if worst <= DISTURBED_CORES:
        return f"quiet: other processes took at most {worst:.2f} cores during these measurements"
    return (f"DISTURBED: other processes took up to {worst:.2f} cores of {os.cpu_count()} during these "
            "measurements (see the others' CPU column); re-run when the machine is idle")


def single_table(runs: dict[str, Sequence[Run]]) -> str:
    def row(side: str, rs: Sequence[Run]) -> list[str]:
        server = rs[0].side == "service"
        return [side, str(len(rs)), f"{1000 * _median(x.ttft_s for x in rs):.1f}", f"{1000 * _p90(x.ttft_s for x in rs):.1f}",
                f"{_median(x.decode_tps for x in rs):.2f}", f"{min(x.decode_tps for x in rs):.2f}",
                f"{max(x.decode_tps for x in rs):.2f}",
                _opt(_median(x.server_ttft_ms or 0 for x in rs) if server else None),
                _opt(_median(x.server_tps or 0 for x in rs) if server else None, "{:.2f}"),
                f"{_median(x.completion_tokens for x in rs):.0f}",
                "yes" if all(x.finish == "FINISH_REASON_LENGTH" for x in rs) else "NO",
                f"{_median(1000 * x.cpu_s / max(x.completion_tokens, 1) for x in rs):.1f}",
                f"{_median(x.others_cores for x in rs):.2f} / {max(x.others_cores for x in rs):.2f}"]

    return table(["side", "runs", "TTFT median ms", "TTFT p90 ms", "decode tok/s median", "decode min", "decode max",
                  "node-reported TTFT ms", "node-reported decode tok/s", "tokens", "all max_tokens",
                  "CPU ms per token", "others' CPU cores median / max"], [row(k, v) for k, v in runs.items()])


def slots_table(levels: Sequence[Level]) -> tuple[str, dict[int, float]]:
    by_slots: dict[int, list[Level]] = {}
    for level in levels:
        by_slots.setdefault(level.slots, []).append(level)
    rows, scaling = [], {}
    for slots, group in sorted(by_slots.items()):
        grouped = _by_level(group)
        single = _median(x.aggregate_tps for x in grouped[1])
        for n, g in grouped.items():
            agg = _median(x.aggregate_tps for x in g)
            runs = [r for x in g for r in x.runs]
            if n == 4:
                scaling[slots] = agg / single
            rows.append([slots, n, len(g), f"{agg:.2f}", " / ".join(f"{x.aggregate_tps:.1f}" for x in g),
                         f"{agg / single:.2f}", f"{_median(r.decode_tps for r in runs):.2f}",
                         f"{1000 * _median(r.ttft_s for r in runs):.0f}", f"{1000 * max(r.ttft_s for r in runs):.0f}",
                         "yes" if all(x.all_full for x in g) else "NO",
                         " / ".join(f"{x.others_cores:.2f}" for x in g)])
    return table(["slots", "streams", "rounds", "aggregate tok/s (median)", "each round", "x 1 stream",
                  "per-stream decode tok/s", "TTFT median ms", "TTFT max ms", "all max_tokens",
                  "others' CPU cores"], rows), scaling


def environment(model: str, gguf: Path) -> dict[str, Any]:
    return benchlib.environment(("lanai", "xllamacpp", "mlx", "mlx-cpu", "mlx-lm", "onnxruntime", "tokenizers",
                                 "grpcio", "protobuf", "numpy"), model=model, gguf=str(gguf))


# ---------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    model: str
    tokens: int
    repeat: int
    level_tokens: int
    slots: tuple[int, ...]
    levels: tuple[int, ...]
    rounds: int
    embed_repeat: int


def plan_from(args: argparse.Namespace) -> Plan:
    if args.quick:
        tokens = args.tokens or 24
        return Plan(args.model, tokens, args.repeat or 2, tokens, (1, 4), (1, 4), args.rounds or 1, 2)
    tokens = args.tokens or 128
    return Plan(args.model, tokens, args.repeat or 6, args.tokens or 64, (1, 2, 4), (1, 2, 4), args.rounds or 2, 6)


async def run(plan: Plan, home: Path, out: Path) -> None:
    resolved = model_cache.resolve(home, plan.model, "language", auto_prepare=False, engine=MLX)
    gguf = gguf_path(resolved)
    encoder_dir = model_cache.resolve(home, "minilm-l6", "language", auto_prepare=False).path
    threads = os.cpu_count() or 1
    env = environment(plan.model, gguf)
    report: dict[str, Any] = {"environment": env, "plan": asdict(plan)}
    emit(f"# lanai language benchmark: {plan.model}, {env['cpu_count']} CPU(s), {env['date']}\n")
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lanai-bench-language-") as tmp:
        workdir = Path(tmp)
        default = NodeSpec(LLAMA_CPP, LLAMA_CPP_SLOTS)
        async with running_node(home, plan.model, default, workdir / "llama.log") as (address, pid), \
                grpc.aio.insecure_channel(address) as channel:
            stub = language_pb2_grpc.LanguageStub(channel)
            local = InProcess(gguf, default.slots, threads)
            single = await measure_single(stub, local, default, plan.tokens, plan.repeat)
            local.close()
            report["single"] = {**asdict(single), "service": [r.as_dict() for r in single.service],
                                "in_process": [r.as_dict() for r in single.in_process],
                                "warmup": [r.as_dict() for r in single.warmup]}
            emit(f"## 1. Single stream: GenerateStream on a llama.cpp node ({default.label}) vs xllamacpp in-process "
                 f"({plan.tokens} tokens, {plan.repeat} runs per side, ABBA)\n")
            emit(single_table({"node (llama.cpp)": single.service, "in-process xllamacpp": single.in_process}))
            emit(disturbance(single.service + single.in_process))
            encoder = LocalEncoder(encoder_dir, threads)
            embed = await measure_embed(stub, encoder, plan.embed_repeat)
            report["embed"] = {**asdict(embed), "ratio": embed.ratio}
            report["rss_mb"] = {LLAMA_CPP: rss_mb(pid)}
        mlx = NodeSpec(MLX, 8)
        async with running_node(home, plan.model, mlx, workdir / "mlx.log") as (address, pid), \
                grpc.aio.insecure_channel(address) as channel:
            mlx_runs = await service_runs(language_pb2_grpc.LanguageStub(channel), plan.tokens, plan.repeat)
            report["mlx_single"] = [r.as_dict() for r in mlx_runs]
            report["rss_mb"][MLX] = rss_mb(pid)
        engine_ratio = _median(r.decode_tps for r in single.service) / _median(r.decode_tps for r in mlx_runs)
        emit(f"\n## 2. Single stream, llama.cpp engine vs mlx engine (both nodes, same prompts, {plan.tokens} tokens)\n")
        emit(single_table({"node (llama.cpp)": single.service, "node (mlx, float32 + OpenBLAS)": mlx_runs}))
        levels: list[Level] = []
        for slots in plan.slots:
            spec = NodeSpec(LLAMA_CPP, slots)
            async with running_node(home, plan.model, spec, workdir / f"slots{slots}.log") as (address, _), \
                    grpc.aio.insecure_channel(address) as channel:
                stub = language_pb2_grpc.LanguageStub(channel)
                await service_run(stub, "Warm up: " + PROMPTS[-1], plan.level_tokens)
                levels += await measure_levels(stub, spec, plan.levels, plan.rounds, plan.level_tokens)
        report["slots"] = [x.as_dict() for x in levels]
        text, scaling = slots_table(levels)
        emit(f"\n## 3. Slots: aggregate throughput of concurrent streams ({plan.level_tokens} tokens per stream)\n")
        emit(text)
        emit(disturbance(levels=levels))
        emit(f"\n## 4. Embeddings: Embed of {embed.texts} texts on the node vs onnxruntime in-process "
             f"({plan.embed_repeat} runs per side, ABBA)\n")
        emit(table(["side", "runs", "median s", "texts/s"], [
            ["node (Language/Embed)", len(embed.service_s), f"{_median(embed.service_s):.3f}",
             f"{embed.texts / _median(embed.service_s):.1f}"],
            ["in-process onnxruntime", len(embed.in_process_s), f"{_median(embed.in_process_s):.3f}",
             f"{embed.texts / _median(embed.in_process_s):.1f}"]]))
        emit(f"largest difference between the node's and the in-process vectors: {embed.max_abs_difference:.2e}")
        rss = report["rss_mb"]
        emit("\n## 5. Resident memory of a language node after its runs\n")
        emit(table(["engine", "VmRSS MB"], [[e, f"{v:.0f}"] for e, v in rss.items()]))

    best = max(scaling.values(), default=0.0)
    verdicts += [
        f"- node vs in-process decode tok/s: {single.decode_ratio:.3f} (target >= {DECODE_RATIO_TARGET}): "
        f"{_verdict(single.decode_passed)}; same text on both sides: {'yes' if single.same_text else 'NO'}",
        f"- TTFT node - in-process: {single.ttft_overhead_ms:+.1f} ms (target <= {TTFT_OVERHEAD_TARGET_MS:.0f} ms): "
        f"{_verdict(single.ttft_passed)}",
        f"- llama.cpp vs mlx single-stream decode: {engine_ratio:.2f}x (target >= {ENGINE_RATIO_TARGET}x): "
        f"{_verdict(engine_ratio >= ENGINE_RATIO_TARGET)}",
        "- 4 streams vs 1, by slots: " + ", ".join(f"{s} slots {v:.2f}x" for s, v in sorted(scaling.items()))
        + f" (target >= {BATCH_TARGET}x if any setting reaches it: {_verdict(best >= BATCH_TARGET)})",
        f"- embeddings node vs in-process texts/s at batch {embed.texts}: {embed.ratio:.3f} (target >= "
        f"{EMBED_RATIO_TARGET}): {_verdict(embed.ratio >= EMBED_RATIO_TARGET)}",
        f"- resident memory llama.cpp / mlx: {rss[LLAMA_CPP] / rss[MLX]:.2f} (expected <= {RSS_EXPECTED})"]
    emit("\n## Verdicts\n")
    emit("\n".join(verdicts))
    report.update(verdicts=verdicts, engine_ratio=engine_ratio, slot_scaling=scaling,
                  load_average_at_end=os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    emit(f"\nraw numbers: {out}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--model", default="smollm2-135m", help="embedded language model (default smollm2-135m)")
    p.add_argument("--tokens", type=int, default=0, help="max_tokens per generation (default 128, 64 in part 3; "
                                                        "--quick 24)")
    p.add_argument("--repeat", type=int, default=0, help="single-stream runs per side (default 6; --quick 2)")
    p.add_argument("--rounds", type=int, default=0, help="rounds per concurrency level (default 2; --quick 1)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "language.json",
                   help="JSON file for the raw numbers (default bench/results/language.json)")
    p.add_argument("--quick", action="store_true", help="short generations, fewer runs: a smoke test")
    args = p.parse_args(argv)
    if args.tokens < 0 or args.repeat < 0 or args.rounds < 0:
        p.error("--tokens, --repeat and --rounds must not be negative (0: the default)")
    try:
        asyncio.run(run(plan_from(args), model_cache.default_home(), args.out))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, grpc.aio.AioRpcError) as exc:
        print(f"bench/language.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
