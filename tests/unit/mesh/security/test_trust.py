"""lanai.mesh.security.trust: a process's trust at run time, on a mesh made in tmp_path: certificate
renewal on an injected clock, API key checks, and taking newer signed policies (offered by a peer or
written by the CLI) while refusing forged ones."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from lanai.mesh.security import authority, enrol, pki
from lanai.mesh.security import policy as policies
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security.policy import Policy, PolicyError
from lanai.mesh.security.store import MeshDir
from lanai.mesh.security.trust import HOW_TO_GET_A_KEY, Trust
from lanai.services.core.errors import Unauthenticated

T0 = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
NODE = "ca-node"
KEY = "lanai_" + "g" * 43
REVOKED_KEY = "lanai_" + "r" * 43


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def home(tmp_path: Path) -> Path:
    """A mesh whose CA is on this machine, and a certificate for NODE issued at T0."""
    await enrol.open_trust(tmp_path, NODE, SecurityConfig(), clock=lambda: T0)
    return tmp_path


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def trust(home: Path, clock: Clock) -> Trust:
    return Trust(MeshDir(home), NODE, SecurityConfig(), clock=clock)


def ca_key(trust: Trust) -> ec.EllipticCurvePrivateKey:
    return trust.dir.load_ca_key()


def signed(trust: Trust, policy: Policy) -> bytes:
    return policies.sign(policy, ca_key(trust))


# --- the certificate ------------------------------------------------------------------------------------------


def test_the_node_starts_with_its_certificate_from_the_mesh_ca(trust: Trust) -> None:
    assert trust.cert.name == NODE and trust.cert.dns_names[0] == NODE
    assert trust.cert.not_after == T0 + pki.NODE_LIFETIME
    assert trust.mesh_id == pki.fingerprint(trust.ca) and trust.short_id == trust.mesh_id[:16]
    assert trust.holds_ca and trust.generation == 0


def test_renewal_is_not_due_now_and_due_five_days_on(trust: Trust, clock: Clock) -> None:
    assert not trust.renewal_due()
    clock.now = T0 + dt.timedelta(days=1)
    assert not trust.renewal_due()
    clock.now = T0 + dt.timedelta(days=5)
    assert trust.renewal_due()


def test_expired_follows_the_clock(trust: Trust, clock: Clock) -> None:
    assert not trust.expired()
    clock.now = trust.cert.not_after - dt.timedelta(seconds=1)
    assert not trust.expired()
    clock.now = trust.cert.not_after
    assert trust.expired()
    clock.now = T0 + dt.timedelta(days=30)
    assert trust.expired()


async def test_renewal_at_the_ca_replaces_the_certificate(trust: Trust, clock: Clock) -> None:
    mesh = trust.dir
    key_before, cert_before = mesh.node_key(NODE).read_bytes(), mesh.node_cert(NODE).read_bytes()
    old = trust.cert
    calls: list[int] = []
    trust.on_certificate.append(lambda: calls.append(trust.generation))
    clock.now = T0 + dt.timedelta(days=5)

    await trust.renew()

    assert trust.cert.not_after == clock.now + pki.NODE_LIFETIME > old.not_after
    assert trust.cert.serial != old.serial and trust.cert.name == NODE
    assert trust.cert.dns_names == old.dns_names  # the machine's names are asked for again
    assert trust.generation == 1
    assert calls == [1]
    assert mesh.node_key(NODE).read_bytes() != key_before
    assert mesh.node_cert(NODE).read_bytes() != cert_before
    on_disk = pki.load_cert(mesh.node_cert(NODE).read_bytes())
    assert pki.info(on_disk) == trust.cert and pki.issued_by(on_disk, trust.ca)
    new_key = pki.load_key(mesh.node_key(NODE).read_bytes())
    assert new_key.public_key().public_numbers() == on_disk.public_key().public_numbers()  # type: ignore[union-attr]
    assert not trust.renewal_due()


async def test_a_renewed_node_is_renewed_again_later(trust: Trust, clock: Clock) -> None:
    clock.now = T0 + dt.timedelta(days=5)
    await trust.renew()
    clock.now = T0 + dt.timedelta(days=10)
    assert trust.renewal_due()
    await trust.renew()
    assert trust.generation == 2 and trust.cert.not_after == clock.now + pki.NODE_LIFETIME


async def test_a_member_without_the_ca_and_no_issuer_cannot_renew(trust: Trust) -> None:
    trust.dir.ca_key.unlink()
    cert_before = trust.dir.node_cert(NODE).read_bytes()
    with pytest.raises(pki.PkiError, match="no way to reach the mesh CA"):
        await trust.renew()
    assert trust.generation == 0 and trust.dir.node_cert(NODE).read_bytes() == cert_before


async def test_a_member_renews_through_its_issuer(trust: Trust, clock: Clock) -> None:
    key = trust.dir.load_ca_key()
    trust.dir.ca_key.unlink()  # a joined member: the CA is on another machine
    asked: list[bytes] = []

    async def issuer(csr: bytes) -> bytes:
        asked.append(csr)
        return pki.cert_pem(pki.issue(key, trust.ca, pki.read_csr(csr), clock()))

    trust.renew_from = issuer
    clock.now = T0 + dt.timedelta(days=5)
    await trust.renew()
    assert len(asked) == 1 and pki.read_csr(asked[0]).name == NODE
    assert trust.generation == 1 and trust.cert.not_after == clock.now + pki.NODE_LIFETIME


async def test_a_certificate_from_another_ca_is_not_taken(trust: Trust, clock: Clock) -> None:
    trust.dir.ca_key.unlink()
    other_key, other_ca = pki.new_ca(T0)

    async def impostor(csr: bytes) -> bytes:
        return pki.cert_pem(pki.issue(other_key, other_ca, pki.read_csr(csr), clock()))

    trust.renew_from = impostor
    before = trust.dir.node_cert(NODE).read_bytes(), trust.cert
    with pytest.raises(pki.PkiError, match="not this node's"):
        await trust.renew()
    assert (trust.dir.node_cert(NODE).read_bytes(), trust.cert) == before and trust.generation == 0


async def test_a_certificate_for_another_name_is_not_taken(trust: Trust, clock: Clock) -> None:
    key = trust.dir.load_ca_key()
    trust.dir.ca_key.unlink()

    async def confused(csr: bytes) -> bytes:
        other = pki.read_csr(pki.new_csr(pki.new_key(), "someone-else"))
        return pki.cert_pem(pki.issue(key, trust.ca, other, clock()))

    trust.renew_from = confused
    with pytest.raises(pki.PkiError, match="not this node's"):
        await trust.renew()
    assert trust.cert.name == NODE and trust.generation == 0


# --- API keys -------------------------------------------------------------------------------------------------


@pytest.fixture
def keyed(home: Path, clock: Clock) -> Trust:
    mesh = MeshDir(home)
    authority.change_policy(mesh, lambda p: policies.add_key(p, "ci", KEY, 1))
    authority.change_policy(mesh, lambda p: policies.add_key(p, "old", REVOKED_KEY, 2))
    authority.change_policy(mesh, lambda p: policies.revoke_key(p, "old", 3))
    return Trust(mesh, NODE, SecurityConfig(), clock=clock)


@pytest.mark.parametrize("presented", [None, ""])
def test_a_call_without_a_key_is_unauthenticated(keyed: Trust, presented: str | None) -> None:
    with pytest.raises(Unauthenticated, match="carried none") as info:
        keyed.check_key(presented)
    assert HOW_TO_GET_A_KEY in str(info.value)


def test_an_unknown_key_is_unauthenticated(keyed: Trust) -> None:
    with pytest.raises(Unauthenticated, match="not one of this mesh's keys") as info:
        keyed.check_key("lanai_" + "u" * 43)
    assert HOW_TO_GET_A_KEY in str(info.value)


def test_a_revoked_key_is_unauthenticated(keyed: Trust) -> None:
    with pytest.raises(Unauthenticated, match="'old' was revoked") as info:
        keyed.check_key(REVOKED_KEY)
    assert HOW_TO_GET_A_KEY in str(info.value)


def test_a_good_key_is_returned(keyed: Trust) -> None:
    key = keyed.check_key(KEY)
    assert key.name == "ci" and key.revoked == 0 and key.sha256 == policies.hash_key(KEY)


def test_a_key_of_a_policy_not_yet_read_is_unknown(trust: Trust) -> None:
    authority.change_policy(trust.dir, lambda p: policies.add_key(p, "ci", KEY, 1))
    with pytest.raises(Unauthenticated):
        trust.check_key(KEY)


# --- offered policies -----------------------------------------------------------------------------------------


def test_a_newer_signed_policy_is_taken_and_stored(trust: Trust) -> None:
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    newer = policies.revoke_node(trust.policy, "gpu-9", 5)
    document = signed(trust, newer)

    assert trust.offer(document) is True

    assert trust.policy == newer and trust.revoked("gpu-9") and not trust.revoked(NODE)
    assert trust.signed_policy == document
    assert trust.dir.policy.read_bytes() == document
    assert seen == [newer]


def test_an_older_or_equal_policy_is_ignored(trust: Trust) -> None:
    v1 = policies.revoke_node(trust.policy, "gpu-8", 5)
    v2 = policies.revoke_node(v1, "gpu-9", 6)
    assert trust.offer(signed(trust, v2))
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    on_disk = trust.dir.policy.read_bytes()

    assert trust.offer(signed(trust, v1)) is False
    assert trust.offer(signed(trust, v2)) is False

    assert trust.policy == v2 and seen == [] and trust.dir.policy.read_bytes() == on_disk


def test_a_forged_policy_is_refused(trust: Trust) -> None:
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    before, on_disk = trust.policy, trust.dir.policy.read_bytes()
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = policies.sign(policies.revoke_node(trust.policy, NODE, 5), forger)

    with pytest.raises(PolicyError, match="not signed"):
        trust.offer(forged)

    assert trust.policy == before and seen == [] and trust.dir.policy.read_bytes() == on_disk


def test_a_policy_of_another_mesh_is_refused(trust: Trust) -> None:
    other = policies.sign(Policy("ee" * 32, version=9), ca_key(trust))  # even signed with our CA's key
    with pytest.raises(PolicyError, match="belongs to mesh"):
        trust.offer(other)
    assert trust.policy.version == 0


def test_an_offered_policy_is_not_read_again_from_the_file(trust: Trust) -> None:
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    trust.offer(signed(trust, policies.revoke_node(trust.policy, "gpu-9", 5)))
    trust.reload_policy_file()
    assert len(seen) == 1


def test_an_offer_older_than_the_file_does_not_hide_the_file(trust: Trust) -> None:
    v1 = authority.change_policy(trust.dir, lambda p: policies.revoke_node(p, "gpu-8", 5))
    offered = trust.dir.policy.read_bytes()
    authority.change_policy(trust.dir, lambda p: policies.revoke_node(p, "gpu-9", 6))  # the CLI, just now
    assert trust.offer(offered) and v1.version == 1  # a router gossips v1 before the node saw the file

    trust.reload_policy_file()

    assert trust.policy.version == 2 and trust.revoked("gpu-9")


# --- the policy file ------------------------------------------------------------------------------------------


def touch_later(path: Path) -> None:
    """Coarse file clocks may give two quick writes one mtime; a CLI change comes seconds later."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_change_written_by_the_cli_is_picked_up(trust: Trust) -> None:
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    updated = authority.change_policy(trust.dir, lambda p: policies.revoke_node(p, "gpu-9", 5))
    touch_later(trust.dir.policy)

    trust.reload_policy_file()

    assert trust.policy == updated and trust.revoked("gpu-9")
    assert trust.signed_policy == trust.dir.policy.read_bytes()
    assert seen == [updated]


