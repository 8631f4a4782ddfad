"""lanai.mesh.security.policy: the signed mesh policy (revoked nodes, API keys), its edits (each one
version up) and its verification against the mesh CA's key."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from lanai.mesh.security import policy as policies
from lanai.mesh.security.policy import ApiKey, Policy, PolicyError

MESH = "ab" * 32
OTHER_MESH = "cd" * 32
KEY = "lanai_" + "k" * 43
OTHER_KEY = "lanai_" + "x" * 43


@pytest.fixture(scope="module")
def ca_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def full_policy() -> Policy:
    p = policies.add_key(Policy(MESH), "ci", KEY, now=100)
    p = policies.add_key(p, "laptop", OTHER_KEY, now=110)
    p = policies.revoke_key(p, "laptop", now=120)
    return policies.revoke_node(p, "gpu-2", now=130)


# --- sign / verify --------------------------------------------------------------------------------------------


def test_an_empty_policy_round_trips(ca_key: ec.EllipticCurvePrivateKey) -> None:
    assert policies.verify(policies.sign(Policy(MESH), ca_key), ca_key.public_key(), MESH) == Policy(MESH)


def test_a_full_policy_round_trips(ca_key: ec.EllipticCurvePrivateKey) -> None:
    p = full_policy()
    back = policies.verify(policies.sign(p, ca_key), ca_key.public_key(), MESH)
    assert back == p
    assert back.version == 4
    assert back.revoked_nodes == {"gpu-2": 130}
    assert back.keys["laptop"] == ApiKey("laptop", policies.hash_key(OTHER_KEY), 110, 120)


def test_the_body_is_canonical() -> None:
    assert full_policy().body() == full_policy().body()
    assert json.loads(full_policy().body())["mesh"] == MESH


def test_the_signed_document_keeps_no_key_in_the_clear(ca_key: ec.EllipticCurvePrivateKey) -> None:
    signed = policies.sign(full_policy(), ca_key)
    assert KEY.encode() not in signed and OTHER_KEY.encode() not in signed
    assert policies.hash_key(KEY).encode() in signed


def test_a_policy_signed_by_another_key_is_refused(ca_key: ec.EllipticCurvePrivateKey) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PolicyError, match="not signed by this mesh's CA"):
        policies.verify(policies.sign(full_policy(), forger), ca_key.public_key(), MESH)


def test_a_tampered_body_is_refused(ca_key: ec.EllipticCurvePrivateKey) -> None:
    outer = json.loads(policies.sign(full_policy(), ca_key))
    body = json.loads(outer["body"])
    body["revoked_nodes"] = {}
    body["version"] = 99
    outer["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    with pytest.raises(PolicyError, match="not signed"):
        policies.verify(json.dumps(outer).encode(), ca_key.public_key(), MESH)


def test_a_signature_moved_onto_another_body_is_refused(ca_key: ec.EllipticCurvePrivateKey) -> None:
    mine = json.loads(policies.sign(Policy(MESH), ca_key))
    theirs = json.loads(policies.sign(full_policy(), ca_key))
    mine["signature"] = theirs["signature"]
    with pytest.raises(PolicyError):
        policies.verify(json.dumps(mine).encode(), ca_key.public_key(), MESH)


def test_a_policy_for_another_mesh_is_refused(ca_key: ec.EllipticCurvePrivateKey) -> None:
    signed = policies.sign(Policy(OTHER_MESH, version=5), ca_key)
    with pytest.raises(PolicyError, match="belongs to mesh"):
        policies.verify(signed, ca_key.public_key(), MESH)


@pytest.mark.parametrize("signed", [
    b"", b"not json", b"[]", b"{}", b'{"body": "{}", "signature": ""}',
    json.dumps({"body": json.dumps({"mesh": MESH}), "signature": base64.b64encode(b"x").decode()}).encode(),
], ids=["empty", "text", "list", "no-body", "empty-body", "bad-signature"])
def test_a_malformed_document_is_refused(ca_key: ec.EllipticCurvePrivateKey, signed: bytes) -> None:
    with pytest.raises(PolicyError):
        policies.verify(signed, ca_key.public_key(), MESH)


def test_a_signed_but_malformed_body_is_refused(ca_key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps({"mesh": MESH, "version": 1, "revoked_nodes": [], "keys": {}}).encode()
    signature = ca_key.sign(body, ec.ECDSA(hashes.SHA256()))
    signed = json.dumps({"body": body.decode(), "signature": base64.b64encode(signature).decode()}).encode()
    with pytest.raises(PolicyError, match="malformed"):
        policies.verify(signed, ca_key.public_key(), MESH)


# --- keys -----------------------------------------------------------------------------------------------------


def test_key_named_finds_a_key_by_its_hash() -> None:
    found = full_policy().key_named(KEY)
    assert found is not None and found.name == "ci" and found.revoked == 0
    assert found.sha256 == policies.hash_key(KEY)


def test_key_named_returns_revoked_keys_flagged() -> None:
    found = full_policy().key_named(OTHER_KEY)
    assert found is not None and found.name == "laptop" and found.revoked == 120


@pytest.mark.parametrize("presented", ["", "lanai_nope", policies.hash_key(KEY), "ci"])
def test_key_named_does_not_find_what_is_not_a_key(presented: str) -> None:
    assert full_policy().key_named(presented) is None


def test_a_duplicate_key_name_is_refused() -> None:
    with pytest.raises(PolicyError, match="exists already"):
        policies.add_key(full_policy(), "ci", "lanai_another", now=200)


def test_a_revoked_key_name_stays_taken() -> None:
    with pytest.raises(PolicyError, match="exists already"):
        policies.add_key(full_policy(), "laptop", "lanai_another", now=200)


def test_revoking_an_unknown_key_is_refused() -> None:
    with pytest.raises(PolicyError, match="no key named 'nope'"):
        policies.revoke_key(full_policy(), "nope", now=200)


# --- versions -------------------------------------------------------------------------------------------------


def test_every_change_is_one_version_up() -> None:
    p0 = Policy(MESH)
    p1 = policies.add_key(p0, "ci", KEY, now=1)
    p2 = policies.revoke_key(p1, "ci", now=2)
    p3 = policies.revoke_node(p2, "gpu-2", now=3)
    assert [p.version for p in (p0, p1, p2, p3)] == [0, 1, 2, 3]


def test_changes_leave_the_policy_they_were_given_alone() -> None:
    p0 = Policy(MESH)
    p1 = policies.add_key(p0, "ci", KEY, now=1)
    policies.revoke_key(p1, "ci", now=2)
    policies.revoke_node(p1, "gpu-2", now=3)
    assert p0 == Policy(MESH)
    assert p1.keys["ci"].revoked == 0 and p1.revoked_nodes == {} and p1.version == 1


def test_revoking_a_node_keeps_the_earlier_revocations() -> None:
    p = policies.revoke_node(policies.revoke_node(Policy(MESH), "a", now=1), "b", now=2)
    assert p.revoked_nodes == {"a": 1, "b": 2}
