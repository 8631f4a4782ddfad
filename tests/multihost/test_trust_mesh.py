"""Mesh trust across hosts: a router holding the mesh CA, a node that joined with an invite, and
an outsider on the same bridge running a real `lanai node` of its own mesh (then --insecure).
Over mDNS the outsider is never placed on (its /metrics proves it), `mesh ls` lists it as foreign
or untrusted, and a capture on the bridge never holds a transcript, a prompt or WAV bytes in the clear."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.security.store import MeshDir

from .conftest import GRPC_PORT, LANAI, Mesh, Topology, child_env, lanai_home, wait_for
from .test_mdns_mesh import _request_counts

PROMPT = "Zebulon quartz ledger: what is the capital of France?"
MESH_PORT = 50052


def own_home(tmp: Path, name: str) -> Path:
    """A LANAI_HOME per machine (each has its own mesh directory), sharing the prepared models."""
    home = tmp / name
    home.mkdir()
    (home / "models").symlink_to(lanai_home() / "models")
    return home


def lanai_cli(*args: str) -> str:
    result = subprocess.run([*LANAI, *args], capture_output=True, text=True, timeout=60, env=child_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


class SecureClient:
    """The test's client of the router over the uplink: TLS pinned to the mesh CA, an API key."""

    def __init__(self, address: str, ca: bytes, key: str) -> None:
        creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(ca),
                                                   grpc.access_token_call_credentials(key))
        self.channel = grpc.secure_channel(address, creds, options=[("grpc.enable_http_proxy", 0)])
        self.speech = speech_pb2_grpc.SpeechStub(self.channel)
        self.language = language_pb2_grpc.LanguageStub(self.channel)
        self.mesh = mesh_pb2_grpc.MeshStub(self.channel)

    def nodes(self) -> dict[str, mesh_pb2.NodeEntry]:
        try:
            reply = self.mesh.ListNodes(mesh_pb2.ListNodesRequest(include_down=True), timeout=5)
        except grpc.RpcError:
            return {}
        return {n.node_id or n.address: n for n in reply.nodes}

    def wait_state(self, node: str, state: int, timeout: float = 40) -> mesh_pb2.NodeEntry:
        return wait_for(lambda: (n := self.nodes().get(node)) is not None and n.state == state and n,
                        timeout=timeout, what=f"{node} {mesh_pb2.NodeState.Name(state)}: {self.nodes()}")

    def close(self) -> None:
        self.channel.close()


