"""Live video: frames in at the sender's pace, results out at the node's, latest wins.

A receiver takes every frame off the wire as it arrives (so nothing queues in gRPC or here) and
keeps only the newest one not yet analysed; the analyser, whenever it is free, takes that frame
and counts the ones it replaced as dropped. Memory per stream is one pending frame, however
far the sender runs ahead. No protobuf here: the servicer converts."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from lanai.services.core.errors import InvalidInput
from lanai.services.vision.image import Picture, decode
from lanai.services.vision.types import TASKS

BYTES_PER_PIXEL = {"rgb24": 3, "rgba32": 4}
RAW_FORMATS = ("rgb24", "rgba32", "yuv420p")


@dataclass(frozen=True)
class RawPixels:
    format: str
    """One of RAW_FORMATS."""
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Frame:
    picture: bytes | RawPixels
    """Encoded image bytes, or raw pixels."""
    capture_us: int
    sequence: int
    arrived: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Settings:
    analyses: tuple[str, ...]
    """In TASKS order."""
    models: dict[str, str]
    """analysis -> the model that runs it (resolved)."""
    top_k: int
    min_confidence: float
    max_side: int
    min_interval_s: float
    """0: analyse as often as the node can."""
    max_wait_s: float
    """inf: no frame is too old."""


def analyses_of(requested: list[str]) -> tuple[str, ...]:
    unknown = [a for a in requested if a not in TASKS]
    if unknown:
        raise InvalidInput(f"unknown analysis {unknown[0]!r}; choose from {', '.join(TASKS)}")
    if not requested:
        raise InvalidInput(f"the config asks for no analysis; set analyses to some of {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in requested)


def rate_limits(max_results_per_second: float, max_latency_ms: int) -> tuple[float, float]:
    """(min interval between analyses, longest a frame may wait) from the config's numbers."""
    if not (max_results_per_second >= 0 and math.isfinite(max_results_per_second)):
        raise InvalidInput(f"max_results_per_second {max_results_per_second} is not a rate; use a positive number "
                           "(0 for as many as the node can)")
    interval = 1 / max_results_per_second if max_results_per_second > 0 else 0.0
    return interval, max_latency_ms / 1000 if max_latency_ms else math.inf


def check_frame(frame: Frame, *, previous_us: int, max_pixels: int, max_bytes: int) -> None:
    """What is cheap to check on arrival (decoding waits for a slot)."""
    if frame.capture_us < previous_us:
        raise InvalidInput(f"frame {frame.sequence}: capture_time_us went backwards ({frame.capture_us} after "
                           f"{previous_us}); send frames with non-decreasing capture times")
    picture = frame.picture
    if isinstance(picture, bytes):
        if not picture:
            raise InvalidInput(f"frame {frame.sequence} has no picture: set encoded or raw")
        if len(picture) > max_bytes:
            raise InvalidInput(f"frame {frame.sequence} is {len(picture):,} bytes; this node accepts at most "
                               f"{max_bytes:,}")
        return
    if picture.format not in RAW_FORMATS:
        raise InvalidInput(f"frame {frame.sequence}: raw frames need a pixel format ({', '.join(RAW_FORMATS)})")
    if picture.width <= 0 or picture.height <= 0:
        raise InvalidInput(f"frame {frame.sequence}: a raw frame of {picture.width}x{picture.height} has no pixels")
    if picture.width * picture.height > max_pixels:
        raise InvalidInput(f"frame {frame.sequence} is {picture.width}x{picture.height} = "
                           f"{picture.width * picture.height:,} pixels; this node accepts at most {max_pixels:,} "
                           "(--max-image-pixels): downscale it")
    expected = raw_size(picture.format, picture.width, picture.height)
    if len(picture.data) != expected:
        raise InvalidInput(f"frame {frame.sequence}: {picture.width}x{picture.height} {picture.format} is "
                           f"{expected:,} bytes, but the frame has {len(picture.data):,}")


