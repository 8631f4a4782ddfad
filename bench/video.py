"""Live video benchmark (issue 14): does Vision/StreamAnalyze keep results current?

Every stream goes to real `lanai node --services vision` subprocesses on 127.0.0.1 (and, in part
3, through a real `lanai router`), called with grpc.aio from this process. The frames are a
640x480 test video made here: scikit-image's astronaut (scaled to 240x240) sliding across a grey
frame and back, 90 distinct frames encoded once as JPEG (quality 85, ~25 KiB each, what an MJPEG
camera hands out) and sent in a loop, so the sender costs next to nothing. Every stream asks
for faces (MTCNN) and leaves the rest at the defaults.

1. Latency at the camera's pace: one stream at 15 fps for 60 s (--seconds) to a node with
   1 slot x 2 onnxruntime threads. A frame's capture time is the moment the sender was due to
   send it (a sender that falls behind shows up as latency); its latency is capture -> its
   result back here. Reports p50/p90 latency, the node's compute time per frame (served_by),
   the least-squares trend of latency over the run (ms per minute, and the rise it predicts
   over the whole run), the median of the first and the last third, frames dropped, and the
   node's resident memory at the start and the end. Targets: p90 <= 2x the median compute
   time; no upward trend: the fitted rise over the run is under half a frame's compute time (a
   queue that grew by one frame per run would be more than that).
2. Throughput against the same loop in-process: a sender twice as fast as the in-process loop
   (measured first) streams to the same node in blocks of 8 s (--block-seconds), alternated
   with blocks of the in-process loop (node, here, here, node, ...): the node's engine built in
   this process with the same model and threads, decoding each frame as the node does
   (video.to_picture) and running faces on it, back to back. Reports analysed frames/s of each
   and the ratio of the medians over the blocks (target >= 0.9). The node drops what it has no
   time for (latest wins), so its analysed rate is its capacity, not the sender's rate.
3. Two nodes: two concurrent streams (each sent at 30 fps, more than one thread can analyse)
   through a router to one node with 2 slots x 1 thread, then through a router to two nodes
   with 1 slot x 1 thread each; one stream alone first, for reference. Reports analysed
   frames/s in all, per stream, latency p50/p90 and which node served each stream. Reported,
   no target: on one 2-core machine the two nodes share the same cores, so this shows that
   the router spreads the streams and what that costs, not what two machines would gain.

Prints a markdown table per part and writes every raw number, with the environment, to JSON.
Needs the mtcnn model prepared in $LANAI_HOME (`lanai models prepare mtcnn`) and
scikit-image. The full run takes about 4 minutes; --quick (15 s at 15 fps, 4 s blocks, 6 s in
part 3) about 1.5.

Run:  LANAI_HOME=/path/to/home python bench/video.py [--quick] [--seconds 60] [--block-seconds 8]
                                                   [--out bench/results/video.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, table  # noqa: E402
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.services import models as model_cache
from lanai.services.vision import convert, video
from lanai.services.vision.config import VisionConfig
from lanai.services.vision.engine import VisionEngine

MODEL = "mtcnn"
WIDTH, HEIGHT, FPS = 640, 480, 15.0
DISTINCT_FRAMES = 90
THREADS = 2
"""onnxruntime threads of the part 1 and 2 node's single slot, and of the in-process engine."""
PART3_FPS = 30.0
DISTRIBUTIONS = ("lanai", "onnxruntime", "opencv-python", "Pillow", "numpy", "grpcio", "protobuf", "scikit-image")


# ---------------------------------------------------------------- frames


def make_frames() -> list[bytes]:
    """The astronaut sliding right and back across a 640x480 frame, as JPEGs."""
    from skimage import data as photos

    face = np.asarray(Image.fromarray(photos.astronaut()).resize((240, 240)))
    span = WIDTH - 240
    frames = []
    for i in range(DISTINCT_FRAMES):
        phase = i / (DISTINCT_FRAMES / 2)
        x = round(span * (phase if phase <= 1 else 2 - phase))
        pixels = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        pixels[120:360, x:x + 240] = face
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    return frames


# ---------------------------------------------------------------- one stream


@dataclass
class Result:
    sequence: int
    capture_s: float
    """When the sender was due to send the frame, from the stream's start."""
    latency_s: float
    compute_ms: float
    waited_ms: float
    dropped: int
    node: str
    faces: int


