"""Video in and out for `lanai vision watch`: frames from a file, a stream URL or a camera
(decoded with PyAV), turned into the frames StreamAnalyze takes, and an annotated copy with each
result drawn on the frames it belongs to."""

from __future__ import annotations

import io
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageDraw, ImageFont

from lanai.api.vision.v1 import vision_pb2

JPEG_QUALITY = 85
DEFAULT_RATE = Fraction(25)
WAITING_FRAMES = 120
"""Frames the annotated copy holds while their result is on its way; past this the oldest is
written with the newest result so far (memory stays bounded when the node is slow or gone)."""


class VideoError(Exception):
    """A video that cannot be opened, read or written; the message says which and why."""


@dataclass(frozen=True)
class SourceFrame:
    sequence: int  # 1, 2, 3, ... in decoding order
    time_s: float  # from the first frame, never decreasing
    frame: av.VideoFrame


class Source:
    """The video stream of a file, URL or camera. Iterate `frames()` from one thread at a time."""

    def __init__(self, container: Any, name: str, live: bool) -> None:
        self._container, self.name, self.live = container, name, live
        videos = container.streams.video
        if not videos:
            container.close()
            raise VideoError(f"{name} has no video stream")
        self._stream = videos[0]
        self._stream.thread_type = "AUTO"
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        self.rate = Fraction(self._stream.average_rate or self._stream.guessed_rate or DEFAULT_RATE)
        self.duration_s = (float(self._stream.duration * self._stream.time_base)
                           if self._stream.duration and self._stream.time_base else
                           container.duration / av.time_base if container.duration else 0.0)

    @classmethod
    def open(cls, target: str, input_format: str = "") -> Source:
        """A file path or a URL FFmpeg reads (rtsp://, http://, ...)."""
        return cls(_open(target, input_format or None, {}), target, live="://" in target)

    @classmethod
    def camera(cls, index: int, size: str, fps: float, input_format: str = "") -> Source:
        device, guessed = camera_device(index)
        return cls(_open(device, input_format or guessed, {"video_size": size, "framerate": f"{fps:g}"}),
                   f"camera {index} ({device})", live=True)

    def frames(self) -> Iterator[SourceFrame]:
        first: float | None = None
        last = 0.0
        try:
            for sequence, frame in enumerate(self._container.decode(self._stream), start=1):
                t = float(frame.time) if frame.time is not None else sequence / float(self.rate)
                first = t if first is None else first
                last = max(last, t - first)  # a camera clock that steps back never reaches the node
                yield SourceFrame(sequence, last, frame)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot read {self.name}: {_reason(exc)}") from None

    def close(self) -> None:
        self._container.close()


def camera_device(index: int, platform: str = sys.platform) -> tuple[str, str]:
    """(device, FFmpeg input format) for camera N on this system."""
    if platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if platform == "darwin":
        return f"{index}:none", "avfoundation"  # video device N, no audio
    raise VideoError("--camera N works on Linux (v4l2) and macOS (AVFoundation); elsewhere pass the camera as "
                     "VIDEO with --input-format, e.g. 'video=Integrated Camera' --input-format dshow")


def _open(target: str, input_format: str | None, options: dict[str, str]) -> Any:
    try:
        return av.open(target, format=input_format, options=options, timeout=10.0)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"cannot open {target}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def to_request(frame: SourceFrame, send: str) -> vision_pb2.StreamAnalyzeRequest:
    """The frame as StreamAnalyze takes it: JPEG (small on the wire; the node decodes it) or raw
    pixels (no encoding on either side, 1.5 bytes a pixel as YUV 4:2:0)."""
    video = vision_pb2.VideoFrame(capture_time_us=round(frame.time_s * 1e6), sequence=frame.sequence)
    picture = frame.frame
    if send == "jpeg":
        buffer = io.BytesIO()
        _image(picture).save(buffer, "JPEG", quality=JPEG_QUALITY)
        video.encoded = buffer.getvalue()
    elif picture.width % 2 == 0 and picture.height % 2 == 0:
        video.raw.CopyFrom(vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_YUV420P, width=picture.width,
                                               height=picture.height,
                                               data=picture.to_ndarray(format="yuv420p").tobytes()))
    else:  # YUV 4:2:0 needs even sides
        video.raw.CopyFrom(vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_RGB24, width=picture.width,
                                               height=picture.height,
                                               data=picture.to_ndarray(format="rgb24").tobytes()))
    return vision_pb2.StreamAnalyzeRequest(frame=video)


