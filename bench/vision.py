"""Vision service benchmark: what does the gRPC node cost, and how many images can it serve?

Every number comes from a real node, `lanai node --services vision`, started as a subprocess on
127.0.0.1 (so the node and this client do not share a GIL) and called with grpc.aio. The three
tasks each use one fixed image:

- classify: scikit-image's coffee photo (600x400) as a JPEG, `Vision/Classify`, top 5;
- faces: scikit-image's astronaut photo (512x512) as a PNG, `Vision/DetectFaces`;
- ocr: two lines of black text on white (900x240, Pillow's `ImageFont.load_default(size=52)`)
  as a PNG, `Vision/ReadText`.

1. Overhead: the same image through the node (1 slot x 2 onnxruntime threads, one client,
   sequential calls) and through a `VisionEngine` built in this process with the same models,
   device (CPU) and threads, doing what the node does per request: `image.decode` with the
   node's pixel and side limits, then the engine call. Both sides are warmed up, then they
   alternate in short blocks (service, in-process, in-process, service, ...; 10 runs per block
   for classify, 4 for faces, 2 for OCR) with a 100 ms rest before each block, so machine noise
   hits both alike and neither side's onnxruntime threads still spin (they burn a core for
   ~30-60 ms after each run) while the other side runs. Each block starts with one more run,
   right after the rest, kept apart ("after idle": it pays for waking every thread up, which on
   a shared 2-core VM can cost more than the gRPC call itself). Reports the median and p90 of
   each side's timed runs and the ratio of the medians; the target is <= 1.1 for classify and
   faces (PASS/FAIL), OCR is reported without a target.
   Also split: "outside slot" is the median of (client wall time - compute_ms the node
   reported), i.e. gRPC, protobuf, the interceptor and admission on the event loop; "slot -
   in-process" is what the slot itself took beyond the in-process call (thread hand-off, and
   any difference in the work).
   To locate the outside-slot cost, a few calls the node refuses without inference are timed
   too (INVALID_ARGUMENT, round trip including the error status): with no image and a
   max_side over the node's limit (refused on the event loop: a bare unary call), the same
   with each task's image attached (refused on the loop after receiving and parsing it: adds
   the payload), and an empty image (refused by the decoder inside a slot: adds admission and
   the thread pool hop).
2. Throughput: images per second with 1, 2 and 4 concurrent clients sending back to back for
   a fixed time per cell (10 s; 4 s with --quick), each task in turn, on a node with 2 slots x
   1 thread (the node's default on 2 cores). Each cell is two half windows, run in the order
   1 2 4 4 2 1 clients, so noise from other processes hits every level more evenly. Errors are
   counted apart, by status code; a cell's rate is ok images / time until each window's last
   call returned (clients start no call after the window). Also reports latency and the
   queue_ms/compute_ms the node reported.

Every measurement also reports the share of the machine's cores that other processes used
meanwhile (from /proc: machine busy time, hypervisor steal included, minus this process's and
the node's): on a shared machine, a result taken while others used much of it is noise.

Prints one markdown table per section and writes every raw number, with the environment, to
JSON. Needs the models prepared in $LANAI_HOME (`lanai models prepare efficientnet-lite0 mtcnn
pp-ocrv4`) and scikit-image. On 2 idle cores the full run takes about 3 minutes, --quick about 1.
The node, this client and the in-process engine share the machine's cores: compare numbers
within one run (ratios, alternated runs), not across machines.

Run:  LANAI_HOME=/path/to/home python bench/vision.py [--quick] [--out bench/results/vision.json]
                                                     [--throughput-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, short, table  # noqa: E402
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.services import models as model_cache
from lanai.services.core.errors import LanaiError
from lanai.services.vision.config import VisionConfig
from lanai.services.vision.engine import VisionEngine
from lanai.services.vision.image import decode

MODELS = ("efficientnet-lite0", "mtcnn", "pp-ocrv4")
"""The node's default vision models, one per task; both sides load all three."""
TASKS = ("classify", "faces", "ocr")
RATIO_TARGETS: dict[str, float | None] = {"classify": 1.1, "faces": 1.1, "ocr": None}
CPU_THREADS = 2
"""onnxruntime threads of the overhead node's single slot, and of the in-process engine."""
DEVICE = "cpu"
TOP_K = 5
OCR_LINES = ("Private inference", "stays on your LAN")
NODE_START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
REST_S = 0.1
"""Pause before each block of overhead runs: onnxruntime's pool threads (spinning, when it was on) kept a core busy ~30-60 ms after a run
(measured here), and neither side's block may start while the other's threads still burn a core."""
DISTRIBUTIONS = ("lanai", "onnxruntime", "rapidocr-onnxruntime", "opencv-python", "Pillow", "numpy", "grpcio",
                 "protobuf", "scikit-image")


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class BenchImage:
    task: str
    name: str
    format: str
    width: int
    height: int
    encoded: bytes = field(repr=False)

    @property
    def kib(self) -> float:
        return len(self.encoded) / 1024


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def make_images() -> dict[str, BenchImage]:
    from skimage import data as photos

    text = Image.new("RGB", (900, 240), "white")
    draw = ImageDraw.Draw(text)
    font = ImageFont.load_default(size=52)
    for i, line in enumerate(OCR_LINES):
        draw.text((30, 30 + 100 * i), line, fill="black", font=font)
    coffee, astronaut = photos.coffee(), photos.astronaut()  # type: ignore[no-untyped-call]
    sources = {"classify": ("coffee", coffee, "JPEG"), "faces": ("astronaut", astronaut, "PNG"),
               "ocr": ("two text lines", np.asarray(text), "PNG")}
    return {task: BenchImage(task, name, fmt, int(pixels.shape[1]), int(pixels.shape[0]), _encode(pixels, fmt))
            for task, (name, pixels, fmt) in sources.items()}


