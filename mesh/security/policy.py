"""The mesh policy: revoked members and client API keys, one document signed by the mesh CA.

Any member may carry it to any other (routers gossip it over WatchLoad), because nobody but
the CA's holder can make a valid one, and a member only takes a higher version than its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

KEY_PREFIX = "lanai_"


class PolicyError(ValueError):
    """A policy document that is malformed, or not signed by this mesh's CA."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    """Hex SHA-256 of the key: keys are 256 random bits, so a plain hash cannot be reversed."""
    created: int
    """Unix seconds."""
    revoked: int = 0
    """Unix seconds of the revocation; 0 while the key works."""


@dataclass(frozen=True)
class Policy:
    mesh: str
    """The mesh id (CA fingerprint) the policy belongs to."""
    version: int = 0
    revoked_nodes: Mapping[str, int] = field(default_factory=dict)
    """node id -> unix seconds of the revocation."""
    keys: Mapping[str, ApiKey] = field(default_factory=dict)

    def is_revoked(self, node_id: str) -> bool:
        """Names compare as TLS compares them: without regard to case."""
        wanted = node_id.lower()
        return any(revoked.lower() == wanted for revoked in self.revoked_nodes)

    def key_named(self, presented: str) -> ApiKey | None:
        """The key (revoked or not) whose hash matches `presented`, compared in constant time."""
        digest = hash_key(presented)
        found = None
        for key in self.keys.values():
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found

    def body(self) -> bytes:
        return json.dumps({"mesh": self.mesh, "version": self.version, "revoked_nodes": dict(self.revoked_nodes),
                           "keys": {k.name: {"sha256": k.sha256, "created": k.created, "revoked": k.revoked}
                                    for k in self.keys.values()}}, sort_keys=True, separators=(",", ":")).encode()


Change = Callable[[Policy], Policy]
"""One edit of the policy; it returns the next version."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def revoke_node(policy: Policy, node_id: str, now: int) -> Policy:
    return replace(policy, version=policy.version + 1, revoked_nodes={**policy.revoked_nodes, node_id: now})


def add_key(policy: Policy, name: str, key: str, now: int) -> Policy:
    if name in policy.keys:
        raise PolicyError(f"a key named {name!r} exists already; pick another name or revoke it first")
    return replace(policy, version=policy.version + 1,
                   keys={**policy.keys, name: ApiKey(name, hash_key(key), now)})


def revoke_key(policy: Policy, name: str, now: int) -> Policy:
    key = policy.keys.get(name)
    if key is None:
        raise PolicyError(f"no key named {name!r}; `lanai mesh key list` shows them")
    return replace(policy, version=policy.version + 1, keys={**policy.keys, name: replace(key, revoked=now)})


def sign(policy: Policy, ca_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The signed document: {"body": <policy JSON>, "signature": <base64 ECDSA-SHA256 of body>}."""
    body = policy.body()
    signature = ca_key.sign(body, ec.ECDSA(hashes.SHA256()))
    return json.dumps({"body": body.decode(), "signature": base64.b64encode(signature).decode()}).encode()


def verify(signed: bytes, ca_public_key: ec.EllipticCurvePublicKey, mesh: str) -> Policy:
    """The policy in `signed`, if the CA signed it for this mesh; else PolicyError."""
    try:
        outer = json.loads(signed)
        body = outer["body"].encode()
        ca_public_key.verify(base64.b64decode(outer["signature"]), body, ec.ECDSA(hashes.SHA256()))
        data: dict[str, Any] = json.loads(body)
        policy = Policy(mesh=str(data["mesh"]), version=int(data["version"]),
                        revoked_nodes={str(k): int(v) for k, v in data["revoked_nodes"].items()},
                        keys={str(name): ApiKey(str(name), str(k["sha256"]), int(k["created"]), int(k["revoked"]))
                              for name, k in data["keys"].items()})
    except InvalidSignature:
        raise PolicyError("the mesh policy is not signed by this mesh's CA") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PolicyError(f"the mesh policy is malformed: {exc}") from None
    if policy.mesh != mesh:
        raise PolicyError(f"the mesh policy belongs to mesh {policy.mesh[:16]}, not {mesh[:16]}")
    return policy
