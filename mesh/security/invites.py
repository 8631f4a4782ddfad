"""Invites: a one-line token that pins the mesh CA (its SHA-256, like kubeadm's
--discovery-token-ca-cert-hash), says where the inviting node is, and carries a secret the
joiner proves. The inviter keeps only the secret's hash, an expiry and the uses left."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_PREFIX = "lanai-join-1."
ASK_AGAIN = "ask the mesh's owner for a new invite (`lanai mesh invite` on the machine that holds the mesh CA)"


class InviteError(ValueError):
    """A token that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Token:
    """What a join token carries."""

    mesh: str
    """SHA-256 fingerprint of the mesh CA certificate, hex."""
    host: str
    grpc_port: int
    """The inviting node's client port (the Join call goes there, over TLS pinned to the CA)."""
    http_port: int
    """Its /metrics port, which also serves the CA certificate (checked against `mesh`)."""
    inviter: str
    """The inviting node's id: the TLS name its certificate must carry."""
    invite_id: str
    secret: str

    def encode(self) -> str:
        data = {"m": self.mesh, "h": self.host, "p": self.grpc_port, "w": self.http_port, "n": self.inviter,
                "i": self.invite_id, "s": self.secret}
        packed = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return TOKEN_PREFIX + packed


def decode(token: str) -> Token:
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise InviteError(f"this is not a lanai join token (they start with {TOKEN_PREFIX!r}); {ASK_AGAIN}")
    packed = token[len(TOKEN_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        result = Token(str(data["m"]), str(data["h"]), int(data["p"]), int(data["w"]), str(data["n"]),
                       str(data["i"]), str(data["s"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InviteError(f"the join token is damaged (copied only in part?); {ASK_AGAIN}") from None
    if len(result.mesh) != 64:
        raise InviteError(f"the join token's CA fingerprint is malformed; {ASK_AGAIN}")
    return result


@dataclass(frozen=True)
class Invite:
    """The inviter's record of one invite."""

    secret_sha256: str
    expires: int
    """Unix seconds."""
    uses: int
    """Joins left."""


def new_invite(now: int, ttl_s: int, uses: int) -> tuple[str, str, Invite]:
    """(invite id, secret, record) for a new invite."""
    if ttl_s <= 0 or uses <= 0:
        raise InviteError("an invite needs a positive --ttl and --uses")
    invite_id, secret = secrets.token_hex(4), secrets.token_urlsafe(24)
    return invite_id, secret, Invite(hashlib.sha256(secret.encode()).hexdigest(), now + ttl_s, uses)


def redeem(invites: Mapping[str, Invite], invite_id: str, secret: str, now: int) -> dict[str, Invite]:
    """The invites after one use of (invite_id, secret); InviteError when it may not be used."""
    invite = invites.get(invite_id)
    if invite is None:
        raise InviteError(f"this mesh has no such invite (wrong token, or it was used up long ago); {ASK_AGAIN}")
    if not hmac.compare_digest(invite.secret_sha256, hashlib.sha256(secret.encode()).hexdigest()):
        raise InviteError(f"the invite's secret is wrong; {ASK_AGAIN}")
    if now >= invite.expires:
        raise InviteError(f"the invite expired {now - invite.expires} s ago; {ASK_AGAIN}")
    if invite.uses <= 0:
        raise InviteError(f"the invite was already used; {ASK_AGAIN}")
    rest = dict(invites)
    rest[invite_id] = Invite(invite.secret_sha256, invite.expires, invite.uses - 1)
    return rest


def prune(invites: Mapping[str, Invite], now: int) -> dict[str, Invite]:
    """Drop invites that expired over a day ago (so the file does not grow)."""
    return {k: v for k, v in invites.items() if now < v.expires + 86400}