# ---------------------------------------------------------------- calls


class Client:
    """One request per task, built once, sent through a stub."""

    def __init__(self, stub: vision_pb2_grpc.VisionStub, images: dict[str, BenchImage]) -> None:
        self.stub = stub
        self._requests = {task: request_for(task, images[task].encoded) for task in TASKS}

    def call(self, task: str) -> Awaitable[Any]:
        """The task's call; resolves to its ClassifyResponse, DetectFacesResponse or ReadTextResponse."""
        request = self._requests[task]
        rpc: Callable[..., Awaitable[Any]] = (self.stub.Classify if task == "classify" else
                                              self.stub.DetectFaces if task == "faces" else self.stub.ReadText)
        return rpc(request, timeout=REQUEST_TIMEOUT_S)

    async def timed(self, task: str) -> tuple[float, Any]:
        started = time.perf_counter()
        response = await self.call(task)
        return time.perf_counter() - started, response


def request_for(task: str, encoded: bytes, max_side: int = 0) -> Any:
    """The node serves one model per task, its default: requests name none."""
    image, options = vision_pb2.Image(encoded=encoded), vision_pb2.ImageOptions(max_side=max_side)
    if task == "classify":
        return vision_pb2.ClassifyRequest(image=image, options=options, top_k=TOP_K)
    if task == "faces":
        return vision_pb2.DetectFacesRequest(image=image, options=options)
    return vision_pb2.ReadTextRequest(image=image, options=options)


def summary(task: str, result: Any) -> str:
    """A comparable one-line digest of either side's result (protobuf or engine values)."""
    if task == "classify":
        return ", ".join(f"{x.name} {x.score:.2f}" for x in result[:3])
    if task == "faces":
        boxes = [(f.box[0], f.box[1], f.box[2], f.box[3]) if isinstance(f.box, tuple)
                 else (f.box.x_min, f.box.y_min, f.box.x_max, f.box.y_max) for f in result]
        return f"{len(boxes)} face(s)" + "".join(f" [{' '.join(f'{v:.0f}' for v in b)}]" for b in boxes)
    return " / ".join(line.text for line in result)


def response_items(task: str, response: Any) -> Any:
    return response.labels if task == "classify" else response.faces if task == "faces" else response.lines


class InProcess:
    """The node's engine in this process, called as the node's servicer calls it per request."""

    def __init__(self, home: Path, threads: int) -> None:
        resolved = [model_cache.resolve(home, name, "vision", auto_prepare=False) for name in MODELS]
        self.engine = VisionEngine(resolved, VisionConfig(slots=1, cpu_threads=threads, device=DEVICE))
        self.config = self.engine.config

    def run(self, task: str, encoded: bytes) -> tuple[float, float, Any]:
        """Wall seconds of the whole request, seconds of its decode, and the result."""
        cfg, engine = self.config, self.engine
        started = time.perf_counter()
        picture = decode(encoded, max_pixels=cfg.max_pixels, max_side=cfg.default_max_side)
        decoded = time.perf_counter()
        model = engine.resolve(task, "")
        if task == "classify":
            result: Any = engine.classify(picture, model, TOP_K, 0.0)
        elif task == "faces":
            result = engine.faces(picture, model, 0.0)
        else:
            result = engine.read_text(picture, model, 0.0)
        return time.perf_counter() - started, decoded - started, result


