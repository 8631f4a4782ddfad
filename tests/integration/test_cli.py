"""The `lanai` command as people use it: a node process, transcribe, models, and SIGTERM draining."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

from .conftest import has_keywords, says_lazy_dog

pytestmark = pytest.mark.asyncio(loop_scope="session")
LANAI = [sys.executable, "-m", "lanai.mesh.cli"]


async def lanai(*args: str, home: Path, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*LANAI, *args, env={**os.environ, "LANAI_HOME": str(home)},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


class NodeProcess:
    def __init__(self, proc: asyncio.subprocess.Process, address: str) -> None:
        self.proc, self.address = proc, address


@pytest_asyncio.fixture(loop_scope="session")
async def node_process(lanai_home: Path) -> AsyncIterator[NodeProcess]:
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "node", "--insecure", "--services", "speech", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
        "--speech-models", "tiny.en", "--discovery", "none",
        "--grace", "60", env={**os.environ, "LANAI_HOME": str(lanai_home)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        match = re.search(r"ready on (\S+)", line)
        assert match, f"node did not start: {line!r}"
        yield NodeProcess(proc, match.group(1))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_transcribe_command_unary_and_stream(node_process: NodeProcess, lanai_home: Path, tmp_path: Path,
                                                   fox_wav: bytes) -> None:
    audio = tmp_path / "fox.wav"
    audio.write_bytes(fox_wav)
    rc, out, err = await lanai("transcribe", str(audio), "--to", node_process.address, home=lanai_home)
    assert rc == 0, err
    assert has_keywords(out) and re.search(r"\[00:00\.\d\d -> 00:0\d\.\d\d\]", out), out
    rc, out, err = await lanai("transcribe", str(audio), "--to", node_process.address, "--stream", home=lanai_home)
    assert rc == 0, err
    assert has_keywords(out), out
    rc, out, err = await lanai("transcribe", str(audio), "--to", node_process.address, "--model", "x",
                               home=lanai_home)
    assert rc == 1 and "UNAVAILABLE" in err and "model 'x'" in err and "tiny.en" in err  # the node's router answers


async def test_a_refused_stream_shows_the_nodes_status(node_process: NodeProcess, lanai_home: Path, tmp_path: Path,
                                                     long_wav: bytes) -> None:
    """The node refuses the config while the CLI is still sending audio: the CLI reports the
    node's INVALID_ARGUMENT every time, not grpc.aio's INTERNAL (grpc/grpc#36066)."""
    audio = tmp_path / "long.wav"
    audio.write_bytes(long_wav)
    for _ in range(3):
        rc, out, err = await lanai("transcribe", str(audio), "--to", node_process.address, "--stream",
                                   "--language", "klingon", home=lanai_home)
        assert rc == 1 and "INVALID_ARGUMENT" in err and "ISO 639-1" in err, err


async def test_sigterm_drains_in_flight_work(node_process: NodeProcess, long_wav: bytes, fox_wav: bytes) -> None:
    async with grpc.aio.insecure_channel(node_process.address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        await stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=fox_wav)))
        running = asyncio.ensure_future(
            stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=long_wav))))
        async for report in mesh_pb2_grpc.NodeStub(channel).WatchLoad(mesh_pb2.WatchLoadRequest()):
            if report.services[0].in_flight == 1:
                break
        node_process.proc.send_signal(signal.SIGTERM)  # while the long request is running
        response = await running
        assert says_lazy_dog(response.text)
    assert await asyncio.wait_for(node_process.proc.wait(), 60) == 0


async def test_models_list_shows_prepared(lanai_home: Path) -> None:
    rc, out, _ = await lanai("models", "list", home=lanai_home)
    assert rc == 0
    tiny = next(line for line in out.splitlines() if line.startswith("tiny.en"))
    assert "prepared" in tiny


async def test_node_refuses_unknown_service(lanai_home: Path) -> None:
    rc, _, err = await lanai("node", "--insecure", "--services", "telepathy", "--port", "0", "--metrics-port", "-1",
                             home=lanai_home)
    assert rc == 2 and "telepathy" in err and "speech" in err
