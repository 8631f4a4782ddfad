"""`lanai vision watch` as people run it: the command (a real process) streams a test video made
with PyAV (the astronaut moving across 640x480 frames, 15 fps) to a real node with the real
MTCNN. Faces are found in the frames where the face is, the annotated copy has a box drawn where
the face is, a sender faster than the node gets `dropped` counts, Ctrl-C still finishes the
output file, and bad input gets a message and the right exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
import pytest_asyncio

from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.services.vision.config import VisionConfig

from .conftest import INSECURE
from .test_video import canvas

pytestmark = pytest.mark.asyncio(loop_scope="session")
LANAI = [sys.executable, "-m", "lanai.mesh.cli"]
FRAMES, FPS = 60, 15


def face_x(i: int) -> int:
    """Where frame i has the astronaut (240 px wide): none in the first and last 10 frames."""
    return -1 if i < 10 or i >= 50 else (i - 10) * 10


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("watch") / "astronaut.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.bit_rate = 2_000_000
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(canvas(face_x(i)), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def node(vision_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=vision_home, services=("vision",), host="127.0.0.1", port=0, metrics_port=None,
                        http_port=None, node_id="watch-node", security=INSECURE, mesh=LONE,
                        configs={"vision": VisionConfig(slots=1)})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


async def watch(node: Node, *args: str, interrupt_after: int = 0) -> tuple[int, list[str], str]:
    """Run the command; with `interrupt_after`, Ctrl-C (SIGINT) once that many results printed."""
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "vision", "watch", *args, "--to", f"127.0.0.1:{node.port}", "--plaintext",
        env={**os.environ, "LANAI_HOME": str(node.config.home)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    while line := (await asyncio.wait_for(proc.stdout.readline(), 60)).decode():
        lines.append(line)
        if len(lines) == interrupt_after:
            proc.send_signal(signal.SIGINT)
    err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    return await proc.wait(), lines, err


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


async def test_faces_are_found_where_the_face_is_and_drawn_on_the_copy(node: Node, video: Path,
                                                                         tmp_path: Path) -> None:
    output = tmp_path / "annotated.mp4"
    code, lines, err = await watch(node, str(video), "--json", "--output", str(output))
    assert code == 0, err
    results = [json.loads(line) for line in lines]
    assert len(results) + sum(r.get("dropped", 0) for r in results) == FRAMES, err
    for r in results:
        i = int(r["sequence"]) - 1
        assert len(r.get("faces", [])) == (1 if face_x(i) >= 0 else 0), (i, r)
        if face_x(i) >= 0:  # the face box lies on the astronaut's picture
            box = r["faces"][0]["box"]
            assert face_x(i) <= box["xMin"] < box["xMax"] <= face_x(i) + 240, (i, box)
        assert r["servedBy"]["nodeId"] == "watch-node"
    assert re.search(rf"{FRAMES} frames sent, {len(results)} analysed", err), err

    written = frames_of(output)
    assert len(written) == FRAMES and written[0].shape == (480, 640, 3)
    analysed = next(r for r in results if r.get("faces") and int(r["sequence"]) > 20)
    box = analysed["faces"][0]["box"]
    x, y0, y1 = round(box["xMin"]), round(box["yMin"]) + 4, round(box["yMax"]) - 4
    edge = written[int(analysed["sequence"]) - 1][y0:y1, max(0, x - 1):x + 2].astype(int)
    green = (edge[..., 1] > 150) & (edge[..., 0] < 100) & (edge[..., 2] < 130)
    assert green.mean() > 0.5, edge[::8, :, :]  # the box's left side is drawn in green
    assert not (written[5][..., 1] - written[5][..., 0] > 100).any()  # no box where no face was found


async def test_a_sender_faster_than_the_node_gets_dropped_counts(node: Node, video: Path) -> None:
    code, lines, err = await watch(node, str(video), "--json", "--as-fast-as-possible")
    assert code == 0, err
    results = [json.loads(line) for line in lines]
    dropped = sum(r.get("dropped", 0) for r in results)
    assert dropped > 0 and len(results) + dropped == FRAMES, (len(results), dropped)
    assert [int(r["sequence"]) for r in results][-1] == FRAMES  # the newest frame is analysed last


async def test_ctrl_c_stops_sending_and_still_finishes_the_output(node: Node, video: Path, tmp_path: Path) -> None:
    output = tmp_path / "stopped.mp4"
    code, lines, err = await watch(node, str(video), "--output", str(output), interrupt_after=5)
    assert code == 0, err
    match = re.search(r"(\d+) frames sent.*wrote (\d+) frames", err)
    assert match and int(match.group(1)) == int(match.group(2)) < FRAMES, err
    assert len(frames_of(output)) == int(match.group(2))  # a whole, readable file


async def test_bad_input_gets_a_message_and_an_exit_code(node: Node, video: Path, tmp_path: Path) -> None:
    code, _, err = await watch(node, str(video), "--analyses", "faces,colour")
    assert code == 1 and "INVALID_ARGUMENT" in err and "colour" in err, err
    code, _, err = await watch(node, str(video), "--model", "faces=retinaface")  # a model this node lacks
    assert code == 1 and "NOT_FOUND" in err and "mtcnn" in err, err
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    code, _, err = await watch(node, str(not_video))
    assert code == 2 and "cannot open" in err and "Invalid data" in err, err
    code, _, err = await watch(node, str(video), "--camera", "0")
    assert code == 2 and "not both" in err, err
    code, _, err = await watch(node, str(video), "--output", str(tmp_path / "missing" / "out.mp4"))
    assert code == 2 and "cannot write" in err, err