# ---------------------------------------------------------------- the node


@dataclass(frozen=True)
class NodeSpec:
    slots: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.slots} slot(s) x {self.threads} thread(s)"


@contextlib.asynccontextmanager
async def running_node(home: Path, spec: NodeSpec, log_path: Path) -> AsyncIterator[tuple[str, int]]:
    """A `lanai node` subprocess on 127.0.0.1; yields its address and pid, stops it on exit."""
    args = ["--services", "vision", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", "bench-vision", "--vision-models", ",".join(MODELS),
            "--vision-slots", str(spec.slots), "--vision-threads", str(spec.threads), "--vision-device", DEVICE,
            "--grace", "1", "--discovery", "none", "--no-router"]
    async with node_process(args, log_path, start_timeout_s=NODE_START_TIMEOUT_S,
                            stop_timeout_s=STOP_TIMEOUT_S) as (port, proc):
        yield f"127.0.0.1:{port}", proc.pid


def _channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                      ("grpc.max_send_message_length", 64 << 20)])


class CpuMeter:
    """How much of the machine other processes took while something ran: CPU time the whole machine
    was busy (hypervisor steal included) minus that of this process and the node's, over wall time x
    cores, from /proc (Linux; None elsewhere). 10 ms resolution: meaningful over seconds, not per call."""

    def __init__(self) -> None:
        self.pids: list[int] = [os.getpid()]
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._cpus = os.cpu_count() or 1

    def read(self) -> tuple[float, float, float] | None:
        """(wall, machine busy, ours) in seconds, or None where /proc cannot tell."""
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:9]]
            busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
            ours = 0
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                ours += int(stat[11]) + int(stat[12])  # utime, stime: every thread of the process
        except (OSError, ValueError, IndexError):
            return None
        return time.perf_counter(), busy / self._tick, ours / self._tick

    def others_share(self, since: tuple[float, float, float] | None) -> float | None:
        """Share of all cores (0-1) that other processes used since `since` (a `read()`)."""
        now = self.read()
        if since is None or now is None or now[0] <= since[0]:
            return None
        others = (now[1] - since[1]) - (now[2] - since[2])
        return max(0.0, others) / ((now[0] - since[0]) * self._cpus)


METER = CpuMeter()


# ---------------------------------------------------------------- 1. overhead


@dataclass
class RatioResult:
    task: str
    image: str
    service_s: list[float]
    in_process_s: list[float]
    in_process_decode_s: list[float]
    server_compute_s: list[float]
    """compute_ms the node reported for each timed service run (decode + inference in its slot, with the
    hand-off to and from the slot's thread)."""
    server_queue_s: list[float]
    service_result: str
    in_process_result: str
    service_after_rest_s: list[float] = field(default_factory=list)
    """The untimed first run of each service block, after REST_S idle (not in the ratio)."""
    in_process_after_rest_s: list[float] = field(default_factory=list)
    others_cpu: float | None = None
    """Share of the machine's cores other processes used during the timed blocks (see CpuMeter)."""
    ratio: float = 0.0
    target: float | None = None
    passed: bool | None = None

    @property
    def same_result(self) -> bool:
        return self.service_result == self.in_process_result