def raw_size(fmt: str, width: int, height: int) -> int:
    if fmt == "yuv420p":
        return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
    return width * height * BYTES_PER_PIXEL[fmt]


def to_picture(frame: Frame, *, max_pixels: int, max_side: int) -> Picture:
    """The frame as a Picture for the engine (inside a slot: this is real work)."""
    picture = frame.picture
    if isinstance(picture, bytes):
        return decode(picture, max_pixels=max_pixels, max_side=max_side)
    rgb = _rgb(picture)
    height, width = rgb.shape[:2]
    if max_side and max(width, height) > max_side:
        factor = max_side / max(width, height)
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(width * factor)), max(1, round(height * factor))),
                                                     Image.Resampling.BILINEAR, reducing_gap=2.0))
    return Picture(rgb, width, height)


def _rgb(raw: RawPixels) -> np.ndarray:
    w, h = raw.width, raw.height
    data = np.frombuffer(raw.data, np.uint8)
    if raw.format == "rgb24":
        return np.asarray(data.reshape(h, w, 3))
    if raw.format == "rgba32":
        return np.ascontiguousarray(data.reshape(h, w, 4)[:, :, :3])
    cw, ch = (w + 1) // 2, (h + 1) // 2  # I420, BT.601 limited range
    y = data[: w * h].reshape(h, w).astype(np.float32) - 16
    u = data[w * h: w * h + cw * ch].reshape(ch, cw).repeat(2, 0).repeat(2, 1)[:h, :w].astype(np.float32) - 128
    v = data[w * h + cw * ch:].reshape(ch, cw).repeat(2, 0).repeat(2, 1)[:h, :w].astype(np.float32) - 128
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=-1)
    out: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return out


class Latest:
    """The newest frame not yet analysed; a frame that replaces another counts it as dropped."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._changed = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        if self._frame is not None:
            self.dropped += 1
        self._frame = frame
        self._changed.set()

    def end(self, error: BaseException | None = None) -> None:
        self._ended, self._error = True, error
        self._changed.set()

    def take_now(self) -> Frame | None:
        frame, self._frame = self._frame, None
        return frame

    async def take(self) -> Frame | None:
        """The newest frame, waiting for one; None once the sender has ended and none is left.
        The sender's error is raised as soon as it happens, pending frame or not."""
        while True:
            if self._error is not None:
                raise self._error
            if self._frame is not None:
                return self.take_now()
            if self._ended:
                return None
            self._changed.clear()
            await self._changed.wait()


@dataclass(frozen=True)
class Analysed:
    frame: Frame
    result: object
    """Whatever `analyse` returned for the frame."""
    dropped: int
    waited_s: float


async def analyse_stream(frames: AsyncIterator[Frame], analyse: Callable[[Frame], Awaitable[object]],
                         settings: Settings, check: Callable[[Frame, int], None]) -> AsyncIterator[Analysed]:
    """Results of `analyse` on the newest frame each time it is free, at most one per
    settings.min_interval_s; frames older than settings.max_wait_s are dropped unanalysed."""
    latest = Latest()

    async def receive() -> None:
        previous = 0
        try:
            async for frame in frames:
                check(frame, previous)
                previous = frame.capture_us
                latest.put(frame)
        except Exception as error:  # noqa: BLE001 - handed to the analyser, which raises it
            latest.end(error)
        else:
            latest.end()

    receiver = asyncio.ensure_future(receive())
    last_start = -math.inf
    try:
        while (frame := await latest.take()) is not None:
            wait = last_start + settings.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                if (newer := latest.take_now()) is not None:  # a fresher frame came during the pause
                    latest.dropped += 1
                    frame = newer
            started = time.monotonic()
            if started - frame.arrived > settings.max_wait_s:
                latest.dropped += 1
                continue
            last_start = started
            result = await analyse(frame)
            dropped, latest.dropped = latest.dropped, 0
            yield Analysed(frame, result, dropped, started - frame.arrived)
    finally:
        receiver.cancel()
