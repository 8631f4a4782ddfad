"""lanai.mesh.mesh_service: every router-side node state has its wire value."""

from __future__ import annotations

from lanai.api.mesh.v1 import mesh_pb2
from lanai.mesh.mesh_service import _STATES
from lanai.mesh.state import NodeState


def test_every_node_state_is_on_the_wire_under_its_own_name() -> None:
    assert set(_STATES) == set(NodeState)
    for state, wire in _STATES.items():
        assert mesh_pb2.NodeState.Name(wire) == f"NODE_STATE_{state.name}"
