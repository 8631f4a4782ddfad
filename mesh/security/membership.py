"""lanai.mesh.v1.Membership: joining with an invite, renewing, and carrying the signed policy."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from lanai.api.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from lanai.mesh.security import authority, pki
from lanai.mesh.security.invites import InviteError
from lanai.mesh.security.policy import PolicyError
from lanai.mesh.security.trust import Trust
from lanai.services.core.errors import InvalidInput, PermissionDenied

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
MAX_CSR_BYTES = 16 * 1024


class MembershipServicer(mesh_pb2_grpc.MembershipServicer):
    def __init__(self, trust: Trust, mesh_port: int) -> None:
        self._trust = trust
        self.mesh_port = mesh_port
        """Told to joiners: where they renew (set once the port is bound)."""

    async def Join(self, request: mesh_pb2.JoinRequest, context: Context) -> mesh_pb2.JoinResponse:
        trust = self._trust
        if not trust.holds_ca:
            raise PermissionDenied(f"node {trust.node_id} does not hold the mesh CA, so it cannot admit nodes; use an "
                                   "invite made with `lanai mesh invite` on the machine that holds it")
        _check_csr(request.csr_pem)
        try:
            cert = await asyncio.to_thread(authority.join, trust.dir, request.invite_id, request.secret,
                                           request.csr_pem, trust.now())
        except (InviteError, authority.Refused) as exc:
            log.warning("node %s: refused a join from %s: %s", trust.node_id, context.peer(), exc)
            raise PermissionDenied(str(exc)) from None
        except pki.PkiError as exc:
            raise InvalidInput(str(exc)) from None
        joined = pki.info(pki.load_cert(cert)).name
        log.warning("node %s: node %s joined the mesh (from %s)", trust.node_id, joined, context.peer())
        return mesh_pb2.JoinResponse(certificate_pem=cert, ca_pem=trust.ca_pem, policy=self._signed(),
                                     issuer_node_id=trust.node_id, issuer_mesh_port=self.mesh_port)

    async def Renew(self, request: mesh_pb2.RenewRequest, context: Context) -> mesh_pb2.RenewResponse:
        trust = self._trust
        member = self._member(context)
        if not trust.holds_ca:
            raise PermissionDenied(f"node {trust.node_id} does not hold the mesh CA; renew at the node that does")
        _check_csr(request.csr_pem)
        try:
            cert = await asyncio.to_thread(authority.renew, trust.dir, member, request.csr_pem, trust.now())
        except authority.Refused as exc:
            raise PermissionDenied(str(exc)) from None
        except pki.PkiError as exc:
            raise InvalidInput(str(exc)) from None
        log.info("node %s: renewed the certificate of %s", trust.node_id, member)
        return mesh_pb2.RenewResponse(certificate_pem=cert)

    async def GetPolicy(self, request: mesh_pb2.GetPolicyRequest, context: Context) -> mesh_pb2.SignedPolicy:
        self._member(context)
        return self._signed()

    async def OfferPolicy(self, request: mesh_pb2.SignedPolicy, context: Context) -> mesh_pb2.OfferPolicyResponse:
        try:
            accepted = self._trust.offer(request.signed)
        except PolicyError as exc:
            raise InvalidInput(f"{exc}; nothing changed") from None
        return mesh_pb2.OfferPolicyResponse(accepted=accepted, version=self._trust.policy.version)

    def _signed(self) -> mesh_pb2.SignedPolicy:
        return mesh_pb2.SignedPolicy(version=self._trust.policy.version, signed=self._trust.signed_policy)

    def _member(self, context: Context) -> str:
        peer = self._trust.peer(context)
        if peer is None or peer.role != pki.ROLE_NODE:
            raise PermissionDenied("only mesh members may do this, over the mesh port with their node certificate")
        return peer.name


def _check_csr(csr: bytes) -> None:
    if not csr:
        raise InvalidInput("csr_pem is empty: send a PEM certificate request made for this node's key")
    if len(csr) > MAX_CSR_BYTES:
        raise InvalidInput(f"csr_pem is {len(csr)} bytes; a certificate request is under {MAX_CSR_BYTES}")
