"""The vision service on a real node: real models (EfficientNet-Lite0, MTCNN, PP-OCRv4), real
photos from scikit-image, text rendered with Pillow, every bad input, and the same calls through a
router in front of two vision nodes."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageDraw, ImageFont
from skimage import data as photos

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.services.vision.config import VisionConfig

from tests.unit.services.vision.test_image import png_with_header

from .conftest import INSECURE, VISION_MODELS
from .processes import up, wait_for_nodes
from .test_mesh import lone_pair

pytestmark = pytest.mark.asyncio(loop_scope="session")
CATS = ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat")
MAX_PIXELS = 4_000_000
WORDS = ("Private inference", "stays on your LAN")


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    text = Image.new("RGB", (900, 240), "white")
    draw = ImageDraw.Draw(text)
    font = ImageFont.load_default(size=52)
    for i, line in enumerate(WORDS):
        draw.text((30, 30 + 100 * i), line, fill="black", font=font)
    return {"cat": encode(photos.chelsea()), "coffee": encode(photos.coffee(), "JPEG"),
            "astronaut": encode(photos.astronaut()), "text": encode(np.asarray(text))}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def vision_node(vision_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=vision_home, services=("vision",), host="127.0.0.1", port=0, metrics_host="127.0.0.1",
                        metrics_port=0, node_id="vision-node", security=INSECURE,
                        mesh=LONE, configs={"vision": VisionConfig(slots=1, max_queue=4, max_pixels=MAX_PIXELS,
                                                                   max_image_bytes=2 * 1024 * 1024)})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def vision(vision_node: Node) -> AsyncIterator[vision_pb2_grpc.VisionStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{vision_node.port}",
                                         options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        yield vision_pb2_grpc.VisionStub(channel)


def image(data: bytes) -> vision_pb2.Image:
    return vision_pb2.Image(encoded=data)


# --- results ------------------------------------------------------------------------------------------------


async def test_the_cat_is_a_cat_breed_in_the_top_3(vision: vision_pb2_grpc.VisionStub,
                                                   images: dict[str, bytes]) -> None:
    reply = await vision.Classify(vision_pb2.ClassifyRequest(image=image(images["cat"]), top_k=3))
    assert len(reply.labels) == 3
    assert any(cat in label.name for label in reply.labels for cat in CATS), list(reply.labels)
    assert [x.score for x in reply.labels] == sorted((x.score for x in reply.labels), reverse=True)
    assert (reply.image_size.width, reply.image_size.height) == (451, 300)
    assert reply.served_by.node_id == "vision-node" and reply.served_by.model == "efficientnet-lite0"
    assert reply.served_by.compute_ms > 0


async def test_the_coffee_is_an_espresso(vision: vision_pb2_grpc.VisionStub, images: dict[str, bytes]) -> None:
    reply = await vision.Classify(vision_pb2.ClassifyRequest(image=image(images["coffee"])))
    assert len(reply.labels) == 5  # top_k 0 means 5
    assert reply.labels[0].name == "espresso" and reply.labels[0].score > 0.5, list(reply.labels)
    assert reply.labels[0].class_id == 967  # ImageNet's espresso
    confident = await vision.Classify(vision_pb2.ClassifyRequest(
        image=image(images["coffee"]), top_k=10, options=vision_pb2.ImageOptions(min_confidence=0.5)))
    assert [x.name for x in confident.labels] == ["espresso"]


async def test_the_astronaut_has_one_face_around_her_head(vision: vision_pb2_grpc.VisionStub,
                                                           images: dict[str, bytes]) -> None:
    reply = await vision.DetectFaces(vision_pb2.DetectFacesRequest(image=image(images["astronaut"])))
    assert len(reply.faces) == 1
    face = reply.faces[0]
    box, marks = face.box, face.landmarks
    assert 150 < box.x_min < 200 and 240 < box.x_max < 290 and 30 < box.y_min < 90 and 150 < box.y_max < 200, box
    assert face.confidence > 0.95
    assert marks.left_eye.x < marks.right_eye.x
    assert max(marks.left_eye.y, marks.right_eye.y) < marks.nose.y < min(marks.mouth_left.y, marks.mouth_right.y)
    for point in (marks.left_eye, marks.right_eye, marks.nose, marks.mouth_left, marks.mouth_right):
        assert box.x_min <= point.x <= box.x_max and box.y_min <= point.y <= box.y_max


async def test_a_downscaled_image_reports_coordinates_of_the_original(vision: vision_pb2_grpc.VisionStub,
                                                                      images: dict[str, bytes]) -> None:
    full = await vision.DetectFaces(vision_pb2.DetectFacesRequest(image=image(images["astronaut"])))
    small = await vision.DetectFaces(vision_pb2.DetectFacesRequest(
        image=image(images["astronaut"]), options=vision_pb2.ImageOptions(max_side=256)))
    assert len(small.faces) == 1 and (small.image_size.width, small.image_size.height) == (512, 512)
    a, b = full.faces[0].box, small.faces[0].box
    assert abs(a.x_min - b.x_min) < 15 and abs(a.y_max - b.y_max) < 15  # not half the size


@pytest.mark.parametrize("name", ["cat", "coffee"])
async def test_no_faces_in_the_cat_or_the_coffee(vision: vision_pb2_grpc.VisionStub, images: dict[str, bytes],
                                                 name: str) -> None:
    reply = await vision.DetectFaces(vision_pb2.DetectFacesRequest(image=image(images[name])))
    assert list(reply.faces) == []


async def test_rendered_text_is_read_back(vision: vision_pb2_grpc.VisionStub, images: dict[str, bytes]) -> None:
    reply = await vision.ReadText(vision_pb2.ReadTextRequest(image=image(images["text"])))
    words = reply.text.lower().split()
    for expected in " ".join(WORDS).lower().split():
        assert expected in words, reply.text
    assert reply.text == "\n".join(line.text for line in reply.lines)
    first = reply.lines[0]
    assert first.confidence > 0.8 and len(first.corners) == 4
    assert 0 <= first.box.x_min < first.box.x_max <= 900 and first.box.y_max < reply.lines[-1].box.y_max


# --- bad input ------------------------------------------------------------------------------------------------


COFFEE = image(encode(photos.coffee(), "JPEG"))
BAD = [
    ("empty", vision_pb2.ClassifyRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no image"),
    ("not an image", vision_pb2.ClassifyRequest(image=image(b"%PDF-1.7 definitely not a picture")),
     grpc.StatusCode.INVALID_ARGUMENT, "not a PNG, JPEG"),
    ("decompression bomb", vision_pb2.ClassifyRequest(image=image(png_with_header(60_000, 60_000))),
     grpc.StatusCode.INVALID_ARGUMENT, "pixels"),
    ("over the pixel limit", vision_pb2.ClassifyRequest(image=image(png_with_header(2500, 2000))),
     grpc.StatusCode.INVALID_ARGUMENT, "2500x2000 = 5,000,000 pixels; this node accepts at most 4,000,000"),
    ("zero-sized", vision_pb2.ClassifyRequest(image=image(png_with_header(0, 16))),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    ("unknown model", vision_pb2.ClassifyRequest(image=COFFEE, options=vision_pb2.ImageOptions(model="resnet-9000")),
     grpc.StatusCode.NOT_FOUND, "'resnet-9000' is not served here"),
    ("model of another task", vision_pb2.ClassifyRequest(image=COFFEE, options=vision_pb2.ImageOptions(model="mtcnn")),
     grpc.StatusCode.INVALID_ARGUMENT, "is a faces model and cannot do classify"),
    ("top_k too large", vision_pb2.ClassifyRequest(image=COFFEE, top_k=1000), grpc.StatusCode.INVALID_ARGUMENT, "1 to 100"),
    ("confidence out of range", vision_pb2.ClassifyRequest(image=COFFEE, options=vision_pb2.ImageOptions(min_confidence=1.5)),
     grpc.StatusCode.INVALID_ARGUMENT, "use 0 to 1"),
    ("max_side too large", vision_pb2.ClassifyRequest(image=COFFEE, options=vision_pb2.ImageOptions(max_side=100_000)),
     grpc.StatusCode.INVALID_ARGUMENT, "at most 4096"),
    ("too many bytes", vision_pb2.ClassifyRequest(image=image(b"\x89PNG" + bytes(3 * 1024 * 1024))),
     grpc.StatusCode.INVALID_ARGUMENT, "accepts at most 2,097,152"),
]


@pytest.mark.parametrize(("request_", "code", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_gets_its_status_and_the_node_stays_up(
        vision: vision_pb2_grpc.VisionStub, images: dict[str, bytes], request_: vision_pb2.ClassifyRequest,
        code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vision.Classify(request_)
    assert caught.value.code() == code and message in (caught.value.details() or ""), caught.value.details()
    assert (await vision.Classify(vision_pb2.ClassifyRequest(image=image(images["coffee"])))).labels


async def test_a_truncated_image_is_refused_by_every_task(vision: vision_pb2_grpc.VisionStub,
                                                          images: dict[str, bytes]) -> None:
    cut = image(images["astronaut"][:40_000])
    for call in (vision.Classify(vision_pb2.ClassifyRequest(image=cut)),
                 vision.DetectFaces(vision_pb2.DetectFacesRequest(image=cut)),
                 vision.ReadText(vision_pb2.ReadTextRequest(image=cut))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "truncated" in (caught.value.details() or "")


# --- the node's surfaces ----------------------------------------------------------------------------------------


async def test_describe_lists_each_model_with_its_task_default_and_providers(vision_node: Node) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{vision_node.port}") as channel:
        described = await mesh_pb2_grpc.NodeStub(channel).Describe(mesh_pb2.DescribeRequest())
    (service,) = described.services
    assert service.name == "vision" and service.grpc_service == "lanai.vision.v1.Vision"
    assert [m.name for m in service.models] == list(VISION_MODELS) and all(m.is_default for m in service.models)
    for m in service.models:
        assert "CPUExecutionProvider" in m.devices and m.throughput.unit == "images_per_second"
        assert m.throughput.value > 0  # measured at start-up


async def test_metrics_count_images_by_task(vision: vision_pb2_grpc.VisionStub, vision_node: Node,
                                            images: dict[str, bytes]) -> None:
    def count(task: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{vision_node.metrics_port}/metrics", timeout=10).read()
        prefix = f'lanai_vision_images_total{{model="mtcnn",task="{task}"}} '
        found = [float(line[len(prefix):]) for line in text.decode().splitlines() if line.startswith(prefix)]
        return found[0] if found else 0.0

    before = await asyncio.to_thread(count, "faces")
    await vision.DetectFaces(vision_pb2.DetectFacesRequest(image=image(images["cat"])))
    assert await asyncio.to_thread(count, "faces") == before + 1


# --- through a router ------------------------------------------------------------------------------------------


async def test_the_same_calls_through_a_router_in_front_of_two_vision_nodes(vision_home: Path,
                                                                            images: dict[str, bytes]) -> None:
    flags = ("--no-router", "--discovery", "none", "--services", "vision", "--vision-slots", "1")
    async with lone_pair(vision_home, ("vision-a", "vision-b"), node_flags=flags) as pair:
        await wait_for_nodes(pair.router.address, lambda nodes: up(nodes, "vision-a", "vision-b"))
        async with grpc.aio.insecure_channel(pair.router.address) as channel:
            stub = vision_pb2_grpc.VisionStub(channel)
            classified, faces, text = await asyncio.gather(
                stub.Classify(vision_pb2.ClassifyRequest(image=image(images["coffee"])), timeout=60),
                stub.DetectFaces(vision_pb2.DetectFacesRequest(image=image(images["astronaut"])), timeout=60),
                stub.ReadText(vision_pb2.ReadTextRequest(image=image(images["text"])), timeout=60))
            assert classified.labels[0].name == "espresso"
            assert len(faces.faces) == 1
            assert "inference" in text.text.lower()
            served = {r.served_by.node_id for r in (classified, faces, text)}
            assert served <= {"vision-a", "vision-b"}
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(vision_pb2.ClassifyRequest(image=image(images["coffee"]),
                                                               options=vision_pb2.ImageOptions(model="nope")))
            # the router knows every model on the mesh: one no node serves is UNAVAILABLE there (README)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "efficientnet-lite0, mtcnn, pp-ocrv4" in (caught.value.details() or "")
