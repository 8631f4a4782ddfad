"""Nothing leaves the premises: the libraries lanai runs keep their telemetry off. onnxruntime
(1.29+) otherwise writes a device id and queues usage events for upload under ~/.cache/Microsoft."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from PIL import Image
from skimage import data as photos

from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.services.core.privacy import PRIVACY_ENVIRONMENT

from .processes import start

TELEMETRY_DIR = Path(".cache") / "Microsoft"


def test_onnxruntime_alone_would_write_telemetry(tmp_path: Path, vision_home: Path) -> None:
    """The control: without lanai's settings this onnxruntime does queue events (so the test
    below can fail). Skipped on builds without telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in PRIVACY_ENVIRONMENT}
    model = vision_home / "models" / "efficientnet-lite0" / "model.onnx"
    subprocess.run([sys.executable, "-c", "import sys, onnxruntime as ort; ort.InferenceSession(sys.argv[1])",
                    str(model)], env={**env, "HOME": str(tmp_path)}, check=True, timeout=60)
    if not (tmp_path / TELEMETRY_DIR).exists():
        pytest.skip("this onnxruntime build has no telemetry")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_node_serving_requests_writes_no_telemetry(tmp_path: Path, vision_home: Path) -> None:
    # this test process has lanai's settings in its environment: the node must make its own
    env: dict[str, str | None] = {"HOME": str(tmp_path), **{name: None for name in PRIVACY_ENVIRONMENT}}
    node = await start("node", "--insecure", "--services", "speech,vision", "--speech-models", "tiny.en", "--host", "127.0.0.1",
                       "--port", "0", "--metrics-port", "-1", "--discovery", "none", "--no-router",
                       home=vision_home, env=env)
    try:
        image = io.BytesIO()
        Image.fromarray(photos.coffee()).save(image, "JPEG")
        async with grpc.aio.insecure_channel(node.address) as channel:
            reply = await vision_pb2_grpc.VisionStub(channel).Classify(
                vision_pb2.ClassifyRequest(image=vision_pb2.Image(encoded=image.getvalue())))
        assert reply.labels
    finally:
        await node.terminate()
    assert not (tmp_path / TELEMETRY_DIR).exists(), sorted(p.name for p in (tmp_path / TELEMETRY_DIR).rglob("*"))
