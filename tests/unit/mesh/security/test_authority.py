"""lanai.mesh.security.authority: what the CA's machine does, against a mesh directory in tmp_path:
create the mesh, honour invites, renew members, refuse revoked or taken ids, sign policy changes."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from lanai.mesh.security import authority, pki
from lanai.mesh.security import policy as policies
from lanai.mesh.security.invites import InviteError
from lanai.mesh.security.store import MeshDir

T0 = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def mesh(tmp_path: Path) -> MeshDir:
    home = MeshDir(tmp_path)
    authority.init(home, T0)
    return home


def csr(name: str, dns: tuple[str, ...] = (), role: str = pki.ROLE_NODE) -> bytes:
    return pki.new_csr(pki.new_key(), name, role, dns, ("127.0.0.1",))


def joined(mesh: MeshDir, name: str, *, dns: tuple[str, ...] = (), now: dt.datetime = T0) -> pki.CertInfo:
    """A fresh one-use invite, redeemed by `name`."""
    invite_id, secret = authority.invite(mesh, now, 3600, 1)
    return pki.info(pki.load_cert(authority.join(mesh, invite_id, secret, csr(name, dns), now)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init -----------------------------------------------------------------------------------------------------


def test_init_creates_a_private_ca(tmp_path: Path) -> None:
    home = MeshDir(tmp_path)
    mesh_id = authority.init(home, T0)
    assert home.exists() and home.holds_ca()
    assert mode(home.path) == 0o700
    assert mode(home.ca_key) == 0o600
    assert mode(home.ca_cert) == 0o600 and mode(home.policy) == 0o600
    assert mesh_id == pki.fingerprint(home.load_ca())
    assert pki.load_key(home.ca_key.read_bytes()).public_key().public_numbers() == \
        home.load_ca().public_key().public_numbers()  # type: ignore[union-attr]


def test_init_signs_an_empty_policy(mesh: MeshDir) -> None:
    got = mesh.read_policy(mesh.load_ca())
    assert got == policies.Policy(pki.fingerprint(mesh.load_ca()))


def test_init_tightens_an_existing_open_directory(tmp_path: Path) -> None:
    (tmp_path / "mesh").mkdir(mode=0o755)
    authority.init(MeshDir(tmp_path), T0)
    assert mode(tmp_path / "mesh") == 0o700


def test_init_twice_is_refused_and_keeps_the_first_ca(mesh: MeshDir) -> None:
    first = mesh.ca_key.read_bytes()
    with pytest.raises(FileExistsError, match="a mesh exists already"):
        authority.init(mesh, T0)
    assert mesh.ca_key.read_bytes() == first


# --- invite and join ------------------------------------------------------------------------------------------


def test_an_invite_needs_the_ca_key(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="does not hold the mesh CA"):
        authority.invite(MeshDir(tmp_path), T0, 3600, 1)


def test_an_invite_is_stored_without_its_secret(mesh: MeshDir) -> None:
    invite_id, secret = authority.invite(mesh, T0, 3600, 2)
    stored = mesh.read_invites()[invite_id]
    assert stored.uses == 2 and stored.expires == int(T0.timestamp()) + 3600
    assert secret.encode() not in mesh.invites.read_bytes()
    assert mode(mesh.invites) == 0o600


def test_a_join_signs_a_certificate_for_the_requested_name(mesh: MeshDir) -> None:
    invite_id, secret = authority.invite(mesh, T0, 3600, 1)
    pem = authority.join(mesh, invite_id, secret, csr("gpu-2", ("gpu-box",)), T0)
    cert = pki.load_cert(pem)
    got = pki.info(cert)
    assert got.name == "gpu-2" and got.dns_names == ("gpu-2", "gpu-box") and got.role == pki.ROLE_NODE
    assert pki.issued_by(cert, mesh.load_ca())
    assert got.not_after == T0 + pki.NODE_LIFETIME
    member = mesh.read_members()["gpu-2"]
    assert member["serial"] == format(got.serial, "x") and member["joined"] == T0.timestamp()


def test_a_one_use_invite_admits_one_node(mesh: MeshDir) -> None:
    invite_id, secret = authority.invite(mesh, T0, 3600, 1)
    authority.join(mesh, invite_id, secret, csr("gpu-2"), T0)
    assert mesh.read_invites()[invite_id].uses == 0
    with pytest.raises(InviteError, match="already used"):
        authority.join(mesh, invite_id, secret, csr("gpu-3"), T0)
    assert "gpu-3" not in mesh.read_members()


def test_a_join_with_a_wrong_secret_is_refused(mesh: MeshDir) -> None:
    invite_id, _ = authority.invite(mesh, T0, 3600, 1)
    with pytest.raises(InviteError, match="secret is wrong"):
        authority.join(mesh, invite_id, "guess", csr("gpu-2"), T0)
    assert mesh.read_invites()[invite_id].uses == 1


def test_a_join_after_the_invite_expired_is_refused(mesh: MeshDir) -> None:
    invite_id, secret = authority.invite(mesh, T0, 60, 1)
    with pytest.raises(InviteError, match="expired"):
        authority.join(mesh, invite_id, secret, csr("gpu-2"), T0 + dt.timedelta(seconds=61))


def test_a_bad_request_does_not_use_up_the_invite(mesh: MeshDir) -> None:
    invite_id, secret = authority.invite(mesh, T0, 3600, 1)
    with pytest.raises(pki.PkiError):
        authority.join(mesh, invite_id, secret, b"not a csr", T0)
    with pytest.raises(pki.PkiError, match="invite admits nodes"):
        authority.join(mesh, invite_id, secret, csr("alice", role=pki.ROLE_CLIENT), T0)
    assert mesh.read_invites()[invite_id].uses == 1
    authority.join(mesh, invite_id, secret, csr("gpu-2"), T0)


def test_the_id_of_a_current_member_cannot_join_again(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    later = T0 + dt.timedelta(days=6)  # its certificate is still good
    invite_id, secret = authority.invite(mesh, later, 3600, 1)
    with pytest.raises(authority.Refused, match="gpu-2 is a member already"):
        authority.join(mesh, invite_id, secret, csr("gpu-2"), later)
    assert mesh.read_invites()[invite_id].uses == 1  # a refused join keeps the invite


def test_the_id_of_the_cas_own_node_cannot_join(mesh: MeshDir) -> None:
    authority.issue_own(mesh, csr("ca-node"), T0)
    invite_id, secret = authority.invite(mesh, T0, 3600, 1)
    with pytest.raises(authority.Refused, match="member already"):
        authority.join(mesh, invite_id, secret, csr("ca-node"), T0)


def test_the_id_of_a_member_whose_certificate_expired_may_join_again(mesh: MeshDir) -> None:
    first = joined(mesh, "gpu-2")
    later = T0 + pki.NODE_LIFETIME + dt.timedelta(hours=1)
    again = joined(mesh, "gpu-2", now=later)
    assert again.serial != first.serial and again.not_after == later + pki.NODE_LIFETIME
    assert mesh.read_members()["gpu-2"]["joined"] == T0.timestamp()  # first joined is kept


def test_a_revoked_id_cannot_join_again(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    authority.change_policy(mesh, lambda p: policies.revoke_node(p, "gpu-2", 1))
    later = T0 + dt.timedelta(days=30)  # even once its certificate expired
    invite_id, secret = authority.invite(mesh, later, 3600, 1)
    with pytest.raises(authority.Refused, match="revoked"):
        authority.join(mesh, invite_id, secret, csr("gpu-2"), later)
    assert mesh.read_invites()[invite_id].uses == 1


def test_a_revoked_id_cannot_renew(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    authority.change_policy(mesh, lambda p: policies.revoke_node(p, "gpu-2", 1))
    with pytest.raises(authority.Refused, match="revoked"):
        authority.renew(mesh, "gpu-2", csr("gpu-2"), T0 + dt.timedelta(days=5))


def test_a_revoked_id_gets_no_certificate_on_the_cas_machine_either(mesh: MeshDir) -> None:
    authority.change_policy(mesh, lambda p: policies.revoke_node(p, "ca-node", 1))
    with pytest.raises(authority.Refused, match="revoked"):
        authority.issue_own(mesh, csr("ca-node"), T0)


# --- renew ----------------------------------------------------------------------------------------------------


def test_a_member_renews_its_own_certificate(mesh: MeshDir) -> None:
    first = joined(mesh, "gpu-2")
    later = T0 + dt.timedelta(days=5)
    renewed = pki.info(pki.load_cert(authority.renew(mesh, "gpu-2", csr("gpu-2"), later)))
    assert renewed.name == "gpu-2" and renewed.serial != first.serial
    assert renewed.not_after == later + pki.NODE_LIFETIME
    assert mesh.read_members()["gpu-2"]["not_after"] == renewed.not_after.timestamp()


def test_a_member_renews_only_its_own_name(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    joined(mesh, "gpu-3")
    with pytest.raises(authority.Refused, match="only its own certificate"):
        authority.renew(mesh, "gpu-2", csr("gpu-3"), T0)
    assert mesh.read_members()["gpu-3"]["not_after"] == (T0 + pki.NODE_LIFETIME).timestamp()


# --- names ----------------------------------------------------------------------------------------------------


def test_a_joiner_may_not_claim_a_members_id_as_a_name(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    got = joined(mesh, "gpu-3", dns=("gpu-2", "gpu-box", "localhost"))
    assert got.dns_names == ("gpu-3", "gpu-box", "localhost")


def test_a_renewing_member_may_not_claim_a_members_id_as_a_name(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    joined(mesh, "gpu-3")
    pem = authority.renew(mesh, "gpu-3", csr("gpu-3", ("gpu-2", "gpu-box")), T0)
    assert pki.info(pki.load_cert(pem)).dns_names == ("gpu-3", "gpu-box")


def test_a_joiner_may_not_claim_the_cas_own_node_as_a_name(mesh: MeshDir) -> None:
    authority.issue_own(mesh, csr("ca-node"), T0)
    assert joined(mesh, "gpu-2", dns=("ca-node",)).dns_names == ("gpu-2",)


def test_a_joiner_may_not_claim_a_members_id_in_other_case(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    got = joined(mesh, "gpu-3", dns=("GPU-2",))
    assert [n for n in got.dns_names if n.lower() == "gpu-2"] == []


# --- policy ---------------------------------------------------------------------------------------------------


def test_change_policy_signs_the_next_version(mesh: MeshDir) -> None:
    ca = mesh.load_ca()
    updated = authority.change_policy(mesh, lambda p: policies.revoke_node(p, "gpu-2", 7))
    assert updated.version == 1 and updated.revoked_nodes == {"gpu-2": 7}
    on_disk = policies.verify(mesh.policy.read_bytes(), ca.public_key(),  # type: ignore[arg-type]
                              pki.fingerprint(ca))
    assert on_disk == updated
    key = authority.new_api_key()
    assert authority.change_policy(mesh, lambda p: policies.add_key(p, "ci", key, 8)).version == 2
    assert mesh.read_policy(ca).key_named(key) is not None


def test_a_refused_policy_change_leaves_the_file_alone(mesh: MeshDir) -> None:
    before = mesh.policy.read_bytes()
    with pytest.raises(policies.PolicyError):
        authority.change_policy(mesh, lambda p: policies.revoke_key(p, "nope", 1))
    assert mesh.policy.read_bytes() == before


def test_new_api_keys_are_prefixed_and_differ() -> None:
    a, b = authority.new_api_key(), authority.new_api_key()
    assert a.startswith(policies.KEY_PREFIX) and a != b and len(a) > 40


def test_members_file_is_private_json(mesh: MeshDir) -> None:
    joined(mesh, "gpu-2")
    assert mode(mesh.members) == 0o600
    assert set(json.loads(mesh.members.read_bytes())) == {"gpu-2"}