@dataclass
class Stream:
    sent: int = 0
    seconds: float = 0.0
    """From the stream's start to its last result."""
    results: list[Result] = field(default_factory=list)

    @property
    def analysed_fps(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0

    @property
    def dropped(self) -> int:
        return sum(r.dropped for r in self.results)


async def stream(stub: vision_pb2_grpc.VisionStub, frames: Sequence[bytes], fps: float, seconds: float) -> Stream:
    """One StreamAnalyze: frames sent at `fps` for `seconds` (the sender waits only when gRPC's
    flow control makes it), results read as they come."""
    out = Stream()
    call = stub.StreamAnalyze(timeout=seconds + 120)
    await call.write(vision_pb2.StreamAnalyzeRequest(config=vision_pb2.AnalyzeConfig(analyses=["faces"])))
    start = time.perf_counter()
    due: dict[int, float] = {}

    async def send() -> None:
        count = round(seconds * fps)
        for i in range(count):
            at = i / fps
            if (wait := start + at - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            due[i + 1] = at
            await call.write(vision_pb2.StreamAnalyzeRequest(frame=vision_pb2.VideoFrame(
                capture_time_us=round(at * 1e6), sequence=i + 1, encoded=frames[i % len(frames)])))
            out.sent += 1
        await call.done_writing()

    sender = asyncio.create_task(send())
    async for r in call:
        now = time.perf_counter() - start
        out.results.append(Result(r.sequence, due[r.sequence], now - due[r.sequence], r.served_by.compute_ms,
                                  r.waited_ms, r.dropped, r.served_by.node_id, len(r.faces)))
    await sender
    out.seconds = time.perf_counter() - start
    return out


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])


# ---------------------------------------------------------------- processes


def node_args(home: Path, node_id: str, slots: int, threads: int) -> list[str]:
    return ["--services", "vision", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", node_id, "--vision-models", MODEL, "--vision-slots", str(slots),
            "--vision-threads", str(threads), "--vision-device", "cpu", "--grace", "1", "--discovery", "none",
            "--no-router"]


@contextlib.asynccontextmanager
async def mesh(home: Path, logs: Path, name: str, nodes: Sequence[tuple[int, int]]) -> AsyncIterator[str]:
    """Nodes ((slots, threads) each) and a router naming them; yields the router's address."""
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for i, (slots, threads) in enumerate(nodes):
            node_id = f"{name}-{i + 1}"
            port, _ = await stack.enter_async_context(node_process(node_args(home, node_id, slots, threads),
                                                                   logs / f"{node_id}.log"))
            ports.append(port)
        router_port, _ = await stack.enter_async_context(node_process(
            ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--home", str(home), "--grace", "1",
             "--node-id", f"{name}-router", "--peers", ",".join(f"127.0.0.1:{p}" for p in ports)],
            logs / f"{name}-router.log", command="router"))
        async with channel(f"127.0.0.1:{router_port}") as ch:  # wait until the router sees every node
            stub = vision_pb2_grpc.VisionStub(ch)
            deadline = time.monotonic() + 60
            while True:
                try:
                    await stub.DetectFaces(vision_pb2.DetectFacesRequest(), timeout=5)
                except grpc.aio.AioRpcError as e:
                    if e.code() == grpc.StatusCode.INVALID_ARGUMENT or time.monotonic() > deadline:
                        break  # a node answered (no image: refused without inference)
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # every node's load report in, not only the first
        yield f"127.0.0.1:{router_port}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- the in-process loop


class InProcess:
    """The node's engine in this process, run on each frame as the node's slot does."""

    def __init__(self, home: Path) -> None:
        resolved = model_cache.resolve(home, MODEL, "vision", auto_prepare=False)
        self.engine = VisionEngine([resolved], VisionConfig(slots=1, cpu_threads=THREADS, device="cpu"))
        self.threshold = convert.min_confidence(vision_pb2.ImageOptions())

    def one(self, encoded: bytes) -> int:
        cfg = self.engine.config
        picture = video.to_picture(video.Frame(encoded, 0, 1), max_pixels=cfg.max_pixels, max_side=cfg.default_max_side)
        return len(self.engine.faces(picture, MODEL, self.threshold))

    def loop(self, frames: Sequence[bytes], seconds: float) -> float:
        """Frames analysed per second, back to back, for `seconds`."""
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            self.one(frames[count % len(frames)])
            count += 1
        return count / (time.perf_counter() - start)


# ---------------------------------------------------------------- numbers


