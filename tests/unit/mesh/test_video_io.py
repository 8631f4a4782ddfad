"""`lanai vision watch`'s video pieces: frames as StreamAnalyze takes them, the camera device per
system, and the annotated copy (every frame written once, in order, drawn with the newest result
at or before it, and never more than WAITING_FRAMES held)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lanai.api.vision.v1 import vision_pb2
from lanai.mesh.cli import video_io
from lanai.mesh.cli.video_io import AnnotatedWriter, SourceFrame, VideoError, camera_device, codec_for, to_request


def source_frame(sequence: int, width: int = 64, height: int = 48, shade: int = 90) -> SourceFrame:
    pixels = np.full((height, width, 3), shade, np.uint8)
    return SourceFrame(sequence, sequence / 15, av.VideoFrame.from_ndarray(pixels, format="rgb24"))


def test_frames_go_as_jpeg_or_raw_yuv_or_raw_rgb_for_odd_sizes() -> None:
    jpeg = to_request(source_frame(3), "jpeg").frame
    assert jpeg.encoded[:2] == b"\xff\xd8" and jpeg.sequence == 3 and jpeg.capture_time_us == 200_000
    raw = to_request(source_frame(1), "raw").frame.raw
    assert raw.format == vision_pb2.PIXEL_FORMAT_YUV420P and len(raw.data) == 64 * 48 * 3 // 2
    odd = to_request(source_frame(1, width=63, height=47), "raw").frame.raw
    assert odd.format == vision_pb2.PIXEL_FORMAT_RGB24 and len(odd.data) == 63 * 47 * 3


def test_camera_devices_per_system() -> None:
    assert camera_device(2, "linux") == ("/dev/video2", "v4l2")
    assert camera_device(0, "darwin") == ("0:none", "avfoundation")
    with pytest.raises(VideoError, match="dshow"):
        camera_device(0, "win32")


def test_output_codecs_avoid_gpl_encoders() -> None:
    assert codec_for(Path("a.webm")) == "libvpx" and codec_for(Path("a.MP4")) == "mpeg4"


def result(sequence: int, x: float) -> vision_pb2.StreamAnalyzeResponse:
    face = vision_pb2.Face(box=vision_pb2.Box(x_min=x, y_min=10, x_max=x + 20, y_max=40), confidence=0.9)
    return vision_pb2.StreamAnalyzeResponse(sequence=sequence, faces=[face],
                                            image_size=vision_pb2.ImageSize(width=64, height=48))


def green_columns(frame: np.ndarray) -> set[int]:
    return {int(c) for c in np.nonzero(((frame[..., 1] > 150) & (frame[..., 0] < 100)).any(axis=0))[0]}


def test_each_frame_is_drawn_with_the_newest_result_at_or_before_it(tmp_path: Path) -> None:
    path = tmp_path / "out.mkv"
    writer = AnnotatedWriter(path, 64, 48, Fraction(15))
    for i in range(1, 7):
        writer.add(source_frame(i))
    writer.result(result(2, 5))  # frame 1: nothing yet; 2: its own result
    assert writer.written == 2
    writer.result(result(5, 30))  # 3, 4 (dropped by the node) hold frame 2's box; 5 its own
    writer.close()  # 6 waits for a result that never comes: written with the newest
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6
    assert not green_columns(frames[0])
    for i in (1, 2, 3):
        assert 5 in green_columns(frames[i]) and 30 not in green_columns(frames[i]), i
    for i in (4, 5):
        assert 30 in green_columns(frames[i]) and 5 not in green_columns(frames[i]), i


def test_frames_waiting_for_a_result_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_io, "WAITING_FRAMES", 4)
    writer = AnnotatedWriter(tmp_path / "out.mp4", 64, 48, Fraction(15))
    for i in range(1, 11):
        writer.add(source_frame(i))
    assert writer.written == 6  # the node answered nothing: only 4 held
    writer.close()
    assert writer.written == 10