class Capture:
    """tcpdump on one host's port of the bridge: everything that host sends or receives."""

    def __init__(self, interface: str, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(["tcpdump", "-i", interface, "--immediate-mode", "-U", "-n", "-s", "0", "-w", str(path), "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=open(path.with_suffix(".log"), "w"))
        # The pcap file header is written once the capture is live.
        wait_for(lambda: self.proc.poll() is None and path.exists() and path.stat().st_size >= 24, timeout=10,
                 what=f"tcpdump capturing on {interface}")

    def stop(self) -> bytes:
        self.proc.terminate()  # --immediate-mode -U: every packet was written as it came
        self.proc.wait(10)
        return self.path.read_bytes()


def loud_chunk(wav: bytes, size: int = 48) -> bytes:
    """A run of WAV bytes from speech, not silence (zeros could match anything)."""
    for start in range(len(wav) // 3, len(wav) - size, size):
        chunk = wav[start:start + size]
        if len(set(chunk)) > size * 3 // 4:
            return chunk
    raise AssertionError("no loud part in the WAV")


@pytest.fixture
def secure(mesh: Mesh, topology: Topology, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The router (holds the CA) and a key for the test's client."""
    if not subprocess.run(["which", "tcpdump"], capture_output=True).returncode == 0:
        pytest.fail("tcpdump is missing: run scripts/setup.sh --dev")
    home = own_home(tmp_path, "router-home")
    r = topology.hosts["r"].address
    router = mesh.start("r", ["router", "--home", str(home), "--host", "0.0.0.0", "--port", str(GRPC_PORT),
                              "--mesh-port", str(MESH_PORT), "--metrics-host", r, "--metrics-port", "9464",
                              "--node-id", "router", "--advertise-address", r, "--grace", "2"], "router")
    mesh.ready(router)
    key = lanai_cli("mesh", "key", "create", "test", "--home", str(home)).strip()
    yield home, key


def member(mesh: Mesh, topology: Topology, key: str, home: Path, node_id: str, *extra: str) -> list[str]:
    address = topology.hosts[key].address
    return ["node", "--home", str(home), "--host", address, "--port", str(GRPC_PORT), "--mesh-port", str(MESH_PORT),
            "--metrics-host", address, "--metrics-port", "9464", "--node-id", node_id, "--no-router",
            "--advertise-address", address, "--speech-models", "tiny.en", "--grace", "2", *extra]


@pytest.mark.parametrize("outsider_mode", ["own-mesh", "insecure"])
def test_outsiders_get_nothing_and_nothing_crosses_in_the_clear(
        mesh: Mesh, topology: Topology, secure: tuple[Path, str], tmp_path: Path, fox_wav: bytes,
        outsider_mode: str) -> None:
    router_home, key = secure
    token = lanai_cli("mesh", "invite", "--home", str(router_home), "--address",
                      topology.hosts["r"].address).split("--join ", 1)[1].strip()
    a = mesh.start("a", member(mesh, topology, "a", own_home(tmp_path, "a-home"), "nodeA", "--services",
                               "speech,language", "--join", token), "nodeA")
    outsider = member(mesh, topology, "b", own_home(tmp_path, "b-home"), "nodeB", "--services", "speech")
    b = mesh.start("b", [*outsider, "--insecure"] if outsider_mode == "insecure" else outsider, "nodeB")
    mesh.ready(a, b, timeout=180)

    client = SecureClient(topology.router_dial, MeshDir(router_home).ca_cert.read_bytes(), key)
    try:
        client.wait_state("nodeA", mesh_pb2.NODE_STATE_UP)
        expected = mesh_pb2.NODE_STATE_FOREIGN if outsider_mode == "own-mesh" else mesh_pb2.NODE_STATE_UNTRUSTED
        seen = client.wait_state("nodeB", expected)
        assert ("another mesh" if outsider_mode == "own-mesh" else "announces no mesh") in seen.state_reason

        veth = f"{topology.prefix}a"  # nodeA's port on the bridge: all of its traffic with the router
        capture = Capture(veth, tmp_path / "bridge.pcap")
        request = speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=fox_wav))
        replies = []
        for _ in range(25):  # two at a time: the node's two slots
            pair = [client.speech.Transcribe.future(request, timeout=120) for _ in range(2)]
            replies += [f.result() for f in pair]
        chat = language_pb2.Chat(messages=[language_pb2.ChatMessage(role="user", content=PROMPT)])
        answer = client.language.Generate(language_pb2.GenerateRequest(
            chat=chat, sampling=language_pb2.SamplingOptions(max_tokens=12, temperature=0.0)), timeout=120)
        wire = capture.stop()
    finally:
        client.close()

    assert {r.served_by.node_id for r in replies} == {"nodeA"}
    assert all("lazy dog" in r.text.lower() for r in replies)
    assert answer.text.strip()
    listed = subprocess.run(topology.exec_argv("r", [*LANAI, "mesh", "ls", "--to", f"127.0.0.1:{GRPC_PORT}", "--key", key,
                                                      "--all"]), capture_output=True, text=True, timeout=60,
                            env={**child_env(), "LANAI_HOME": str(router_home)})
    assert listed.returncode == 0, listed.stderr
    word = "foreign" if outsider_mode == "own-mesh" else "untrusted"
    assert any(line.split()[:2] == ["nodeB", word] for line in listed.stdout.splitlines()), listed.stdout
    # The outsider was never called, not even Describe or WatchLoad.
    assert not _request_counts(topology, "b"), _request_counts(topology, "b")
    assert _request_counts(topology, "a").get(("nodeA", "Transcribe")) == 50

    assert len(wire) > 100_000, "the capture saw none of the calls"
    pcm = loud_chunk(fox_wav)
    for secret in (b"lazy dog", b"quick brown", PROMPT.encode(), b"Zebulon", answer.text.strip().encode()[:12], pcm):
        assert secret not in wire, f"{secret!r} crossed the bridge in the clear"

    if outsider_mode == "insecure":
        # The control: the same capture does see plaintext, from a call straight to the insecure node.
        check = Capture(f"{topology.prefix}b", tmp_path / "control.pcap")
        call = ("import sys, grpc; from lanai.api.speech.v1 import speech_pb2 as s, speech_pb2_grpc as g; "
                "ch = grpc.insecure_channel(sys.argv[1], options=[('grpc.enable_http_proxy', 0)]); "
                "print(g.SpeechStub(ch).Transcribe(s.TranscribeRequest(audio=s.Audio(encoded=sys.stdin.buffer.read()))"
                ", timeout=120).text)")
        done = subprocess.run(topology.exec_argv("r", [sys.executable, "-c", call, topology.grpc_address("b")]),
                              input=fox_wav, capture_output=True, timeout=180, env=child_env())
        assert done.returncode == 0, done.stderr
        clear = check.stop()
        assert b"lazy dog" in clear.lower() and pcm in clear
