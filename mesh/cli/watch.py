"""`lanai vision watch VIDEO|--camera N`: a live Vision/StreamAnalyze. Frames go at the video's
own pace (or as fast as they decode), results are printed as they come, and `--output` writes
the video with them drawn on. Ctrl-C stops sending: the last frame's result still arrives and
the output file is finished."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from lanai.api.vision.v1 import vision_pb2
from lanai.mesh import streamcall
from lanai.mesh.cli import connect
from lanai.mesh.cli.progress import ProgressLine
from lanai.mesh.cli.video_io import AnnotatedWriter, Source, SourceFrame, VideoError, to_request

STREAM_PATH = "/lanai.vision.v1.Vision/StreamAnalyze"
ANALYSES = ("faces", "classify", "ocr")
WRITES_WAITING = 32
"""Frames queued for the annotated copy's encoder before the sender waits for it."""


def add_parser(tasks: Any) -> None:
    w = tasks.add_parser(
        "watch", help="analyse a video file, stream or camera live: print results, draw them on a copy",
        description="Stream a video to a node's (or the mesh's) Vision/StreamAnalyze. When frames come faster "
                    "than the node analyses them, it analyses the newest and counts the rest as dropped, so "
                    "results stay current.")
    w.add_argument("video", nargs="?", help="a video file, or a URL FFmpeg opens (rtsp://camera.lan/stream)")
    w.add_argument("--camera", type=int, metavar="N", help="camera N instead of a file (/dev/videoN on Linux, "
                                                           "AVFoundation device N on macOS)")
    w.add_argument("--camera-size", default="640x480", help="camera frame size (default 640x480)")
    w.add_argument("--camera-fps", type=float, default=15.0, help="camera frame rate (default 15)")
    w.add_argument("--input-format", default="", help="FFmpeg input format (v4l2, avfoundation, dshow, ...; "
                                                      "default: guessed)")
    w.add_argument("--analyses", default="faces", help=f"comma-separated: {', '.join(ANALYSES)} (default faces)")
    w.add_argument("--model", action="append", default=[], metavar="ANALYSIS=MODEL",
                   help="model for one analysis, e.g. faces=mtcnn (default: the node's default); repeatable")
    w.add_argument("--top", type=int, default=0, help="labels per frame for classify (default 5)")
    w.add_argument("--min-confidence", type=float, default=0.0, help="drop results below this (0 to 1)")
    w.add_argument("--max-side", type=int, default=0, help="the node downscales to this longest side first")
    w.add_argument("--max-results-per-second", type=float, default=0.0,
                   help="at most this many results a second (default: as many as the node can)")
    w.add_argument("--max-latency-ms", type=int, default=0,
                   help="a frame that waited longer than this on the node is dropped, not analysed late")
    w.add_argument("--as-fast-as-possible", action="store_true",
                   help="send frames as fast as they decode, not at the video's pace")
    w.add_argument("--send", choices=("jpeg", "raw"), default="jpeg",
                   help="jpeg (default: small on the wire) or raw YUV 4:2:0 (no encoding, 1.5 bytes a pixel)")
    w.add_argument("--output", type=Path, help="write the video with the results drawn on (.mp4, .mkv, .webm)")
    w.add_argument("--json", action="store_true", help="print each result as one line of JSON")
    w.add_argument("--timeout", type=float, default=None, help="deadline for the whole stream in seconds "
                                                               "(default: none)")
    connect.add_flags(w)
    w.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        if (args.video is None) == (args.camera is None):
            raise ValueError("give a VIDEO (file or URL) or --camera N, not both or neither")
        if args.output is not None:
            _check_writable(args.output)
        source = (Source.camera(args.camera, args.camera_size, args.camera_fps, args.input_format)
                  if args.camera is not None else Source.open(args.video, args.input_format))
    except (ValueError, VideoError) as exc:
        print(f"lanai vision watch: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_watch(args, config, source))
    except VideoError as exc:
        print(f"lanai vision watch: {exc}", file=sys.stderr)
        return 2
    finally:
        source.close()


def _config(args: argparse.Namespace) -> vision_pb2.AnalyzeConfig:
    analyses = [a.strip() for a in args.analyses.split(",") if a.strip()]
    models = {}
    for item in args.model:
        task, _, model = item.partition("=")
        if not model:
            raise ValueError(f"--model {item!r}: write ANALYSIS=MODEL, e.g. faces=mtcnn")
        models[task.strip()] = model.strip()
    # Unknown analyses and models go to the node, which answers with what it serves.
    return vision_pb2.AnalyzeConfig(analyses=analyses, models=models, top_k=args.top,
                                    min_confidence=args.min_confidence, max_side=args.max_side,
                                    max_results_per_second=args.max_results_per_second,
                                    max_latency_ms=args.max_latency_ms)


class _Tally:
    """What the summary line reports."""

    def __init__(self) -> None:
        self.sent = self.analysed = self.dropped = 0
        self.latency_ms: deque[float] = deque(maxlen=100_000)
        self.compute_ms: deque[float] = deque(maxlen=100_000)
        self.nodes: Counter[str] = Counter()

    def summary(self) -> str:
        text = f"{self.sent} frames sent, {self.analysed} analysed, {self.dropped} dropped (latest wins)"
        if len(self.latency_ms) >= 2:
            p50, p90 = (statistics.quantiles(self.latency_ms, n=10, method="inclusive")[i] for i in (4, 8))
            text += (f"; sent to result p50 {p50:.0f} ms, p90 {p90:.0f} ms; "
                     f"compute {statistics.median(self.compute_ms):.0f} ms a frame")
        if self.nodes:
            text += "; served by " + ", ".join(f"{node} ({n})" for node, n in self.nodes.most_common())
        return text


async def _watch(args: argparse.Namespace, config: vision_pb2.AnalyzeConfig, source: Source) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows' loop
        loop.add_signal_handler(signal.SIGINT, _stop_once(loop, stopping))
    tally, sent_at = _Tally(), deque[tuple[int, float]]()
    progress = ProgressLine(source.duration_s, "s", enabled=not source.live and sys.stderr.isatty() and not args.json)
    writer = (AnnotatedWriter(args.output, source.width, source.height, source.rate)
              if args.output is not None else None)
    encoder = _Serial(WRITES_WAITING)
    frames = source.frames()

    async def requests() -> AsyncIterator[bytes]:
        yield vision_pb2.StreamAnalyzeRequest(config=config).SerializeToString()
        started: float | None = None
        while not stopping.is_set():
            prepared = await asyncio.to_thread(_next, frames, args.send)
            if prepared is None:
                return
            frame, request = prepared
            if not (args.as_fast_as_possible or source.live):  # a file at its own pace
                started = time.monotonic() - frame.time_s if started is None else started
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), started + frame.time_s - time.monotonic())
                if stopping.is_set():
                    return
            if writer is not None:
                await encoder.submit(writer.add, frame)
            sent_at.append((frame.sequence, time.monotonic()))
            yield request
            tally.sent += 1
            progress.update(done=frame.time_s, text=f"{tally.sent} sent, {tally.analysed} analysed, "
                                                   f"{tally.dropped} dropped")

    code = 0
    try:
        async with connect.aio_channel(args, [("grpc.max_send_message_length", 64 << 20)],
                                       key_interceptors=False) as channel:
            # Written by lanai.mesh.streamcall, so a refused config shows the node's own status.
            call = streamcall.open_stream(channel, STREAM_PATH, server_streaming=True, requests=requests(),
                                          timeout=args.timeout, metadata=connect.key_pairs(args),
                                          response_deserializer=vision_pb2.StreamAnalyzeResponse.FromString)
            async for result in call:
                now = time.monotonic()
                while sent_at and sent_at[0][0] < result.sequence:
                    sent_at.popleft()
                if sent_at and sent_at[0][0] == result.sequence:
                    tally.latency_ms.append((now - sent_at.popleft()[1]) * 1000)
                tally.analysed += 1
                tally.dropped += result.dropped
                tally.compute_ms.append(result.served_by.compute_ms)
                tally.nodes[result.served_by.node_id] += 1
                progress.clear()
                print(json_format.MessageToJson(result, indent=None) if args.json else _line(result), flush=True)
                if writer is not None:
                    await encoder.submit(writer.result, result)
    except grpc.aio.AioRpcError as exc:
        progress.clear()
        print(f"lanai vision watch: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
        code = 1
    finally:
        progress.clear()
        if writer is not None:  # what was sent is written, even after an error or Ctrl-C
            await encoder.submit(writer.close)
            await encoder.drain()
    print(tally.summary() + (f"; wrote {writer.written} frames to {writer.path}" if writer else ""), file=sys.stderr)
    return code


def _check_writable(path: Path) -> None:
    """Find out now, not after the stream has run, that the annotated copy cannot be written."""
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror}") from None