async def measure_ratio(client: Client, local: InProcess, image: BenchImage, blocks: int, block_runs: int,
                        warmup: int) -> RatioResult:
    """`blocks` blocks per side, alternating ABBA, each REST_S after the previous one and made of one
    run after that rest (kept apart) and `block_runs` timed runs back to back: a client's sequential
    calls, on a node (or engine) that is busy with them, while noise still hits both sides alike."""
    task = image.task
    warm: Any = None
    local_result: Any = None
    for _ in range(warmup):  # warm-up of both sides, and the results to compare
        await asyncio.sleep(REST_S)
        _, warm = await client.timed(task)
        await asyncio.sleep(REST_S)
        _, _, local_result = local.run(task, image.encoded)
    assert warm is not None
    result = RatioResult(task, image.name, [], [], [], [], [], summary(task, response_items(task, warm)),
                         summary(task, local_result))
    since = METER.read()
    for i in range(blocks):
        for side in (("service", "local") if i % 2 == 0 else ("local", "service")):  # ABBA: cancels drift
            await asyncio.sleep(REST_S)
            if side == "service":
                result.service_after_rest_s.append((await client.timed(task))[0])
                for _ in range(block_runs):
                    seconds, response = await client.timed(task)
                    result.service_s.append(seconds)
                    result.server_compute_s.append(response.served_by.compute_ms / 1000)
                    result.server_queue_s.append(response.served_by.queue_ms / 1000)
            else:
                result.in_process_after_rest_s.append(local.run(task, image.encoded)[0])
                for _ in range(block_runs):
                    seconds, decode_s, _ = local.run(task, image.encoded)
                    result.in_process_s.append(seconds)
                    result.in_process_decode_s.append(decode_s)
    result.others_cpu = METER.others_share(since)
    result.ratio = statistics.median(result.service_s) / statistics.median(result.in_process_s)
    result.target = RATIO_TARGETS[task]
    if result.target is not None:
        result.passed = result.ratio <= result.target
    return result


@dataclass
class ProbeResult:
    probe: str
    where: str
    payload_bytes: int
    seconds: list[float] = field(default_factory=list)


def probe_calls(stub: vision_pb2_grpc.VisionStub,
                images: dict[str, BenchImage]) -> list[tuple[ProbeResult, Callable[[], Awaitable[Any]]]]:
    """Calls the node refuses with INVALID_ARGUMENT before any inference (see the docstring)."""
    too_big = 10 ** 6  # max_side over the node's limit: refused on the event loop, before admission
    rpcs = {"classify": stub.Classify, "faces": stub.DetectFaces, "ocr": stub.ReadText}

    def call(task: str, request: Any) -> Callable[[], Awaitable[Any]]:
        rpc = rpcs[task]
        return lambda: rpc(request, timeout=REQUEST_TIMEOUT_S)

    probes = [(ProbeResult("no image", "event loop", 0), call("classify", request_for("classify", b"", too_big)))]
    for task in TASKS:
        image = images[task]
        probes.append((ProbeResult(f"{task} image ({image.format}, {image.kib:.0f} KiB)", "event loop",
                                   len(image.encoded)), call(task, request_for(task, image.encoded, too_big))))
    probes.append((ProbeResult("empty image", "slot (decoder)", 0), call("classify", request_for("classify", b""))))
    return probes


