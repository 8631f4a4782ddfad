"""lanai on a real Ray cluster: a Ray head in one namespace, a Ray worker in another, and the
router in a third that is no Ray node at all (it reaches the cluster over Ray Client).
`lanai ray up` places a speech node on each Ray node and they join the router's mesh with an
invite; the router finds them with --discovery mdns,ray (beside a plain node found over mDNS)
and calls them over mutual TLS, keeps serving while Ray restarts a killed one, and uses it again
at its new address."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.mesh.security.store import MeshDir

from .conftest import GRPC_PORT, Mesh, Topology, _kill_netns_processes, child_env, wait_for
from .test_trust_mesh import SecureClient, lanai_cli, member, own_home

pytestmark = pytest.mark.multihost
RAY = Path(sys.executable).with_name("ray")
LANAI = [sys.executable, "-m", "lanai.mesh.cli"]


@dataclass
class RayCluster:
    topo: Topology
    client_address: str
    """ray://HEAD:10001: the router's way in (Ray Client), from a namespace that is no Ray node."""
    gcs_address: str
    """HEAD:6379: `lanai ray` runs on the head as a driver, as an operator would."""

    def lanai_ray(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.topo.run_in("a", [*LANAI, "ray", "--address", self.gcs_address, *args], timeout=timeout)

    def actors(self) -> dict[str, dict[str, object] | str]:
        listed = self.lanai_ray("ls", "--json", timeout=60)
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)  # type: ignore[no-any-return]


def _ray_env() -> dict[str, str]:
    env = child_env()
    env.update(RAY_USAGE_STATS_ENABLED="0", PATH=f"{RAY.parent}:{env.get('PATH', '')}")
    return env


@pytest.fixture
def ray_cluster(topology: Topology, tiny_model: None) -> Iterator[RayCluster]:
    if not RAY.exists():
        pytest.fail("Ray is missing: run scripts/setup.sh --dev (pip install 'lanai[ray]')")
    head, worker = topology.hosts["a"], topology.hosts["b"]
    temp = tempfile.mkdtemp(prefix="lnray", dir="/tmp")  # short: Ray's Unix socket paths must fit 107 bytes
    env = _ray_env()
    started: list[str] = []
    try:
        for host, extra in ((head, ["--head", "--port", "6379", "--include-dashboard", "false",
                                    "--temp-dir", temp]),
                            (worker, ["--address", f"{head.address}:6379"])):
            result = subprocess.run(topology.exec_argv(host.key, [
                str(RAY), "start", *extra, "--node-ip-address", host.address, "--num-cpus", "1",
                "--disable-usage-stats"]), capture_output=True, text=True, timeout=120, env=env)
            started.append(host.netns)
            assert result.returncode == 0, f"ray start in {host.netns} failed:\n{result.stdout}\n{result.stderr}"
        yield RayCluster(topology, f"ray://{head.address}:10001", f"{head.address}:6379")
    finally:
        for netns in reversed(started):  # not `ray stop`: that stops every Ray on the machine
            _kill_netns_processes(netns)
        shutil.rmtree(temp, ignore_errors=True)