def test_an_unchanged_file_is_not_adopted_again(trust: Trust) -> None:
    authority.change_policy(trust.dir, lambda p: policies.revoke_node(p, "gpu-9", 5))
    touch_later(trust.dir.policy)
    trust.reload_policy_file()
    seen: list[Policy] = []
    trust.on_policy.append(seen.append)
    trust.reload_policy_file()
    assert seen == []


def test_a_forged_file_is_ignored(trust: Trust) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    trust.dir.write(trust.dir.policy, policies.sign(policies.revoke_node(trust.policy, NODE, 5), forger))
    touch_later(trust.dir.policy)
    trust.reload_policy_file()
    assert trust.policy.version == 0 and not trust.revoked(NODE)


def test_an_older_file_is_ignored(trust: Trust) -> None:
    v2 = policies.revoke_node(policies.revoke_node(trust.policy, "a", 1), "b", 2)
    assert trust.offer(signed(trust, v2))
    trust.dir.write(trust.dir.policy, signed(trust, policies.revoke_node(Policy(trust.mesh_id), "c", 3)))
    touch_later(trust.dir.policy)
    trust.reload_policy_file()
    assert trust.policy == v2


def test_a_missing_file_is_survived(trust: Trust) -> None:
    trust.dir.policy.unlink()
    trust.reload_policy_file()
    assert trust.policy.version == 0
