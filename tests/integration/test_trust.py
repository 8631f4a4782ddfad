"""Mesh trust on one machine (the loopback variant of tests/multihost/test_trust_mesh.py): real
`lanai` processes on 127.0.0.x with real TLS. A CA node, a node that joined with an invite, an
outsider of another mesh, an --insecure one and one whose certificate expired; invites, API
keys through the router and directly, the CLI and grpcurl, revocation reaching a second router."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.mesh.security import invites, pki
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security.enrol import renew_through_issuer
from lanai.mesh.security.store import MeshDir
from lanai.mesh.security.trust import Trust

from .processes import LANAI, LanaiProcess, free_port, start

pytestmark = pytest.mark.asyncio(loop_scope="session")
METRICS_TOKEN = "scrape-secret"
SPEECH = ["--services", "speech", "--speech-models", "tiny.en", "--metrics-host", "{host}", "--metrics-port", "0",
          "--port", "0", "--host", "{host}", "--grace", "1"]


def secure_home(tmp: Path, name: str, models_from: Path) -> Path:
    """A LANAI_HOME of its own (its own mesh directory) sharing the prepared model cache."""
    home = tmp / name
    home.mkdir()
    (home / "models").symlink_to(models_from / "models")
    return home


def speech_args(host: str, *extra: str) -> list[str]:
    return [a.format(host=host) for a in SPEECH] + list(extra)


async def lanai(*args: str, home: Path, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*LANAI, *args, env={**os.environ, "LANAI_HOME": str(home)},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def invite(home: Path, *extra: str) -> str:
    rc, out, err = await lanai("mesh", "invite", "--address", "127.0.0.1", *extra, home=home)
    assert rc == 0, err
    return out.split("--join ", 1)[1].strip()


def served(process: LanaiProcess) -> float:
    """Transcribe calls a node served itself, from its own /metrics."""
    host = process.address.rsplit(":", 1)[0]
    text = urllib.request.urlopen(f"http://{host}:{process.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r'^lanai_requests_total\{[^}]*method="Transcribe"[^}]*\} (\S+)$',
                                              text, re.M))


@dataclasses.dataclass
class Site:
    tmp: Path
    models: Path
    a: LanaiProcess
    """Holds the CA; routes; serves speech; peers: b, expired, insecure."""
    b: LanaiProcess
    """Joined with an invite; serves speech; no router."""
    expired: LanaiProcess
    insecure: LanaiProcess
    ha: Path
    key: str
    processes: list[LanaiProcess]

    @property
    def ca(self) -> bytes:
        return MeshDir(self.ha).ca_cert.read_bytes()

    def channel(self, address: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(self.ca))

    def auth(self, key: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key or self.key}")]

    async def nodes(self, address: str | None = None) -> dict[str, mesh_pb2.NodeEntry]:
        async with self.channel(address or self.a.address) as channel:
            reply = await mesh_pb2_grpc.MeshStub(channel).ListNodes(
                mesh_pb2.ListNodesRequest(include_down=True), metadata=self.auth(), timeout=5)
        return {n.node_id or n.address: n for n in reply.nodes}

    async def wait(self, predicate, what: str, address: str | None = None,  # type: ignore[no-untyped-def]
                   timeout: float = 30) -> dict[str, mesh_pb2.NodeEntry]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            nodes = await self.nodes(address)
            if predicate(nodes):
                return nodes
            if loop.time() > deadline:
                raise AssertionError(f"{what}: {[(k, mesh_pb2.NodeState.Name(n.state), n.state_reason) for k, n in nodes.items()]}")
            await asyncio.sleep(0.1)


def state(nodes: dict[str, mesh_pb2.NodeEntry], key: str) -> str:
    node = nodes.get(key)
    return mesh_pb2.NodeState.Name(node.state).removeprefix("NODE_STATE_").lower() if node else "absent"


def expired_home(tmp: Path, models: Path, ca_home: Path, node_id: str) -> Path:
    """A home with this mesh's CA certificate (not its key) and a node certificate that expired yesterday."""
    home = secure_home(tmp, "expired", models)
    ca_dir, mesh = MeshDir(ca_home), MeshDir(home)
    key = pki.new_key()
    request = pki.read_csr(pki.new_csr(key, node_id, ip_addresses=["127.0.0.1", "127.0.0.5"]))
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)
    cert = pki.issue(ca_dir.load_ca_key(), ca_dir.load_ca(), request, past)
    mesh.write(mesh.ca_cert, ca_dir.ca_cert.read_bytes())
    mesh.write(mesh.policy, ca_dir.policy.read_bytes())
    mesh.write(mesh.node_key(node_id), pki.key_pem(key))
    mesh.write(mesh.node_cert(node_id), pki.cert_pem(cert))
    return home


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(lanai_home: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp("trust")
    ha = secure_home(tmp, "a", lanai_home)
    ports = {name: free_port(host) for name, host in (("b", "127.0.0.2"), ("e", "127.0.0.5"), ("i", "127.0.0.6"))}
    peers = f"127.0.0.2:{ports['b']},127.0.0.5:{ports['e']},127.0.0.6:{ports['i']}"
    processes: list[LanaiProcess] = []
    try:
        a = await start("node", *speech_args("127.0.0.1", "--node-id", "trust-a", "--mesh-port", "0", "--peers", peers,
                                             "--metrics-token", METRICS_TOKEN, "--http-port", "0",
                                             "--wyoming-port", "0"), home=ha)
        processes.append(a)
        token = await invite(ha)
        b = await start("node", *speech_args("127.0.0.2", "--node-id", "trust-b", "--no-router", "--discovery", "none",
                                             "--mesh-port", str(ports["b"]), "--join", token),
                        home=secure_home(tmp, "b", lanai_home))
        processes.append(b)
        he = expired_home(tmp, lanai_home, ha, "trust-e")
        expired = await start("node", *speech_args("127.0.0.5", "--node-id", "trust-e", "--no-router", "--discovery",
                                                   "none", "--mesh-port", str(ports["e"])), home=he)
        processes.append(expired)
        # An --insecure node has one plaintext port, where the router expects a mesh port.
        insecure = await start("node", "--insecure", *speech_args("127.0.0.6", "--node-id", "trust-i", "--no-router",
                                                                  "--discovery", "none", "--port", str(ports["i"])),
                               home=secure_home(tmp, "i", lanai_home))
        processes.append(insecure)
        rc, key, err = await lanai("mesh", "key", "create", "tester", home=ha)
        assert rc == 0, err
        (tmp / "client-home").mkdir()
        built = Site(tmp, lanai_home, a, b, expired, insecure, ha, key.strip(), processes)
        for member in (a, b):  # the CA node reads the new policy from its file; the router hands it to b
            await until_key_works(built, member.address)
        yield built
    finally:
        for process in processes:
            await process.kill()


async def until_key_works(site: Site, address: str, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with site.channel(address) as channel:
        while True:
            try:
                await mesh_pb2_grpc.NodeStub(channel).Describe(mesh_pb2.DescribeRequest(), metadata=site.auth(),
                                                               timeout=5)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNAUTHENTICATED or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def hello(speak) -> bytes:  # type: ignore[no-untyped-def]
    return speak("Hello from the office network", "hello")  # type: ignore[no-any-return]


async def transcribe(address: str, site: Site, wav: bytes, key: str | None = None,
                     metadata: list[tuple[str, str]] | None = None) -> speech_pb2.TranscribeResponse:
    async with site.channel(address) as channel:
        return await speech_pb2_grpc.SpeechStub(channel).Transcribe(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)),
            metadata=site.auth(key) if metadata is None else metadata, timeout=60)


