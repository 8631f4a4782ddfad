"""What only the machine holding the mesh CA does: create the mesh, sign certificates (for
its own node, for joiners with an invite, for members renewing), and sign the policy
(revocations, API keys). Every step reads and writes the mesh directory under its lock."""

from __future__ import annotations

import datetime as dt
import secrets
import time

from lanai.mesh.security import pki
from lanai.mesh.security import policy as policies
from lanai.mesh.security.invites import InviteError, new_invite, prune, redeem
from lanai.mesh.security.policy import Policy
from lanai.mesh.security.store import MeshDir


class Refused(ValueError):
    """The CA will not sign this (revoked node, a name taken by another member...)."""


def init(mesh: MeshDir, now: dt.datetime) -> str:
    """Create a mesh: a CA key (0600) and certificate, and an empty signed policy. Returns the mesh id."""
    with mesh.locked():
        if mesh.exists():
            raise FileExistsError(f"a mesh exists already in {mesh.path} (id {pki.fingerprint(mesh.load_ca())[:16]})")
        key, ca = pki.new_ca(now)
        mesh.write(mesh.ca_key, pki.key_pem(key))
        mesh.write(mesh.ca_cert, pki.cert_pem(ca))
        mesh.write(mesh.policy, policies.sign(Policy(pki.fingerprint(ca)), key))
        return pki.fingerprint(ca)


def _sign(mesh: MeshDir, request: pki.Request, now: dt.datetime, *, renewing: bool,
          lifetime: dt.timedelta = pki.NODE_LIFETIME) -> bytes:
    """Sign under the lock (the caller holds it); record the member."""
    ca, key = mesh.load_ca(), mesh.load_ca_key()
    current = mesh.read_policy(ca)
    if current.is_revoked(request.name):
        raise Refused(f"node id {request.name} was revoked from this mesh; a machine can rejoin only under a new "
                      "id (start it with a fresh --home, or --node-id NEW)")
    members = mesh.read_members()
    # TLS compares names without regard to case, and so does every check here.
    same = [name for name in members if name.lower() == request.name.lower()]
    known = members.get(same[0]) if same else None
    if not renewing and known and float(known["not_after"]) > now.timestamp():
        until = dt.datetime.fromtimestamp(float(known["not_after"]), dt.timezone.utc)
        raise Refused(f"node id {request.name} is a member already (certificate valid until {until:%Y-%m-%d}); a "
                      "reinstalled machine must be revoked first (`lanai mesh revoke ID`) or join under --node-id NEW")
    # A member may not claim another member's id as one of its names (routers pin ids as TLS names).
    others = {name.lower() for name in members if name.lower() != request.name.lower()}
    request = pki.Request(request.name, request.role,
                          tuple(n for n in request.dns_names if n.lower() not in others),
                          request.ip_addresses, request.public_key)
    try:
        cert = pki.issue(key, ca, request, now, lifetime)
    except ValueError as exc:  # a name x509 will not carry
        raise pki.PkiError(f"cannot sign that request: {exc}") from None
    members[request.name] = {"serial": format(cert.serial_number, "x"), "role": request.role,
                             "not_after": cert.not_valid_after_utc.timestamp(),
                             "joined": known["joined"] if known else now.timestamp()}
    mesh.write_members(members)
    return pki.cert_pem(cert)


def issue_own(mesh: MeshDir, csr_pem: bytes, now: dt.datetime, lifetime: dt.timedelta = pki.NODE_LIFETIME) -> bytes:
    """A certificate for a node on the CA's own machine (its key is already here)."""
    request = pki.read_csr(csr_pem)
    with mesh.locked():
        return _sign(mesh, request, now, renewing=True, lifetime=lifetime)


def client_certificate(mesh: MeshDir, name: str, now: dt.datetime,
                       lifetime: dt.timedelta = dt.timedelta(days=365)) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for a client that authenticates with a certificate instead of an
    API key, on the mesh port. Made here and handed over like a key; `revoke NAME` stops it."""
    key = pki.new_key()
    request = pki.read_csr(pki.new_csr(key, name, role=pki.ROLE_CLIENT))
    with mesh.locked():
        return pki.key_pem(key), _sign(mesh, request, now, renewing=False, lifetime=lifetime)


def invite(mesh: MeshDir, now: dt.datetime, ttl_s: int, uses: int) -> tuple[str, str]:
    """A new invite: (invite id, secret). Only the secret's hash is kept."""
    mesh.load_ca_key()  # only the CA's machine can honour an invite
    invite_id, secret, record = new_invite(int(now.timestamp()), ttl_s, uses)
    with mesh.locked():
        invites = prune(mesh.read_invites(), int(now.timestamp()))
        invites[invite_id] = record
        mesh.write_invites(invites)
    return invite_id, secret


def join(mesh: MeshDir, invite_id: str, secret: str, csr_pem: bytes, now: dt.datetime) -> bytes:
    """Redeem one use of an invite and sign the joiner's request. InviteError, Refused or PkiError."""
    request = pki.read_csr(csr_pem)  # a bad request does not use up the invite
    if request.role != pki.ROLE_NODE:
        raise pki.PkiError("an invite admits nodes; client certificates come from `lanai mesh cert NAME`")
    with mesh.locked():
        remaining = redeem(mesh.read_invites(), invite_id, secret, int(now.timestamp()))
        cert = _sign(mesh, request, now, renewing=False)
        mesh.write_invites(remaining)
        return cert


def renew(mesh: MeshDir, member: str, csr_pem: bytes, now: dt.datetime) -> bytes:
    """A fresh certificate for a member that proved itself with its current one."""
    request = pki.read_csr(csr_pem)
    if request.name != member:
        raise Refused(f"a member renews only its own certificate: you are {member}, the request is for "
                      f"{request.name}")
    with mesh.locked():
        return _sign(mesh, request, now, renewing=True)


def change_policy(mesh: MeshDir, change: "policies.Change") -> Policy:
    """Apply one change to the policy, sign it with the CA key and store it (version + 1)."""
    with mesh.locked():
        ca, key = mesh.load_ca(), mesh.load_ca_key()
        updated = change(mesh.read_policy(ca))
        mesh.write(mesh.policy, policies.sign(updated, key))
        return updated


def new_api_key() -> str:
    return policies.KEY_PREFIX + secrets.token_urlsafe(32)


def unix_now() -> int:
    return int(time.time())