def _image(frame: av.VideoFrame) -> Image.Image:
    return frame.to_image()  # type: ignore[no-untyped-call, no-any-return]


FACE, TEXT, INK, PAPER = (0, 230, 64), (64, 160, 255), (255, 255, 255), (0, 0, 0)


def draw(image: Image.Image, result: vision_pb2.StreamAnalyzeResponse) -> None:
    """Boxes for faces (green) and text lines (blue), with confidences and text; labels top left."""
    sx = image.width / result.image_size.width if result.image_size.width else 1.0
    sy = image.height / result.image_size.height if result.image_size.height else 1.0
    pen = ImageDraw.Draw(image)
    font = ImageFont.load_default()

    def box(b: Any, colour: tuple[int, int, int], caption: str) -> None:
        corners = (b.x_min * sx, b.y_min * sy, b.x_max * sx, b.y_max * sy)
        pen.rectangle(corners, outline=colour, width=2)
        _caption(pen, font, (corners[0], max(0.0, corners[1] - 12)), caption, colour)

    for face in result.faces:
        box(face.box, FACE, f"{face.confidence:.0%}")
    for line in result.lines:
        box(line.box, TEXT, line.text[:60])
    for i, label in enumerate(result.labels[:5]):
        _caption(pen, font, (4, 4 + 13 * i), f"{label.name} {label.score:.0%}", INK)


def _caption(pen: ImageDraw.ImageDraw, font: Any, at: tuple[float, float], text: str,
             colour: tuple[int, int, int]) -> None:
    left, top, right, bottom = pen.textbbox(at, text, font=font)
    pen.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=PAPER)
    pen.text(at, text, fill=colour, font=font)


def codec_for(path: Path) -> str:
    """An encoder with a permissive licence: VP8 (libvpx, BSD) for .webm, else FFmpeg's own
    MPEG-4 Part 2 (LGPL). Not libx264: it is GPL."""
    return "libvpx" if path.suffix.lower() == ".webm" else "mpeg4"


class AnnotatedWriter:
    """Writes every frame sent, in order, each with the newest result at or before it drawn on
    (a frame the node dropped shows the result before it). Frames wait here for their result,
    at most WAITING_FRAMES of them. Not thread-safe: call it from one thread."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction) -> None:
        self.path, self.written = path, 0
        try:
            container: Any = av.open(str(path), "w")
            stream: Any = container.add_stream(codec_for(path), rate=rate)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"cannot write {path}: {_reason(exc)}") from None
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = max(500_000, int(width * height * float(rate) * 0.2))
        self._container, self._stream = container, stream
        self._rate = rate
        self._waiting: deque[SourceFrame] = deque()
        self._newest: vision_pb2.StreamAnalyzeResponse | None = None

    def add(self, frame: SourceFrame) -> None:
        self._waiting.append(frame)
        while len(self._waiting) > WAITING_FRAMES:
            self._write(self._waiting.popleft())

    def result(self, result: vision_pb2.StreamAnalyzeResponse) -> None:
        while self._waiting and self._waiting[0].sequence < result.sequence:
            self._write(self._waiting.popleft())
        self._newest = result
        while self._waiting and self._waiting[0].sequence == result.sequence:
            self._write(self._waiting.popleft())

    def close(self) -> None:
        """Write what is still waiting (with the newest result) and finish the file."""
        try:
            while self._waiting:
                self._write(self._waiting.popleft())
            self._encode(None)
        finally:
            self._container.close()

    def _write(self, frame: SourceFrame) -> None:
        image = _image(frame.frame)
        if self._newest is not None:
            draw(image, self._newest)
        out = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
        out.pts, out.time_base = self.written, 1 / self._rate
        self._encode(out)
        self.written += 1

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode one frame (None: flush the encoder) into the file."""
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"cannot write {self.path}: {_reason(exc)}") from None
