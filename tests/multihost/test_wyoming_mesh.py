"""Home Assistant on one "host" finds a router's Wyoming door on another over mDNS, with no
configuration, and its transcription is served by a speech node on a third (issue 15)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import Mesh, RouterClient, Topology

pytestmark = pytest.mark.multihost
PROBE = Path(__file__).with_name("ha_probe.py")


def test_home_assistant_finds_the_wyoming_door_and_the_mesh_transcribes(
        mesh: Mesh, client: RouterClient, topology: Topology, fox_wav: bytes, tmp_path: Path) -> None:
    router = mesh.router(extra=["--wyoming-port", "10300"])
    a = mesh.node("a", "nodeA")
    mesh.ready(router, a)
    assert "wyoming_port=10300" in router.ready_line
    client.wait_up("nodeA", timeout=30)
    wav = tmp_path / "fox.wav"
    wav.write_bytes(fox_wav)
    # Home Assistant is on "b": it browses from its own address and connects to what it finds.
    done = topology.run_in("b", [sys.executable, str(PROBE), "--bind", topology.hosts["b"].address,
                                 "--wav", str(wav)], timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    router_address = topology.hosts["r"].address
    assert [(name, host, port) for name, host, port in result["found"]] == \
        [("lanai-router._wyoming._tcp.local.", router_address, 10300)], result
    assert result["asr_models"] == ["tiny.en"], result
    assert "lazy" in result.get("transcript", "").lower(), result
