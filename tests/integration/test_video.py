"""Vision/StreamAnalyze (issue 14, part 1) on a real node with the real MTCNN: a test video of
the astronaut (scikit-image) moving across a wider frame, sent as JPEG, raw RGB and YUV 4:2:0;
a sender far faster than the node gets the newest frames with `dropped` counts instead of a
queue, and the node's video metrics count every frame; every bad input ends the stream with
INVALID_ARGUMENT and a message."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image
from prometheus_client import REGISTRY
from skimage import data as photos

from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.services.vision.config import VisionConfig

from .conftest import INSECURE

pytestmark = pytest.mark.asyncio(loop_scope="session")
WIDTH, HEIGHT = 640, 480
MAX_PIXELS = 2_000_000


def canvas(x: int) -> np.ndarray:
    """A 640x480 frame: grey, with the astronaut (scaled to 240x240) at column x, or none when x < 0."""
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    if x >= 0:
        face = np.asarray(Image.fromarray(photos.astronaut()).resize((240, 240)))
        frame[120:360, x:x + 240] = face
    return frame


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def i420(rgb: np.ndarray) -> bytes:
    """BT.601 limited-range YUV 4:2:0, planar (what a camera or decoder hands out)."""
    r, g, b = (rgb[:, :, i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    sub = lambda p: p.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))  # noqa: E731
    return b"".join(np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes() for p in (y, sub(u), sub(v)))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def video_node(vision_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=vision_home, services=("vision",), host="127.0.0.1", port=0, metrics_port=None,
                        http_port=None, node_id="video-node", security=INSECURE, mesh=LONE,
                        configs={"vision": VisionConfig(slots=1, max_pixels=MAX_PIXELS)})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def vision(video_node: Node) -> AsyncIterator[vision_pb2_grpc.VisionStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{video_node.port}",
                                         options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        yield vision_pb2_grpc.VisionStub(channel)


def config(**fields: object) -> vision_pb2.StreamAnalyzeRequest:
    fields.setdefault("analyses", ["faces"])
    return vision_pb2.StreamAnalyzeRequest(config=vision_pb2.AnalyzeConfig(**fields))  # type: ignore[arg-type]


def frame(i: int, **picture: object) -> vision_pb2.StreamAnalyzeRequest:
    return vision_pb2.StreamAnalyzeRequest(frame=vision_pb2.VideoFrame(capture_time_us=i * 66_667, sequence=i + 1,
                                                                       **picture))  # type: ignore[arg-type]


async def analyse(vision: vision_pb2_grpc.VisionStub, messages: list[vision_pb2.StreamAnalyzeRequest]
                  ) -> list[vision_pb2.StreamAnalyzeResponse]:
    async def requests() -> AsyncIterator[vision_pb2.StreamAnalyzeRequest]:
        for message in messages:
            yield message
    return [r async for r in vision.StreamAnalyze(requests(), timeout=120)]


async def analyse_one_by_one(vision: vision_pb2_grpc.VisionStub, first: vision_pb2.StreamAnalyzeRequest,
                             frames: list[vision_pb2.StreamAnalyzeRequest]) -> list[vision_pb2.StreamAnalyzeResponse]:
    """Each frame sent after the previous result came back: nothing is dropped."""
    call = vision.StreamAnalyze(timeout=120)
    await call.write(first)
    results = []
    for message in frames:
        await call.write(message)
        results.append(await call.read())
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    return results


async def test_faces_are_found_where_the_astronaut_is(vision: vision_pb2_grpc.VisionStub) -> None:
    positions = [-1, 0, 200, 400, -1]
    results = await analyse_one_by_one(vision, config(), [frame(i, encoded=jpeg(canvas(x)))
                                                          for i, x in enumerate(positions)])
    assert [r.sequence for r in results] == [1, 2, 3, 4, 5] and all(r.dropped == 0 for r in results)
    for result, x in zip(results, positions):
        assert (result.image_size.width, result.image_size.height) == (WIDTH, HEIGHT)
        assert len(result.faces) == (0 if x < 0 else 1), (x, list(result.faces))
        if x >= 0:  # her face is in the upper middle of the 240 px square placed at column x
            box = result.faces[0].box
            assert x < box.x_min < box.x_max < x + 240 and 120 < box.y_min < box.y_max < 360
        assert result.served_by.node_id == "video-node" and result.served_by.model == "mtcnn"
        assert result.served_by.compute_ms > 0 and result.capture_time_us == result.sequence * 66_667 - 66_667


async def test_raw_rgb_rgba_and_yuv420_frames(vision: vision_pb2_grpc.VisionStub) -> None:
    pixels = canvas(200)
    rgba = np.concatenate([pixels, np.full((HEIGHT, WIDTH, 1), 255, np.uint8)], axis=2)
    raws = [vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_RGB24, width=WIDTH, height=HEIGHT, data=pixels.tobytes()),
            vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_RGBA32, width=WIDTH, height=HEIGHT, data=rgba.tobytes()),
            vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_YUV420P, width=WIDTH, height=HEIGHT, data=i420(pixels))]
    results = await analyse_one_by_one(vision, config(analyses=["faces", "classify"], top_k=3),
                                       [frame(i, raw=raw) for i, raw in enumerate(raws)])
    boxes = [r.faces[0].box for r in results]
    assert all(len(r.faces) == 1 and len(r.labels) == 3 for r in results), results
    for box in boxes[1:]:  # the same face wherever its pixels came from
        assert abs(box.x_min - boxes[0].x_min) < 8 and abs(box.y_max - boxes[0].y_max) < 8
    assert results[0].served_by.model == "efficientnet-lite0,mtcnn"


def video_samples(task: str) -> dict[str, float]:
    """The node's video counters for one task (the node runs in this process: its registry is ours)."""
    frames = {o: REGISTRY.get_sample_value("lanai_vision_video_frames_total", {"task": task, "outcome": o}) or 0.0
              for o in ("received", "analysed", "dropped")}
    latencies = REGISTRY.get_sample_value("lanai_vision_video_latency_seconds_count", {"task": task}) or 0.0
    return frames | {"latencies": latencies}


