"""The dns discovery backend against a DNS server the test controls (127.0.0.1, records changed live)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_asyncio

from lanai.mesh.discovery import DnsDiscovery

pytestmark = pytest.mark.asyncio(loop_scope="session")
NAME = "lanai-nodes.lanai.svc.cluster.local."


class Zone(asyncio.DatagramProtocol):
    """Answers A queries for NAME from `self.records`; NXDOMAIN for anything else."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        if str(question.name).lower() != NAME:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A and self.records:
            reply.answer.append(dns.rrset.from_text(NAME, 1, "IN", "A", *self.records))
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


@pytest_asyncio.fixture(loop_scope="session")
async def zone() -> AsyncIterator[tuple[Zone, int]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(Zone, local_addr=("127.0.0.1", 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def test_follows_pods_joining_and_leaving(zone: tuple[Zone, int]) -> None:
    server, port = zone
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    backend = DnsDiscovery(NAME, 50051, server=f"127.0.0.1:{port}", interval_s=0.05)
    server.records = ["10.1.0.4", "10.1.0.5"]
    await backend.start(lambda address, source, _id, _mesh: events.put_nowait(("found", address)),
                        lambda address: events.put_nowait(("gone", address)))
    try:
        first = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
        assert first == {("found", "10.1.0.4:50051"), ("found", "10.1.0.5:50051")}
        server.records = ["10.1.0.5", "10.1.0.6"]  # a pod replaced
        second = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
        assert second == {("gone", "10.1.0.4:50051"), ("found", "10.1.0.6:50051")}
        server.records = []  # the service has no ready pods: NoAnswer
        third = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
        assert third == {("gone", "10.1.0.5:50051"), ("gone", "10.1.0.6:50051")}
    finally:
        await backend.stop()


async def test_an_unknown_name_finds_nothing(zone: tuple[Zone, int]) -> None:
    _, port = zone
    backend = DnsDiscovery("nothing.example.", 50051, server=f"127.0.0.1:{port}")
    assert await backend.resolve() == set()
