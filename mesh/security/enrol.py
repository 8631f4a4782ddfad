"""Becoming a member at start-up: create a mesh (the first node), join one with an invite
token (CA pinned by its fingerprint, key made here), or load the certificate from before."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from pathlib import Path

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.security import authority, invites, pki
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security.policy import PolicyError, verify
from lanai.mesh.security.store import MeshDir
from lanai.mesh.security.trust import Clock, Trust, machine_addresses, machine_names, utc_now

log = logging.getLogger(__name__)
CA_PATH = "/mesh/ca.pem"
"""Where a node's HTTP (metrics) port serves the CA certificate; joiners check it against the token."""


class JoinError(ValueError):
    """Joining failed; the message says why and what to do."""


async def open_trust(home: Path, node_id: str, config: SecurityConfig, *, listen: str = "",
                     clock: Clock = utc_now) -> Trust:
    """`listen`: the address the node binds, named in its certificate too when it is a specific IP."""
    mesh = MeshDir(home)
    addresses = machine_addresses(listen)
    if config.join:
        await _join_once(mesh, config.join, node_id, addresses)
    elif not mesh.exists():
        if not config.create_mesh:
            raise JoinError(f"no mesh in {mesh.path}: join one with --join TOKEN (from `lanai mesh invite`) or "
                            "create one with `lanai mesh init`")
        try:
            mesh_id = await asyncio.to_thread(authority.init, mesh, clock())
            log.warning("created a new mesh %s in %s: this machine holds its CA. Add machines with "
                        "`lanai mesh invite`", mesh_id[:16], mesh.path)
        except FileExistsError:
            pass  # another process sharing this directory made it first (compose's shared mesh volume)
    if not _has_certificate(mesh, node_id):
        if not mesh.holds_ca():
            joined = sorted(p.name[5:-4] for p in mesh.path.glob("node-*.crt"))
            raise JoinError(f"node id {node_id} has no certificate of this mesh (this machine joined as "
                            f"{', '.join(joined) or 'nobody'}): start with that --node-id, or join again with "
                            "--join TOKEN")
        key = pki.new_key()
        csr = pki.new_csr(key, node_id, dns_names=machine_names(), ip_addresses=addresses)
        mesh.write(mesh.node_key(node_id), pki.key_pem(key))
        mesh.write(mesh.node_cert(node_id), await asyncio.to_thread(authority.issue_own, mesh, csr, clock()))
    trust = Trust(mesh, node_id, config, clock=clock)
    trust.addresses = addresses
    if trust.expired():
        log.error("node %s: its mesh certificate expired at %s; no member will use it until it is renewed (the CA "
                  "node renews it when reachable) or the machine joins again", node_id, f"{trust.cert.not_after:%c}")
    return trust


def _has_certificate(mesh: MeshDir, node_id: str, *, current: bool = False) -> bool:
    """A certificate of this mesh for node_id (`current`: and not expired, so an expired one may join again)."""
    try:
        cert = pki.load_cert(mesh.node_cert(node_id).read_bytes())
    except (FileNotFoundError, pki.PkiError):
        return False
    if current and cert.not_valid_after_utc <= utc_now():
        return False
    return mesh.node_key(node_id).exists() and pki.issued_by(cert, mesh.load_ca())


async def _join_once(mesh: MeshDir, text: str, node_id: str, addresses: list[str]) -> None:
    token = invites.decode(text)
    if mesh.exists():
        mine = pki.fingerprint(mesh.load_ca())
        if mine != token.mesh:
            raise JoinError(f"this machine belongs to mesh {mine[:16]} already ({mesh.path}); the token is for mesh "
                            f"{token.mesh[:16]}. Use another --home to join a second mesh")
        if _has_certificate(mesh, node_id, current=True):
            log.info("node %s is a member of mesh %s already; --join is only needed once", node_id, mine[:16])
            return
    await join(mesh, token, node_id, addresses)


