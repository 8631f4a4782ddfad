"""A live transcription on a node whose cable is pulled (no reset: its bridge port goes down)
moves to the other node: the client's real-time stream ends normally with every utterance,
none twice, within a short delay of the cut. Network namespaces on a private bridge."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lanai.api.speech.v1 import speech_pb2

from .conftest import Mesh, RouterClient, Topology

SENTENCES = (("Every morning the office printer jams at nine.", "morning"),
             ("The quick brown fox jumps over the lazy dog.", "lazy"),
             ("Our meeting notes stay on the machines in this building.", "building"),
             ("Tomorrow the weather will be sunny and warm.", "weather"))
CHUNK_S = 0.1


@pytest.fixture(scope="module")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """16 kHz PCM of the four sentences, 1.2 s of silence after each."""
    from lanai.services.speech.audio import decode_encoded

    folder = tmp_path_factory.mktemp("meeting")
    parts = []
    for i, (text, _) in enumerate(SENTENCES):
        path = Path(folder) / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
        samples = decode_encoded(path.read_bytes(), 1e9)
        parts.append(np.concatenate([samples, np.zeros(int(1.2 * 16000), np.float32)]))
    return (np.concatenate(parts) * 32767).astype("<i2").tobytes()


def paced(pcm: bytes) -> Iterator[speech_pb2.StreamTranscribeRequest]:
    yield speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
        format=speech_pb2.PcmFormat(sample_rate_hz=16000)))
    step = int(16000 * CHUNK_S) * 2
    for offset in range(0, len(pcm), step):
        time.sleep(CHUNK_S)
        yield speech_pb2.StreamTranscribeRequest(audio=pcm[offset:offset + step])


def test_a_live_stream_moves_when_its_nodes_cable_is_pulled(mesh: Mesh, client: RouterClient, topology: Topology,
                                                            meeting: bytes) -> None:
    router, a, b = mesh.router(), mesh.node("a", "nodeA"), mesh.node("b", "nodeB")
    mesh.ready(router, a, b)
    client.wait_up("nodeA", "nodeB", timeout=30)
    hosts = {"nodeA": "a", "nodeB": "b"}
    finals: list[speech_pb2.StreamTranscribeResponse] = []
    unplugged: tuple[str, float] | None = None
    first_after_cut: float | None = None
    try:
        for response in client.speech.StreamTranscribe(paced(meeting), timeout=120):
            if unplugged is not None and first_after_cut is None and response.served_by.node_id != unplugged[0]:
                first_after_cut = time.monotonic() - unplugged[1]
            if response.is_final:
                finals.append(response)
                if unplugged is None:
                    time.sleep(0.8)  # into the next utterance
                    unplugged = (response.served_by.node_id, time.monotonic())
                    topology.set_cable(hosts[response.served_by.node_id], plugged=False)
    finally:
        if unplugged is not None:
            topology.set_cable(hosts[unplugged[0]], plugged=True)
    assert unplugged is not None and first_after_cut is not None
    print(f"\nfirst answer from the other node {first_after_cut:.2f} s after the cable was pulled")
    text = " ".join(f.text for f in finals).lower()
    for _, keyword in SENTENCES:
        assert text.count(keyword) == 1, text
    ids = [f.utterance_id for f in finals]
    assert ids == sorted(set(ids)), ids
    assert {f.served_by.node_id for f in finals} == {"nodeA", "nodeB"}