async def measure_probes(stub: vision_pb2_grpc.VisionStub, images: dict[str, BenchImage],
                         calls: int) -> list[ProbeResult]:
    probes = probe_calls(stub, images)

    async def one(call: Callable[[], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.INVALID_ARGUMENT:
                raise
            return time.perf_counter() - started
        raise RuntimeError("the node accepted a request it should have refused")

    for _, call in probes * 5:  # warm-up
        await one(call)
    for i in range(calls):
        for result, call in (probes if i % 2 == 0 else probes[::-1]):
            result.seconds.append(await one(call))
    return [result for result, _ in probes]


# ---------------------------------------------------------------- 2. throughput


@dataclass
class ThroughputResult:
    node: str
    task: str
    clients: int
    window_s: float
    """Seconds in which clients start calls, summed over the cell's windows."""
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    """From each window's start until its last call returned (clients start no call after the window),
    summed over the cell's windows."""
    images_per_s: float
    latencies_s: list[float]
    queue_s: list[float]
    compute_s: list[float]
    windows: list[tuple[float, int]] = field(default_factory=list)
    """(elapsed_s, ok) of each window, in the order run."""
    others_cpu: float | None = None
    """Share of the machine's cores other processes used meanwhile (see CpuMeter)."""


def merged(parts: Sequence[ThroughputResult]) -> ThroughputResult:
    """One cell from its windows."""
    errors: dict[str, int] = {}
    for part in parts:
        for code, n in part.errors.items():
            errors[code] = errors.get(code, 0) + n
    ok, elapsed = sum(p.ok for p in parts), sum(p.elapsed_s for p in parts)
    shares = [(p.others_cpu, p.elapsed_s) for p in parts if p.others_cpu is not None]
    others = sum(x * w for x, w in shares) / sum(w for _, w in shares) if shares else None
    return ThroughputResult(parts[0].node, parts[0].task, parts[0].clients, sum(p.window_s for p in parts), ok,
                            errors, elapsed, ok / elapsed, [x for p in parts for x in p.latencies_s],
                            [x for p in parts for x in p.queue_s], [x for p in parts for x in p.compute_s],
                            [(p.elapsed_s, p.ok) for p in parts], others)


async def measure_throughput(client: Client, task: str, node: str, clients: int,
                             window_s: float) -> ThroughputResult:
    """One window: `clients` concurrent callers sending the task's image back to back."""
    latencies: list[float] = []
    queue: list[float] = []
    compute: list[float] = []
    errors: dict[str, int] = {}
    since = METER.read()
    started = time.perf_counter()
    deadline = started + window_s

    async def one_client() -> None:
        while time.perf_counter() < deadline:
            try:
                seconds, response = await client.timed(task)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                await asyncio.sleep(0.05)
                continue
            latencies.append(seconds)
            queue.append(response.served_by.queue_ms / 1000)
            compute.append(response.served_by.compute_ms / 1000)

    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return ThroughputResult(node, task, clients, window_s, len(latencies), errors, elapsed,
                            len(latencies) / elapsed, latencies, queue, compute, others_cpu=METER.others_share(since))


# ---------------------------------------------------------------- reporting


def _ms(values: Sequence[float], q: float = 50) -> float:
    return 1000 * float(np.percentile(np.asarray(values, np.float64), q))


def _opt(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def images_table(images: dict[str, BenchImage]) -> str:
    return table(["task", "image", "format", "pixels", "KiB"],
                 [[i.task, i.name, i.format, f"{i.width}x{i.height}", f"{i.kib:.1f}"] for i in images.values()])


def outside_slot_ms(r: RatioResult) -> float:
    """Median of (client wall time - node compute): gRPC, protobuf, interceptor, admission."""
    return 1000 * statistics.median(s - c for s, c in zip(r.service_s, r.server_compute_s))


def ratio_table(results: Sequence[RatioResult]) -> str:
    rows = [[r.task, len(r.service_s), f"{_ms(r.service_s):.1f}", f"{_ms(r.service_s, 90):.1f}",
             f"{_ms(r.in_process_s):.1f}", f"{_ms(r.in_process_s, 90):.1f}", f"{r.ratio:.3f}",
             _opt(r.target, "<= {:.2f}"), _verdict(r.passed), _percent(r.others_cpu)] for r in results]
    return table(["task", "runs", "service median ms", "service p90 ms", "in-process median ms",
                  "in-process p90 ms", "ratio", "target", "verdict", "other processes' CPU"], rows)


BUSY_WARNING = 0.1
"""Share of the cores used by other processes above which a section gets a warning."""


def busy_note(shares: Iterable[float | None]) -> None:
    worst = max((x for x in shares if x is not None), default=None)
    if worst is not None and worst > BUSY_WARNING:
        emit(f"\nWARNING: other processes used up to {100 * worst:.0f}% of the CPUs during these measurements; "
             "the numbers above say more about them than about lanai: rerun on an idle machine.")


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def split_table(results: Sequence[RatioResult]) -> str:
    rows = [[r.task, f"{_ms(r.service_s) - _ms(r.in_process_s):+.2f}", f"{outside_slot_ms(r):.2f}",
             f"{_ms(r.server_compute_s) - _ms(r.in_process_s):+.2f}", f"{_ms(r.server_compute_s):.1f}",
             f"{_ms(r.in_process_decode_s):.2f}", f"{_ms(r.server_queue_s):.2f}",
             f"{_ms(r.service_after_rest_s):.1f} / {_ms(r.in_process_after_rest_s):.1f}",
             "yes" if r.same_result else "NO", short(r.service_result, 44)] for r in results]
    return table(["task", "service - in-process ms", "outside slot ms", "slot - in-process ms",
                  "node compute ms", "decode ms", "queue ms", "after idle: service / in-process ms", "same result",
                  "result"], rows)


def probe_table(results: Sequence[ProbeResult]) -> str:
    rows = [[r.probe, r.where, f"{r.payload_bytes / 1024:.0f}", len(r.seconds), f"{_ms(r.seconds):.2f}",
             f"{_ms(r.seconds, 90):.2f}"] for r in results]
    return table(["refused call", "refused in", "image KiB", "calls", "median ms", "p90 ms"], rows)


def throughput_table(results: Sequence[ThroughputResult]) -> str:
    base = {r.task: r.images_per_s for r in results if r.clients == 1}
    rows = [[r.task, r.clients, r.ok, sum(r.errors.values()), f"{r.elapsed_s:.1f}", f"{r.images_per_s:.1f}",
             _opt(r.images_per_s / base[r.task] if base.get(r.task) else None, "{:.2f}"),
             _opt(_ms(r.latencies_s) if r.latencies_s else None),
             _opt(_ms(r.latencies_s, 90) if r.latencies_s else None),
             _opt(_ms(r.queue_s) if r.queue_s else None), _opt(_ms(r.compute_s) if r.compute_s else None),
             _percent(r.others_cpu)]
            for r in results]
    return table(["task", "clients", "ok", "errors", "elapsed s", "images/s", "x 1 client", "latency median ms",
                  "latency p90 ms", "queue median ms", "compute median ms", "other processes' CPU"], rows)


def environment(home: Path, **extra: Any) -> dict[str, Any]:
    return benchlib.environment(DISTRIBUTIONS, home=str(home), models=MODELS, device=DEVICE, **extra)


# ---------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    blocks: dict[str, int]
    """Overhead blocks per side, by task."""
    block_runs: dict[str, int]
    """Timed runs per overhead block, by task."""
    warmup: dict[str, int]
    probe_calls: int
    ratio_node: NodeSpec
    throughput_node: NodeSpec
    throughput_window_s: float
    throughput_clients: tuple[int, ...]


BLOCK_RUNS = {"classify": 10, "faces": 4, "ocr": 2}


def plan_from(args: argparse.Namespace) -> Plan:
    ratio_node, throughput_node = NodeSpec(1, CPU_THREADS), NodeSpec(2, 1)
    if args.quick:
        return Plan({"classify": 6, "faces": 4, "ocr": 2}, BLOCK_RUNS, {"classify": 10, "faces": 3, "ocr": 1}, 40,
                    ratio_node, throughput_node, args.throughput_seconds or 4.0, (1, 2, 4))
    return Plan({"classify": 30, "faces": 24, "ocr": 8}, BLOCK_RUNS, {"classify": 20, "faces": 5, "ocr": 2}, 200,
                ratio_node, throughput_node, args.throughput_seconds or 10.0, (1, 2, 4))


@dataclass
class Results:
    ratio: list[RatioResult] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    node_start_s: dict[str, float] = field(default_factory=dict)


async def overhead(plan: Plan, client: Client, local: InProcess, images: dict[str, BenchImage],
                   results: Results) -> None:
    for task in TASKS:
        result = await measure_ratio(client, local, images[task], plan.blocks[task], plan.block_runs[task],
                                     plan.warmup[task])
        results.ratio.append(result)
        emit(f"- {task}: {len(result.service_s)} runs per side, ratio {result.ratio:.3f}")
    emit(f"\n## Overhead: through the node vs the engine in-process (node {plan.ratio_node.label}; "
         f"in-process {CPU_THREADS} threads; one client, sequential)\n")
    emit(ratio_table(results.ratio))
    busy_note(r.others_cpu for r in results.ratio)
    emit("\n### Where the difference is (medians)\n")
    emit(split_table(results.ratio))
    results.probes = await measure_probes(client.stub, images, plan.probe_calls)
    emit("\n### Round trips the node refuses before inference (INVALID_ARGUMENT)\n")
    emit(probe_table(results.probes))


async def throughput(plan: Plan, client: Client, results: Results) -> None:
    spec = plan.throughput_node
    cells: list[ThroughputResult] = []
    for task in TASKS:
        for _ in range(2):  # warm both slots on this task
            await asyncio.gather(client.call(task), client.call(task))
        windows: list[ThroughputResult] = []
        levels = plan.throughput_clients
        for clients in (*levels, *reversed(levels)):  # two half windows per cell, 1 2 4 4 2 1: a burst of
            windows.append(await measure_throughput(  # noise from elsewhere hits every level more evenly
                client, task, spec.label, clients, plan.throughput_window_s / 2))
        for clients in levels:
            cell = merged([w for w in windows if w.clients == clients])
            cells.append(cell)
            emit(f"- {task}, {clients} client(s): {cell.images_per_s:.1f} images/s "
                 f"(windows: {', '.join(f'{ok / s:.1f}' for s, ok in cell.windows)}), "
                 f"{sum(cell.errors.values())} error(s)")
    results.throughput = cells
    emit(f"\n## Throughput, {plan.throughput_window_s:.0f} s per cell (node {spec.label})\n")
    emit(throughput_table(cells))
    busy_note(r.others_cpu for r in cells)


async def run(plan: Plan, home: Path, out: Path) -> None:
    started = time.perf_counter()
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM ends the run like Ctrl-C does: cancelled, so every node is stopped on the way out.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    local = InProcess(home, CPU_THREADS)  # fails early, with the fix, if a model is not prepared
    images = make_images()
    env = environment(home, cpu_threads_in_process=CPU_THREADS, top_k=TOP_K,
                      max_side=local.config.default_max_side, max_pixels=local.config.max_pixels)
    emit(f"# lanai vision benchmark: {env['cpu_count']} CPU(s), {env['date']}\n\n## Images\n")
    emit(images_table(images))
    results = Results()
    with tempfile.TemporaryDirectory(prefix="lanai-bench-vision-") as tmp:
        for spec, measure in ((plan.ratio_node, "overhead"), (plan.throughput_node, "throughput")):
            emit(f"\nstarting a node with {spec.label} for the {measure} ...")
            launched = time.perf_counter()
            log_path = Path(tmp) / f"node-{spec.slots}x{spec.threads}.log"
            async with running_node(home, spec, log_path) as (address, pid), _channel(address) as channel:
                METER.pids[1:] = [pid]
                await asyncio.wait_for(channel.channel_ready(), 30)
                results.node_start_s[spec.label] = time.perf_counter() - launched
                client = Client(vision_pb2_grpc.VisionStub(channel), images)
                if measure == "overhead":
                    await overhead(plan, client, local, images, results)
                else:
                    await throughput(plan, client, results)
    total = time.perf_counter() - started
    report = {
        "environment": env, "load_average_at_end": os.getloadavg(), "plan": asdict(plan), "total_s": total,
        "images": [{k: v for k, v in asdict(i).items() if k != "encoded"} | {"bytes": len(i.encoded)}
                   for i in images.values()],
        "summary": {
            "ratio": {r.task: {"service_median_ms": _ms(r.service_s), "service_p90_ms": _ms(r.service_s, 90),
                               "in_process_median_ms": _ms(r.in_process_s),
                               "in_process_p90_ms": _ms(r.in_process_s, 90), "ratio": r.ratio, "target": r.target,
                               "passed": r.passed, "outside_slot_median_ms": outside_slot_ms(r),
                               "same_result": r.same_result, "others_cpu": r.others_cpu} for r in results.ratio},
            "probes_median_ms": {r.probe: _ms(r.seconds) for r in results.probes},
            "throughput_images_per_s": [{"task": r.task, "clients": r.clients, "images_per_s": r.images_per_s,
                                         "errors": r.errors, "others_cpu": r.others_cpu}
                                        for r in results.throughput],
        },
        "results": asdict(results),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_rounded(report), indent=1) + "\n")
    emit(f"\ntotal {total:.0f} s; load average at start {_loads(env['load_average_at_start'])}, at end "
         f"{_loads(os.getloadavg())}; raw numbers: {out}")


def _loads(values: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in values)


def _rounded(value: Any) -> Any:
    """Floats to 7 decimals (0.1 us on seconds) to keep the JSON small; the rest as it is."""
    if isinstance(value, float):
        return round(value, 7)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--throughput-seconds", type=float, default=0.0,
                   help="seconds per throughput cell (default 10; --quick 4)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "vision.json",
                   help="JSON file for the raw numbers (default bench/results/vision.json)")
    p.add_argument("--quick", action="store_true", help="fewer runs and shorter cells: a smoke test")
    args = p.parse_args(argv)
    if args.throughput_seconds < 0:
        p.error("--throughput-seconds must not be negative (0: the default)")
    try:
        asyncio.run(run(plan_from(args), model_cache.default_home(), args.out))
    except (RuntimeError, OSError, subprocess.SubprocessError, grpc.aio.AioRpcError, LanaiError) as exc:
        print(f"bench/vision.py: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench/vision.py: interrupted; no results written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