def test_nodes_placed_by_ray_join_the_mesh_and_serve_through_a_ray_discovering_router(
        ray_cluster: RayCluster, mesh: Mesh, topology: Topology, tmp_path: Path, fox_wav: bytes) -> None:
    started = time.monotonic()
    router_home = own_home(tmp_path, "router-home")  # the router holds the mesh's CA
    router = mesh.start("r", ["router", "--home", str(router_home), "--host", "0.0.0.0", "--port", str(GRPC_PORT),
                              "--mesh-port", "50052", "--metrics-host", topology.hosts["r"].address, "--metrics-port",
                              "9464", "--node-id", "router", "--grace", "2",
                              "--discovery", "mdns,ray", "--ray-address", ray_cluster.client_address,
                              "--advertise-address", topology.hosts["r"].address], "router")
    mesh.ready(router)
    key = lanai_cli("mesh", "key", "create", "test", "--home", str(router_home)).strip()
    # Three uses: two actors and a LAN node; a restart must come back on the identity it stored.
    token = lanai_cli("mesh", "invite", "--home", str(router_home), "--uses", "3", "--address",
                      topology.hosts["r"].address).split("--join ", 1)[1].strip()
    # A plain `lanai node` beside the Ray head, found over mDNS: one router follows both kinds.
    lan = mesh.start("a", member(mesh, topology, "a", own_home(tmp_path, "lan-home"), "lan-node", "--services",
                                 "speech", "--join", token), "lan-node")

    ray_home = own_home(tmp_path, "ray-home")  # both Ray nodes' LANAI_HOME (one filesystem here)
    up = ray_cluster.lanai_ray("up", "--speech", "2", "--", "--home", str(ray_home), "--join", token,
                               "--speech-models", "tiny.en", "--metrics-port", "-1", "--grace", "2")
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    assert "models ready on" in up.stderr and "tiny.en" in up.stderr, up.stderr
    actors = ray_cluster.actors()
    assert set(actors) == {"lanai-speech-0", "lanai-speech-1"}, actors
    where = {info["ip"] for info in actors.values() if isinstance(info, dict)}
    assert where == {topology.hosts["a"].address, topology.hosts["b"].address}, actors  # spread over both
    meshes = {info["mesh"] for info in actors.values() if isinstance(info, dict)}
    assert len(meshes) == 1 and "" not in meshes, actors  # both joined one mesh (UP below: the router's)

    mesh.ready(lan)
    client = SecureClient(topology.router_dial, MeshDir(router_home).ca_cert.read_bytes(), key)
    try:
        for name in [*actors, "lan-node"]:
            client.wait_state(name, mesh_pb2.NODE_STATE_UP, timeout=60)
        nodes = client.nodes()
        assert {nodes[n].discovered_by for n in actors} == {"ray"} and nodes["lan-node"].discovered_by == "mdns"
        assert {nodes[n].address for n in actors} == {a["member_address"] for a in actors.values()
                                                      if isinstance(a, dict)}
        served = Counter(f.result().served_by.node_id for f in [transcribe(client, fox_wav) for _ in range(12)])
        assert served["lanai-speech-0"] > 0 and served["lanai-speech-1"] > 0 and served["lan-node"] > 0, served
        print(f"\nplaced, joined and serving after {time.monotonic() - started:.1f} s; served: {dict(served)}")

        # Kill one actor's process while calls keep coming: the other node serves them all, Ray
        # restarts the killed one, and the router follows it to its new port.
        victim = actors["lanai-speech-1"]
        assert isinstance(victim, dict)
        failures: list[str] = []
        answered: Counter[str] = Counter()
        stop = threading.Event()

        def keep_calling() -> None:
            while not stop.is_set():
                try:
                    answered[transcribe(client, fox_wav).result().served_by.node_id] += 1
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]

        callers = [threading.Thread(target=keep_calling) for _ in range(2)]
        for caller in callers:
            caller.start()
        try:
            time.sleep(1)
            killed_at = time.monotonic()
            os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

            def moved() -> mesh_pb2.NodeEntry | None:  # the router's view: no Ray Client call per poll
                entry = client.nodes().get("lanai-speech-1")
                return entry if entry is not None and entry.state == mesh_pb2.NODE_STATE_UP and \
                    entry.address != victim["member_address"] else None

            entry = wait_for(moved, timeout=90, interval=0.5, what="the router using lanai-speech-1 again")
            back_after = time.monotonic() - killed_at
        finally:
            stop.set()
            for caller in callers:
                caller.join(90)
        restarted = ray_cluster.actors()["lanai-speech-1"]
        assert isinstance(restarted, dict) and restarted["pid"] != victim["pid"]  # Ray restarted it
        assert restarted["ip"] == victim["ip"]  # its Ray node still has room for it
        assert entry.address == restarted["member_address"]
        # Bursts of sixteen, well over the three nodes' six slots: the restarted node takes work again
        # (it measured its speed at start, under the load of the calls above, and placement weighs
        # queues by speed: a node measured slow waits until the others' queues are long enough).
        again: Counter[str] = Counter()

        def served_again() -> bool:
            again.update(f.result().served_by.node_id for f in [transcribe(client, fox_wav) for _ in range(16)])
            return again["lanai-speech-1"] > 0

        wait_for(served_again, timeout=90, interval=0, what="a call served by the restarted node")
        print(f"after the restart: {dict(again)}")
        print(f"restarted and routable again {back_after:.1f} s after the kill; answered {dict(answered)}")
        assert failures == [], failures
        assert answered["lanai-speech-0"] + answered["lan-node"] > 0

        down = ray_cluster.lanai_ray("down", timeout=120)
        assert down.returncode == 0 and "stopped 2 node(s)" in down.stdout, f"{down.stdout}\n{down.stderr}"
        assert ray_cluster.actors() == {}
        wait_for(lambda: {n for n, e in client.nodes().items() if e.state == mesh_pb2.NODE_STATE_UP} == {"lan-node"},
                 timeout=30, what="the router dropping the stopped actors (the LAN node stays)")
    finally:
        client.close()


def transcribe(client: SecureClient, wav: bytes) -> Any:
    return client.speech.Transcribe.future(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)),
                                           timeout=60)