def _next(frames: Any, send: str) -> tuple[SourceFrame, bytes] | None:
    frame = next(frames, None)
    return None if frame is None else (frame, to_request(frame, send).SerializeToString())


def _line(result: vision_pb2.StreamAnalyzeResponse) -> str:
    parts = []
    if result.faces:
        parts.append(f"{len(result.faces)} face{'s' if len(result.faces) > 1 else ''} ("
                     + ", ".join(f"{f.confidence:.0%} at {f.box.x_min:.0f},{f.box.y_min:.0f}" for f in result.faces)
                     + ")")
    if result.labels:
        parts.append(", ".join(f"{label.name} {label.score:.0%}" for label in result.labels[:3]))
    if result.lines:
        parts.append(" / ".join(repr(line.text) for line in result.lines))
    served = result.served_by
    dropped = f", {result.dropped} dropped" if result.dropped else ""
    return (f"frame {result.sequence} @ {result.capture_time_us / 1e6:.2f} s: {'; '.join(parts) or 'nothing found'}"
            f"  [{served.node_id}, {served.compute_ms:.0f} ms{dropped}]")


def _stop_once(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> Callable[[], None]:
    """The first Ctrl-C stops sending (the results due still arrive); a second one quits."""
    def handler() -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        print("\nstopping: waiting for the last result (Ctrl-C again to quit now)", file=sys.stderr)
    return handler


class _Serial:
    """Runs calls one at a time, in order, on one thread; at most `limit` waiting (the caller
    waits for room), so a slow encoder holds the sender back instead of filling memory."""

    def __init__(self, limit: int) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lanai-video-out")
        self._room = asyncio.Semaphore(limit)
        self._pending: set[asyncio.Future[Any]] = set()
        self._error: BaseException | None = None

    async def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)`; raises the failure of an earlier call (the rest would fail too)."""
        if self._error is not None:
            raise self._error
        await self._room.acquire()
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._room.release()
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    async def drain(self) -> None:
        """Wait for every queued call; raise the first failure."""
        try:
            await asyncio.gather(*self._pending, return_exceptions=True)
        finally:
            self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
