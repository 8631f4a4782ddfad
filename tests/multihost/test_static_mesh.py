"""Static discovery across hosts: a router given --peers, nodes with --discovery none (no
multicast anywhere), still placing requests on both nodes."""

from __future__ import annotations

from collections import Counter

import pytest

from .conftest import Mesh, RouterClient, Topology

pytestmark = pytest.mark.multihost


def test_static_peers_without_multicast(mesh: Mesh, client: RouterClient, topology: Topology,
                                        fox_wav: bytes) -> None:
    router = mesh.router(peers=[topology.grpc_address("a"), topology.grpc_address("b")])
    a, b = mesh.node("a", "nodeA", discovery="none"), mesh.node("b", "nodeB", discovery="none")
    mesh.ready(router, a, b)
    client.wait_up("nodeA", "nodeB", timeout=30)

    nodes = {n.node_id: n for n in client.list_nodes()}
    assert {n.discovered_by for n in nodes.values()} == {"static"}
    assert {n.address for n in nodes.values()} == {topology.grpc_address("a"), topology.grpc_address("b")}
    for key in ("r", "a", "b"):  # nobody opened an mDNS socket
        sockets = topology.run_in(key, ["ss", "-Huan"]).stdout
        assert ":5353 " not in sockets, f"{key} has an mDNS socket:\n{sockets}"

    responses = client.transcribe_rounds(fox_wav, rounds=2, concurrent=6)
    served = Counter(r.served_by.node_id for r in responses)
    print(f"\nserved: {dict(served)}")
    assert all("lazy dog" in r.text.lower() for r in responses), [r.text for r in responses]
    assert served["nodeA"] > 0 and served["nodeB"] > 0 and sum(served.values()) == 12, served