async def join(mesh: MeshDir, token: invites.Token, node_id: str, addresses: list[str],
               timeout: float = 20.0) -> None:
    """Fetch the CA and check it against the token's fingerprint (a spoofed mesh stops here),
    then send a CSR for a key made here, with the invite's secret, over TLS pinned to that CA."""
    where = f"{token.host}:{token.grpc_port}"
    try:
        ca_pem = await asyncio.to_thread(_fetch_ca, token.host, token.http_port, timeout)
        ca = pki.load_cert(ca_pem)
    except (OSError, pki.PkiError) as exc:
        raise JoinError(f"could not fetch the mesh CA from the inviting node ({token.host}:{token.http_port}"
                        f"{CA_PATH}): {exc}. Is it running, and reachable from here?") from None
    if pki.fingerprint(ca) != token.mesh:
        raise JoinError(f"the node at {where} presents another mesh's CA (fingerprint {pki.fingerprint(ca)[:16]}, the "
                        f"invite pins {token.mesh[:16]}): refusing to join it. Check the address, then "
                        f"{invites.ASK_AGAIN}")
    key = pki.new_key()
    csr = pki.new_csr(key, node_id, dns_names=machine_names(), ip_addresses=addresses)
    host = f"[{token.host}]" if ":" in token.host else token.host
    options = [("grpc.ssl_target_name_override", token.inviter), ("grpc.enable_http_proxy", 0)]
    async with grpc.aio.secure_channel(f"{host}:{token.grpc_port}", grpc.ssl_channel_credentials(ca_pem),
                                       options=options) as channel:
        try:
            reply = await mesh_pb2_grpc.MembershipStub(channel).Join(
                mesh_pb2.JoinRequest(invite_id=token.invite_id, secret=token.secret, csr_pem=csr), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
                raise JoinError(f"the inviting node refused: {exc.details()}") from None
            raise JoinError(f"could not join through {where}: {exc.code().name}: {exc.details()}") from None
    cert = pki.load_cert(reply.certificate_pem)
    if not pki.issued_by(cert, ca) or pki.info(cert).name != node_id:
        raise JoinError(f"the inviting node sent a certificate that is not this node's from mesh {token.mesh[:16]}")
    try:
        verify(reply.policy.signed, ca.public_key(), token.mesh)  # type: ignore[arg-type]
    except PolicyError as exc:
        raise JoinError(f"the inviting node sent a bad mesh policy: {exc}") from None
    mesh.write(mesh.ca_cert, ca_pem)
    mesh.write(mesh.node_key(node_id), pki.key_pem(key))
    mesh.write(mesh.node_cert(node_id), reply.certificate_pem)
    mesh.write(mesh.policy, reply.policy.signed)
    mesh.write(mesh.issuer, json.dumps({"node_id": reply.issuer_node_id, "host": token.host,
                                        "mesh_port": reply.issuer_mesh_port}).encode())
    log.warning("node %s joined mesh %s through %s (%s)", node_id, token.mesh[:16], reply.issuer_node_id, where)


def _fetch_ca(host: str, port: int, timeout: float) -> bytes:
    """The CA certificate over plain HTTP: it is public, and the caller checks its fingerprint."""
    host = f"[{host}]" if ":" in host else host
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy: LAN only
    with direct.open(f"http://{host}:{port}{CA_PATH}", timeout=timeout) as reply:
        return bytes(reply.read(64 * 1024))


async def renew_through_issuer(mesh: MeshDir, trust: Trust, csr: bytes) -> bytes:
    """A member without the CA renews at the CA's node, over the mesh port, with its current certificate."""
    issuer = mesh.read_json(mesh.issuer)
    if not issuer:
        raise JoinError("this node does not know where the mesh CA is (no issuer.json): join again")
    host = f"[{issuer['host']}]" if ":" in issuer["host"] else issuer["host"]
    async with grpc.aio.secure_channel(f"{host}:{issuer['mesh_port']}", trust.channel_credentials(),
                                       options=[("grpc.ssl_target_name_override", issuer["node_id"]),
                                                ("grpc.enable_http_proxy", 0)]) as channel:
        reply = await mesh_pb2_grpc.MembershipStub(channel).Renew(mesh_pb2.RenewRequest(csr_pem=csr), timeout=20)
    return bytes(reply.certificate_pem)