async def test_a_sender_faster_than_the_node_gets_the_newest_frames(vision: vision_pb2_grpc.VisionStub) -> None:
    pictures = [jpeg(canvas(x)) for x in range(0, 400, 40)]
    sent = 150  # as fast as gRPC takes them: far faster than one slot runs MTCNN
    before = video_samples("faces")
    results = await analyse(vision, [config()] + [frame(i, encoded=pictures[i % len(pictures)]) for i in range(sent)])
    after = video_samples("faces")
    counted = {k: after[k] - before[k] for k in after}
    assert counted == {"received": sent, "analysed": len(results), "dropped": sent - len(results),
                       "latencies": len(results)}, counted
    sequences = [r.sequence for r in results]
    assert sequences == sorted(sequences) and len(results) < sent / 2, sequences
    # Every frame is accounted for: analysed, or counted as dropped in the next result.
    assert len(results) + sum(r.dropped for r in results) == sent
    assert sequences[-1] == sent  # the half-close still analyses the newest frame
    assert any(r.dropped > 0 for r in results)


async def test_at_most_the_rate_asked_for(vision: vision_pb2_grpc.VisionStub) -> None:
    picture = jpeg(canvas(100))
    call = vision.StreamAnalyze(timeout=60)
    await call.write(config(max_results_per_second=2))
    results = []
    for i in range(4):
        await call.write(frame(i, encoded=picture))
        results.append(await call.read())
    await call.done_writing()
    await call.read()
    # Each frame was sent as soon as the previous result came: results are 0.5 s apart at least,
    # in the node's own accounting (time waited for the rate, from arrival to analysis).
    assert all(r.waited_ms >= 300 for r in results[1:]), [r.waited_ms for r in results]


BAD = [
    ([frame(0, encoded=b"x")], "must carry config"),
    ([config(analyses=["faces", "age"])], "unknown analysis 'age'"),
    ([config(analyses=[])], "asks for no analysis"),
    ([config(models={"classify": "efficientnet-lite0"})], "not one of the analyses"),
    ([config(), config()], "config was sent twice"),
    ([config(), frame(0, raw=vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_RGB24, width=640, height=480,
                                                 data=b"\0" * 1000))], "921,600 bytes, but the frame has 1,000"),
    ([config(), frame(0, raw=vision_pb2.RawFrame(format=vision_pb2.PIXEL_FORMAT_RGB24, width=2000, height=2000,
                                                 data=b""))], "at most 2,000,000 (--max-image-pixels)"),
    ([config(), frame(0, raw=vision_pb2.RawFrame(width=2, height=2, data=b"\0" * 12))], "need a pixel format"),
    ([config(), frame(5, encoded=jpeg(canvas(-1))), frame(2, encoded=jpeg(canvas(-1)))], "went backwards"),
    ([config(), vision_pb2.StreamAnalyzeRequest(frame=vision_pb2.VideoFrame(capture_time_us=1))], "has no picture"),
    ([config(), frame(0, encoded=b"not an image")], "not a PNG"),
    ([config(max_results_per_second=float("nan"))], "not a rate"),
]


@pytest.mark.parametrize("messages,says", BAD)
async def test_bad_input_ends_the_stream_with_invalid_argument(vision: vision_pb2_grpc.VisionStub,
                                                               messages: list[vision_pb2.StreamAnalyzeRequest],
                                                               says: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await analyse(vision, messages)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert says in (caught.value.details() or ""), caught.value.details()
    assert len(await analyse(vision, [config(), frame(0, encoded=jpeg(canvas(0)))])) == 1  # the node serves on