async def test_only_members_are_placed_on(site: Site, hello: bytes) -> None:
    nodes = await site.wait(lambda n: state(n, "trust-b") == "up" and state(n, "trust-a") == "up" and
                            len([x for x in n.values() if x.state == mesh_pb2.NODE_STATE_UNTRUSTED]) == 2,
                            "the joined node up, the expired and the insecure one untrusted")
    untrusted = {n.address: n.state_reason for n in nodes.values() if n.state == mesh_pb2.NODE_STATE_UNTRUSTED}
    assert any("expired" in reason for reason in untrusted.values()), untrusted
    assert any("no TLS with a mesh certificate" in reason for reason in untrusted.values()), untrusted
    before = {p.node_id: served(p) for p in (site.expired, site.insecure)}
    replies = [await transcribe(site.a.address, site, hello) for _ in range(12)]
    assert {r.served_by.node_id for r in replies} <= {"trust-a", "trust-b"}
    assert all("office" in r.text.lower() for r in replies)
    assert {p.node_id: served(p) for p in (site.expired, site.insecure)} == before == {"trust-e": 0, "trust-i": 0}


async def test_client_keys(site: Site, hello: bytes) -> None:
    for address in (site.a.address, site.b.address):  # through the router, and straight to the joined node
        for metadata, says in (([], "carried none"), (site.auth("lanai_not-a-key"), "not one of this mesh's keys")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await transcribe(address, site, hello, metadata=metadata)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert says in (refused.value.details() or "") and "lanai mesh key create" in (refused.value.details() or "")
    # The key reached the joined node through the router's policy gossip.
    assert "office" in (await transcribe(site.b.address, site, hello)).text.lower()


async def test_forwarded_metadata_only_from_members(site: Site, hello: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await transcribe(site.a.address, site, hello, metadata=site.auth() + [("lanai-forwarded", "me")])
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_mesh_port_wants_a_mesh_certificate(site: Site, hello: bytes) -> None:
    """A client with the right CA and key but no certificate cannot even connect to the mesh port."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await transcribe(site.b.mesh_address, site, hello)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_health_and_reflection_stay_open(site: Site) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    ca = site.tmp / "ca.pem"
    ca.write_bytes(site.ca)
    listed = subprocess.run([grpcurl, "-cacert", str(ca), site.a.address, "list"], capture_output=True, text=True,
                            timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "lanai.speech.v1.Speech" in listed.stdout


async def test_grpcurl_with_ca_and_key(site: Site, hello: bytes) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    ca = site.tmp / "ca.pem"
    ca.write_bytes(site.ca)
    body = json.dumps({"audio": {"encoded": base64.b64encode(hello).decode()}})
    call = [grpcurl, "-cacert", str(ca), "-max-time", "60", "-d", body]
    good = subprocess.run([*call, "-H", f"authorization: Bearer {site.key}", site.a.address,
                           "lanai.speech.v1.Speech/Transcribe"], capture_output=True, text=True, timeout=90)
    assert good.returncode == 0, good.stderr
    assert "office" in json.loads(good.stdout)["text"].lower()
    bad = subprocess.run([*call, site.a.address, "lanai.speech.v1.Speech/Transcribe"], capture_output=True, text=True,
                         timeout=90)
    assert bad.returncode != 0 and "Unauthenticated" in bad.stderr


async def test_cli_with_key_and_ca(site: Site, hello: bytes) -> None:
    wav = site.tmp / "hello.wav"
    wav.write_bytes(hello)
    ca = site.tmp / "ca.pem"
    ca.write_bytes(site.ca)
    elsewhere = site.tmp / "client-home"  # a client machine: no mesh of its own
    rc, out, err = await lanai("transcribe", str(wav), "--to", site.a.address, "--ca", str(ca), "--key", site.key,
                               home=elsewhere)
    assert rc == 0, err
    assert "office" in out.lower()
    rc, _, err = await lanai("transcribe", str(wav), "--to", site.a.address, "--ca", str(ca), home=elsewhere)
    assert rc == 1 and "UNAUTHENTICATED" in err and "--key" in err
    rc, out, err = await lanai("mesh", "ls", "--to", site.a.address, "--ca", str(ca), "--key", site.key, "--all",
                               home=elsewhere)
    assert rc == 0, err
    assert re.search(r"^trust-b\s+up\s", out, re.M) and re.search(r"\suntrusted\s", out), out


async def join_fails(site: Site, token: str, name: str) -> str:
    """Start a node with the token; it must exit 2 before serving, with the reason on stderr."""
    home = secure_home(site.tmp, name, site.models)
    rc, _, err = await lanai("node", *speech_args("127.0.0.9", "--node-id", name, "--join", token, "--no-router",
                                                  "--discovery", "none", "--mesh-port", "0"), home=home, timeout=60)
    assert rc == 2, err
    assert not (MeshDir(home).node_cert(name)).exists()
    return err


async def test_an_invite_works_once(site: Site) -> None:
    token = await invite(site.ha)
    joined = await start("router", "--host", "127.0.0.7", "--port", "0", "--mesh-port", "0", "--metrics-port", "-1",
                         "--node-id", "trust-once", "--discovery", "none", "--join", token,
                         home=secure_home(site.tmp, "once", site.models))
    site.processes.append(joined)
    err = await join_fails(site, token, "trust-twice")
    assert "already used" in err and "new invite" in err


async def test_expired_and_wrong_tokens_are_refused(site: Site) -> None:
    token = await invite(site.ha, "--ttl", "1s")
    await asyncio.sleep(1.1)  # the invite's own clock: it must have run out
    assert "expired" in await join_fails(site, token, "trust-late")
    real = invites.decode(await invite(site.ha))
    wrong_secret = dataclasses.replace(real, secret="guessed").encode()
    assert "secret is wrong" in await join_fails(site, wrong_secret, "trust-guess")
    wrong_ca = dataclasses.replace(real, mesh="0" * 64).encode()
    err = await join_fails(site, wrong_ca, "trust-pinned")
    assert "another mesh's CA" in err and "refusing to join" in err
    assert "not a lanai join token" in await join_fails(site, "hello", "trust-junk")


async def test_a_spoofed_inviter_is_not_joined(site: Site) -> None:
    """A real node of another mesh, at the address a token names, with the real mesh's fingerprint."""
    spoof = await start("router", "--host", "127.0.0.8", "--port", "0", "--mesh-port", "0", "--metrics-host",
                        "127.0.0.8", "--metrics-port", "0", "--node-id", "trust-a", "--discovery", "none",
                        home=secure_home(site.tmp, "spoof", site.models))
    site.processes.append(spoof)
    real = invites.decode(await invite(site.ha))
    host, port = spoof.address.rsplit(":", 1)
    token = dataclasses.replace(real, host=host, grpc_port=int(port), http_port=spoof.metrics_port).encode()
    assert "another mesh's CA" in await join_fails(site, token, "trust-fooled")


def fetch(url: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_metrics_token_and_refusal_counters(site: Site, hello: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await transcribe(site.a.address, site, hello, metadata=[])
    base = f"http://127.0.0.1:{site.a.metrics_port}"
    status, body = await asyncio.to_thread(fetch, f"{base}/metrics")
    assert status == 401 and b"Bearer" in body
    assert (await asyncio.to_thread(fetch, f"{base}/metrics", "wrong"))[0] == 401
    status, body = await asyncio.to_thread(fetch, f"{base}/metrics", METRICS_TOKEN)
    assert status == 200
    text = body.decode()
    rejected = re.search(r'^lanai_client_calls_rejected_total\{reason="no_key"\} (\S+)$', text, re.M)
    refused = re.search(r'^lanai_mesh_refused_peers_total\{reason="untrusted"\} (\S+)$', text, re.M)
    assert rejected and float(rejected.group(1)) >= 1, text[-2000:]
    assert refused and float(refused.group(1)) >= 2  # the expired node and the insecure one
    assert (await asyncio.to_thread(fetch, f"{base}/mesh/ca.pem")) == (200, site.ca)  # public: joiners pin it


async def test_a_member_renews_at_the_ca_node(site: Site) -> None:
    """The joined node's certificate, renewed as its clock would at day 6 of 7: over the mesh port
    to the CA's node, with the current certificate as proof."""
    home = site.tmp / "b"
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=6)
    trust = Trust(MeshDir(home), "trust-b", SecurityConfig(), clock=lambda: later)
    trust.renew_from = lambda csr: renew_through_issuer(trust.dir, trust, csr)
    before = trust.cert
    assert trust.renewal_due()
    await trust.renew()
    assert trust.cert.serial != before.serial and trust.cert.not_after > before.not_after
    assert pki.issued_by(pki.load_cert(MeshDir(home).node_cert("trust-b").read_bytes()), MeshDir(site.ha).load_ca())
    assert trust.generation == 1


async def test_a_client_certificate_instead_of_a_key(site: Site, hello: bytes) -> None:
    out = site.tmp / "client-cert"
    rc, _, err = await lanai("mesh", "cert", "reporter", "--out", str(out), home=site.ha)
    assert rc == 0, err
    assert (out / "reporter.key").stat().st_mode & 0o777 == 0o600
    wav = site.tmp / "hello.wav"
    wav.write_bytes(hello)
    flags = ["--to", site.a.mesh_address, "--ca", str(out / "ca.crt"), "--cert", str(out / "reporter.crt"),
             "--cert-key", str(out / "reporter.key")]
    rc, text, err = await lanai("transcribe", str(wav), *flags, home=site.tmp / "client-home")
    assert rc == 0, err
    assert "office" in text.lower()
    rc, _, err = await lanai("mesh", "revoke", "reporter", home=site.ha)
    assert rc == 0, err
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        rc, _, err = await lanai("transcribe", str(wav), *flags, home=site.tmp / "client-home")
        if rc == 1 and "PERMISSION_DENIED" in err and "revoked" in err:
            break
        assert loop.time() < deadline, err
        await asyncio.sleep(0.2)


async def test_revoked_key_and_node(site: Site, hello: bytes) -> None:
    # A second router, a member that joined, following the same nodes.
    second = await start("router", "--host", "127.0.0.10", "--port", "0", "--mesh-port", "0", "--metrics-port", "-1",
                         "--node-id", "trust-r2", "--peers", f"{site.b.mesh_address},{site.a.mesh_address}",
                         "--join", await invite(site.ha), home=secure_home(site.tmp, "r2", site.models))
    site.processes.append(second)
    await site.wait(lambda n: state(n, "trust-b") == "up", "the second router sees the joined node",
                    address=second.address)
    rc, spare, _ = await lanai("mesh", "key", "create", "spare", home=site.ha)
    assert rc == 0
    rc, _, err = await lanai("mesh", "key", "revoke", "spare", home=site.ha)
    assert rc == 0, err
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:  # every member refuses it within seconds: the router's node, and the joined node
        outcomes = []
        for address in (site.a.address, site.b.address):
            try:
                await transcribe(address, site, hello, key=spare.strip())
                outcomes.append("OK")
            except grpc.aio.AioRpcError as exc:
                outcomes.append(f"{exc.code().name}: {exc.details()}")
        if all(o.startswith("UNAUTHENTICATED") and "'spare' was revoked" in o for o in outcomes):
            break
        assert loop.time() < deadline, outcomes
        await asyncio.sleep(0.2)

    rc, out, err = await lanai("mesh", "revoke", "trust-b", home=site.ha)
    assert rc == 0, err
    for router in (site.a, second):  # reaches the second router through gossip
        nodes = await site.wait(lambda n: state(n, "trust-b") == "revoked", "trust-b revoked",
                                address=router.address, timeout=20)
        assert "revoked" in nodes["trust-b"].state_reason
    before = served(site.b)
    replies = [await transcribe(router.address, site, hello) for router in (site.a, second) for _ in range(25)]
    assert {r.served_by.node_id for r in replies} == {"trust-a"}
    assert served(site.b) == before
    # The router told the revoked node as it let go: it refuses its own clients too, and says why.
    deadline = loop.time() + 10
    while True:
        try:
            await transcribe(site.b.address, site, hello)
            outcome = "OK"
        except grpc.aio.AioRpcError as exc:
            outcome = f"{exc.code().name}: {exc.details()}"
        if outcome.startswith("PERMISSION_DENIED") and "trust-b was revoked from its mesh" in outcome:
            break
        assert loop.time() < deadline, outcome
        await asyncio.sleep(0.2)
    # Nor may it renew its certificate any more.
    trust = Trust(MeshDir(site.tmp / "b"), "trust-b", SecurityConfig())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await renew_through_issuer(trust.dir, trust, pki.new_csr(pki.new_key(), "trust-b"))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED and "revoked" in (refused.value.details() or "")


SDK_CALLS = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=60)
out = {}
try:
    out["models"] = sorted(m.id for m in client.models.list().data)
    with open(sys.argv[3], "rb") as wav:
        out["text"] = client.audio.transcriptions.create(model="whisper-1", file=wav).text
except openai.APIStatusError as exc:
    out["status"], out["error"] = exc.status_code, exc.body
print(json.dumps(out))
"""


async def test_http_door_is_https_with_the_mesh_ca_and_wants_a_key(site: Site, hello: bytes) -> None:
    """The `openai` SDK the way docs/doors.md says to point it at a keyed LAN node: the mesh CA in
    SSL_CERT_FILE and the API key as api_key."""
    ca, wav = site.tmp / "door-ca.pem", site.tmp / "door-hello.wav"
    ca.write_bytes(site.ca)
    wav.write_bytes(hello)
    url = f"https://127.0.0.1:{site.a.http_port}/v1"

    async def sdk(key: str) -> dict[str, object]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SDK_CALLS, url, key, str(wav), env={**os.environ, "SSL_CERT_FILE": str(ca)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        return json.loads(out)  # type: ignore[no-any-return]

    good = await sdk(site.key)
    assert "tiny.en" in good["models"] and "office" in str(good["text"]).lower(), good
    for key in ("", "lanai_not-a-key"):
        refused = await sdk(key or "unset")
        assert refused["status"] == 401, refused
        assert refused["error"]["type"] == "authentication_error"  # type: ignore[index]
    # The door speaks only TLS here: a plaintext request gets no HTTP answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{site.a.http_port}/v1/models", timeout=10)


async def test_wyoming_answers_on_a_keyed_node_from_loopback(site: Site, hello: bytes) -> None:
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info
    async with AsyncTcpClient("127.0.0.1", site.a.wyoming_port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
    assert event is not None and Info.is_type(event.type), event
    assert [m.name for p in Info.from_event(event).asr for m in p.models] == ["tiny.en"]
