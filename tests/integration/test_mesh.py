"""The mesh on one machine (the loopback variant of tests/multihost): real node and router
processes on 127.0.0.x, static and mDNS discovery, placement, retries, failures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from lanai.api.mesh.v1 import mesh_pb2
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

from .conftest import has_keywords
from .processes import LANAI, LanaiProcess, free_port, start, up, wait_for_nodes
from .test_speech import stream_requests, to_16k

pytestmark = pytest.mark.asyncio(loop_scope="session")
# speech only unless a test says otherwise (a later --services wins)
NODE = ["--services", "speech", "--metrics-port", "-1", "--speech-models", "tiny.en"]


async def node(home: Path, host: str, port: int, node_id: str, *extra: str) -> LanaiProcess:
    return await start("node", "--insecure", "--host", host, "--port", str(port), "--node-id", node_id, *NODE, *extra, home=home)


async def router(home: Path, *extra: str) -> LanaiProcess:
    return await start("router", "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", *extra, home=home)


class Pair:
    """Two lone nodes (no router, no discovery) on 127.0.0.2 and .3, and a router given them as peers."""

    def __init__(self, nodes: list[LanaiProcess], ports: tuple[int, int], router: LanaiProcess) -> None:
        self.nodes, self.ports, self.router = nodes, ports, router


LONE = ("--no-router", "--discovery", "none")


@contextlib.asynccontextmanager
async def lone_pair(home: Path, ids: tuple[str, str], node_flags: tuple[str, ...] = LONE,
                    router_flags: tuple[str, ...] = ()) -> AsyncIterator[Pair]:
    ports = (free_port("127.0.0.2"), free_port("127.0.0.3"))
    nodes = list(await asyncio.gather(*(node(home, f"127.0.0.{2 + i}", ports[i], ids[i], *node_flags)
                                        for i in range(2))))
    r = await router(home, "--peers", f"127.0.0.2:{ports[0]},127.0.0.3:{ports[1]}", *router_flags)
    pair = Pair(nodes, ports, r)
    try:
        yield pair
    finally:
        for p in (pair.router, *pair.nodes):  # pair.nodes: a test may have restarted one
            await p.kill()


class Mesh:
    def __init__(self, a: LanaiProcess, b: LanaiProcess, r: LanaiProcess) -> None:
        self.a, self.b, self.router = a, b, r


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(lanai_home: Path) -> AsyncIterator[Mesh]:
    """Nodes A (127.0.0.2) and B (127.0.0.3), each also routing to the other, and a router."""
    pa, pb = free_port("127.0.0.2"), free_port("127.0.0.3")
    a, b = await asyncio.gather(node(lanai_home, "127.0.0.2", pa, "node-a", "--peers", f"127.0.0.3:{pb}"),
                                node(lanai_home, "127.0.0.3", pb, "node-b", "--peers", f"127.0.0.2:{pa}"))
    r = await router(lanai_home, "--peers", f"127.0.0.2:{pa},127.0.0.3:{pb}", "--node-id", "router")
    try:
        await wait_for_nodes(r.address, lambda nodes: up(nodes, "node-a", "node-b"))
        yield Mesh(a, b, r)
    finally:
        for p in (r, a, b):
            await p.kill()


async def transcribe_many(address: str, wav: bytes, n: int, **options: object) -> list[object]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        request = speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav),
                                               options=speech_pb2.TranscriptionOptions(**options))  # type: ignore[arg-type]
        return await asyncio.gather(*(stub.Transcribe(request, timeout=120) for _ in range(n)), return_exceptions=True)


async def test_router_spreads_concurrent_requests(mesh: Mesh, fox_wav: bytes) -> None:
    served: Counter[str] = Counter()
    for _ in range(3):
        for reply in await transcribe_many(mesh.router.address, fox_wav, 6):
            assert not isinstance(reply, BaseException), reply
            assert has_keywords(reply.text)  # type: ignore[attr-defined]
            served[reply.served_by.node_id] += 1  # type: ignore[attr-defined]
    assert set(served) == {"node-a", "node-b"}, served
    # Every call is counted finished when it ends (placement weighs the router's in-flight calls).
    listed = await wait_for_nodes(mesh.router.address, lambda nodes: up(nodes, "node-a", "node-b"))
    assert [n.router_in_flight for n in listed.nodes] == [0, 0]


async def test_a_client_may_connect_to_any_node(mesh: Mesh, fox_wav: bytes) -> None:
    """Node A routes too; what it forwards to B is served by B, never forwarded again."""
    served: Counter[str] = Counter()
    for _ in range(3):
        for reply in await transcribe_many(mesh.a.address, fox_wav, 6):
            assert not isinstance(reply, BaseException), reply
            served[reply.served_by.node_id] += 1  # type: ignore[attr-defined]
    assert set(served) == {"node-a", "node-b"}, served


async def test_stream_through_the_router_behaves_like_direct(mesh: Mesh, fox_wav: bytes) -> None:
    pcm = to_16k(fox_wav, silence_after_s=1.0)

    async def run(address: str) -> list[speech_pb2.StreamTranscribeResponse]:
        async with grpc.aio.insecure_channel(address) as channel:
            call = speech_pb2_grpc.SpeechStub(channel).StreamTranscribe(stream_requests(pcm, pace=True, sent=[]))
            return [r async for r in call]

    routed, direct = await run(mesh.router.address), await run(mesh.b.address)
    for responses in (routed, direct):
        finals = [r for r in responses if r.is_final]
        assert len(finals) == 1 and has_keywords(finals[0].text) and finals[0].end_of_utterance
        assert any(not r.is_final for r in responses[: responses.index(finals[0])]), "no partial before the final"
    assert [r.text for r in routed if r.is_final] == [r.text for r in direct if r.is_final]
    assert routed[-1].served_by.node_id in {"node-a", "node-b"}


async def test_unknown_model_is_unavailable_and_named(mesh: Mesh, fox_wav: bytes) -> None:
    (error,) = await transcribe_many(mesh.router.address, fox_wav, 1, model="large-v9")
    assert isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE
    assert "model 'large-v9'" in (error.details() or "") and "tiny.en" in (error.details() or "")


async def test_node_errors_reach_the_client_unchanged(mesh: Mesh) -> None:
    (error,) = await transcribe_many(mesh.router.address, b"", 1)
    assert isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in (error.details() or "")


async def test_mesh_ls_shows_both_nodes(mesh: Mesh, lanai_home: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "mesh", "ls", "--to",
        mesh.router.address, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    lines = out.decode().splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "ADDRESS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["node-a"][1] == "up" and rows["node-b"][1] == "up" and "tiny.en" in rows["node-a"]


async def test_resource_exhausted_only_when_every_node_is_full(lanai_home: Path, long_wav: bytes) -> None:
    async with lone_pair(lanai_home, ("full-a", "full-b"),
                         node_flags=("--speech-slots", "1", "--speech-queue", "0", *LONE)) as pair:
        r = pair.router
        await wait_for_nodes(r.address, lambda nodes: up(nodes, "full-a", "full-b"))
        replies = await transcribe_many(r.address, long_wav, 5)
        served = sorted(x.served_by.node_id for x in replies if not isinstance(x, BaseException))  # type: ignore[attr-defined]
        refused = [x for x in replies if isinstance(x, grpc.aio.AioRpcError)]
        assert served == ["full-a", "full-b"], replies
        assert len(refused) == 3 and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused)
        assert "every node serving speech is full" in (refused[0].details() or "")


async def test_sigkill_costs_no_failed_requests_and_the_node_comes_back(lanai_home: Path, fox_wav: bytes) -> None:
    async with lone_pair(lanai_home, ("kill-a", "kill-b")) as pair:
        r = pair.router
        await wait_for_nodes(r.address, lambda nodes: up(nodes, "kill-a", "kill-b"))
        failures: list[BaseException] = []
        served: Counter[str] = Counter()
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                for reply in await transcribe_many(r.address, fox_wav, 2):
                    if isinstance(reply, BaseException):
                        failures.append(reply)
                    else:
                        served[reply.served_by.node_id] += 1  # type: ignore[attr-defined]

        traffic = asyncio.create_task(load())
        await asyncio.sleep(1.5)  # traffic on both nodes before the kill
        killed_at = time.monotonic()
        await pair.nodes[1].kill()
        await wait_for_nodes(r.address, lambda nodes: "kill-b" not in {n.node_id for n in nodes}, timeout=10)
        gone_after = time.monotonic() - killed_at
        await asyncio.sleep(1.0)  # traffic with one node
        stop.set()
        await traffic
        assert not failures, failures[:3]
        assert gone_after < 3.0, f"the killed node stayed listed for {gone_after:.1f} s"

        pair.nodes[1] = await node(lanai_home, "127.0.0.3", pair.ports[1], "kill-b", *LONE)  # restarted: used again
        await wait_for_nodes(r.address, lambda nodes: up(nodes, "kill-a", "kill-b"), timeout=15)
        again: Counter[str] = Counter()
        for _ in range(3):
            for reply in await transcribe_many(r.address, fox_wav, 4):
                assert not isinstance(reply, BaseException), reply
                again[reply.served_by.node_id] += 1  # type: ignore[attr-defined]
        assert again["kill-b"] > 0, again


async def test_node_outside_the_allow_list_never_gets_work(lanai_home: Path, fox_wav: bytes) -> None:
    async with lone_pair(lanai_home, ("inside", "outside"), router_flags=("--allow", "127.0.0.2/32")) as pair:
        r, pb = pair.router, pair.ports[1]
        reply = await wait_for_nodes(r.address, lambda nodes: up(nodes, "inside") and any(
            n.state == mesh_pb2.NODE_STATE_REFUSED for n in nodes))
        refused = next(n for n in reply.nodes if n.state == mesh_pb2.NODE_STATE_REFUSED)
        assert refused.address == f"127.0.0.3:{pb}" and "allow-list" in refused.state_reason
        assert not refused.node_id  # never contacted, so never described
        served = Counter(x.served_by.node_id for x in await transcribe_many(r.address, fox_wav, 8))  # type: ignore[attr-defined]
        assert served == {"inside": 8}


async def test_mdns_discovery_on_loopback(lanai_home: Path, fox_wav: bytes) -> None:
    """No peers configured: the router finds the node by its mDNS announcement (bound to 127.0.0.1)."""
    mdns = ["--discovery", "mdns", "--advertise-address", "127.0.0.1"]
    n = await node(lanai_home, "127.0.0.1", free_port(), "mdns-node", "--no-router", *mdns)
    r = await router(lanai_home, *mdns)
    try:
        reply = await wait_for_nodes(r.address, lambda nodes: up(nodes, "mdns-node"), timeout=15)
        assert next(x for x in reply.nodes if x.node_id == "mdns-node").discovered_by == "mdns"
        (answer,) = await transcribe_many(r.address, fox_wav, 1)
        assert answer.served_by.node_id == "mdns-node"  # type: ignore[attr-defined]
        assert await n.terminate() == 0  # goodbye on mDNS, then drain
        await wait_for_nodes(r.address, lambda nodes: "mdns-node" not in {x.node_id for x in nodes},
                             include_down=True, timeout=10)
        # Restarted under the same id (so the same mDNS name): registered again, found again.
        n = await node(lanai_home, "127.0.0.1", free_port(), "mdns-node", "--no-router", *mdns)
        await wait_for_nodes(r.address, lambda nodes: up(nodes, "mdns-node"), timeout=15)
    finally:
        for p in (r, n):
            await p.kill()