def q(values: Sequence[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def trend_ms_per_min(results: Sequence[Result]) -> float:
    if len(results) < 3:
        return float("nan")
    slope, _ = np.polyfit([r.capture_s for r in results], [r.latency_s * 1000 for r in results], 1)
    return float(slope) * 60


def latency_row(label: str, s: Stream, seconds: float) -> dict[str, Any]:
    lat = [r.latency_s * 1000 for r in s.results]
    compute = statistics.median(r.compute_ms for r in s.results)
    trend = trend_ms_per_min(s.results)
    third = len(s.results) // 3
    return {"stream": label, "sent": s.sent, "analysed": len(s.results), "dropped": s.dropped,
            "p50_ms": q(lat, 50), "p90_ms": q(lat, 90), "max_ms": max(lat), "compute_median_ms": compute,
            "trend_ms_per_min": trend, "rise_over_run_ms": trend * seconds / 60,
            "first_third_p50_ms": q(lat[:third], 50), "last_third_p50_ms": q(lat[-third:], 50),
            "latency_target_pass": q(lat, 90) <= 2 * compute,
            "trend_target_pass": abs(trend * seconds / 60) < compute / 2,
            "frames_with_faces": sum(1 for r in s.results if r.faces)}


def verdict(passed: bool | None) -> str:
    return "-" if passed is None else "PASS" if passed else "FAIL"


# ---------------------------------------------------------------- parts


async def part1(home: Path, logs: Path, frames: Sequence[bytes], seconds: float) -> dict[str, Any]:
    async with node_process(node_args(home, "video-1", 1, THREADS), logs / "video-1.log") as (port, proc):
        async with channel(f"127.0.0.1:{port}") as ch:
            stub = vision_pb2_grpc.VisionStub(ch)
            await stream(stub, frames, FPS, 2.0)  # warm-up: the model's first runs
            rss_start = rss_mib(proc.pid)
            samples: list[float] = []

            async def sample() -> None:
                while True:
                    await asyncio.sleep(5)
                    samples.append(rss_mib(proc.pid))

            sampler = asyncio.create_task(sample())
            s = await stream(stub, frames, FPS, seconds)
            sampler.cancel()
            rss_end = rss_mib(proc.pid)
    row = latency_row("15 fps, 1 slot x 2 threads", s, seconds)
    row |= {"rss_start_mib": rss_start, "rss_end_mib": rss_end, "rss_max_mib": max(samples + [rss_end])}
    emit(table(["stream", "sent", "analysed", "dropped", "latency p50 ms", "p90 ms", "max ms", "compute median ms",
                "p90 target (<= 2x compute)", "trend ms/min", "rise over run ms", "first / last third p50 ms",
                "trend target", "node RSS start / end / max MiB"],
               [[row["stream"], row["sent"], row["analysed"], row["dropped"], f"{row['p50_ms']:.1f}",
                 f"{row['p90_ms']:.1f}", f"{row['max_ms']:.1f}", f"{row['compute_median_ms']:.1f}",
                 f"{2 * row['compute_median_ms']:.1f} {verdict(row['latency_target_pass'])}",
                 f"{row['trend_ms_per_min']:+.2f}", f"{row['rise_over_run_ms']:+.2f}",
                 f"{row['first_third_p50_ms']:.1f} / {row['last_third_p50_ms']:.1f}",
                 verdict(row["trend_target_pass"]),
                 f"{rss_start:.0f} / {rss_end:.0f} / {row['rss_max_mib']:.0f}"]]))
    emit(f"\n(faces found in {row['frames_with_faces']} of {row['analysed']} analysed frames; the astronaut "
         "is in every frame)")
    return {"row": row, "results": [asdict(r) for r in s.results], "rss_samples_mib": samples}


async def part2(home: Path, logs: Path, frames: Sequence[bytes], block_s: float, rounds: int) -> dict[str, Any]:
    local = InProcess(home)
    local.loop(frames, 2.0)  # warm-up
    rate = local.loop(frames, 3.0)
    send_fps = 2 * rate
    emit(f"in-process loop: {rate:.1f} frames/s; the node's sender sends {send_fps:.1f} fps\n")
    node_fps: list[float] = []
    here_fps: list[float] = []
    dropped = 0
    async with node_process(node_args(home, "video-2", 1, THREADS), logs / "video-2.log") as (port, _):
        async with channel(f"127.0.0.1:{port}") as ch:
            stub = vision_pb2_grpc.VisionStub(ch)
            await stream(stub, frames, send_fps, 2.0)  # warm-up
            for i in range(rounds):
                for side in ("node", "here") if i % 2 == 0 else ("here", "node"):
                    if side == "node":
                        s = await stream(stub, frames, send_fps, block_s)
                        node_fps.append(s.analysed_fps)
                        dropped += s.dropped
                    else:
                        here_fps.append(await asyncio.to_thread(local.loop, frames, block_s))
    ratio = statistics.median(node_fps) / statistics.median(here_fps)
    emit(table(["side", "blocks", "analysed frames/s median", "each block", "ratio", "target", "verdict"],
               [["node (StreamAnalyze, latest wins)", len(node_fps), f"{statistics.median(node_fps):.2f}",
                 " / ".join(f"{v:.1f}" for v in node_fps), f"{ratio:.3f}", ">= 0.9", verdict(ratio >= 0.9)],
                ["in-process loop", len(here_fps), f"{statistics.median(here_fps):.2f}",
                 " / ".join(f"{v:.1f}" for v in here_fps), "-", "-", "-"]]))
    return {"in_process_fps_probe": rate, "send_fps": send_fps, "node_fps": node_fps, "in_process_fps": here_fps,
            "node_dropped": dropped, "ratio": ratio, "pass": ratio >= 0.9}


async def part3(home: Path, logs: Path, frames: Sequence[bytes], seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, label, nodes, counts in (("one", "one node, 2 slots x 1 thread", [(2, 1)], (1, 2)),
                                       ("two", "two nodes, 1 slot x 1 thread each", [(1, 1), (1, 1)], (2,))):
        async with mesh(home, logs, name, nodes) as address, channel(address) as ch:
            stub = vision_pb2_grpc.VisionStub(ch)
            await stream(stub, frames, PART3_FPS, 2.0)  # warm-up
            for count in counts:
                async def later(i: int) -> Stream:
                    await asyncio.sleep(0.5 * i)  # the router has seen the first stream's load by then
                    return await stream(stub, frames, PART3_FPS, seconds)
                streams = await asyncio.gather(*(later(i) for i in range(count)))
                lat = [r.latency_s * 1000 for s in streams for r in s.results]
                rows.append({"mesh": label, "streams": count,
                             "analysed_fps_total": sum(s.analysed_fps for s in streams),
                             "analysed_fps_each": [s.analysed_fps for s in streams],
                             "dropped": sum(s.dropped for s in streams), "p50_ms": q(lat, 50), "p90_ms": q(lat, 90),
                             "nodes": [sorted({r.node for r in s.results}) for s in streams]})
    emit(table(["mesh", "streams", "analysed frames/s in all", "per stream", "dropped", "latency p50 ms", "p90 ms",
                "served by (per stream)"],
               [[r["mesh"], r["streams"], f"{r['analysed_fps_total']:.2f}",
                 " / ".join(f"{v:.1f}" for v in r["analysed_fps_each"]), r["dropped"], f"{r['p50_ms']:.0f}",
                 f"{r['p90_ms']:.0f}", " / ".join(",".join(n) for n in r["nodes"])] for r in rows]))
    return rows


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (about 1.5 minutes in all)")
    parser.add_argument("--seconds", type=float, help="part 1's stream length (default 60; 15 with --quick)")
    parser.add_argument("--block-seconds", type=float, help="part 2's block length (default 8; 4 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/video.json"))
    args = parser.parse_args()
    home = Path(os.environ.get("LANAI_HOME", Path.home() / ".cache/lanai")).expanduser()
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    block_s = args.block_seconds or (4.0 if args.quick else 8.0)
    part3_s = 6.0 if args.quick else 15.0
    frames = make_frames()
    emit(f"# Live video (bench/video.py), {len(frames)} distinct {WIDTH}x{HEIGHT} JPEG frames, "
         f"median {statistics.median(map(len, frames)) / 1024:.1f} KiB, faces ({MODEL})\n")
    with tempfile.TemporaryDirectory(prefix="lanai-bench-video-") as tmp:
        logs = Path(tmp)
        try:
            emit(f"## 1. Latency at {FPS:.0f} fps for {seconds:.0f} s\n")
            one = await part1(home, logs, frames, seconds)
            emit(f"\n## 2. Analysed frames/s: the node vs the same loop in-process ({block_s:.0f} s blocks)\n")
            two = await part2(home, logs, frames, block_s, rounds=4)
            emit(f"\n## 3. Concurrent streams through a router at {PART3_FPS:.0f} fps each, {part3_s:.0f} s\n")
            three = await part3(home, logs, frames, part3_s)
        except RuntimeError as e:  # a node that did not start: its log says why
            print(f"video benchmark: {e}", file=sys.stderr)
            return 1
    record = {"environment": benchlib.environment(DISTRIBUTIONS, home=str(home), model=MODEL, threads=THREADS,
                                                  seconds=seconds, block_seconds=block_s, part3_seconds=part3_s,
                                                  frames=len(frames), frame_size=[WIDTH, HEIGHT]),
              "latency": one, "throughput": two, "concurrent": three}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    emit(f"\nraw numbers: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
