"""The mesh directory, $LANAI_HOME/mesh: the CA, this machine's node keys and certificates, the
signed policy and (on the CA's machine) invites and members. Written atomically, 0600, under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lanai.mesh.security import pki
from lanai.mesh.security.invites import Invite
from lanai.mesh.security.policy import Policy, PolicyError, verify


def write_private(path: Path, data: bytes) -> None:
    """Atomically, readable by this user only, in a folder only this user may enter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class MeshDir:
    def __init__(self, home: Path) -> None:
        self.path = home / "mesh"
        self.ca_cert = self.path / "ca.crt"
        self.ca_key = self.path / "ca.key"
        self.policy = self.path / "policy.json"
        self.invites = self.path / "invites.json"
        self.members = self.path / "members.json"
        self.issuer = self.path / "issuer.json"
        self.endpoint = self.path / "endpoint.json"

    def node_key(self, node_id: str) -> Path:
        return self.path / f"node-{node_id}.key"

    def node_cert(self, node_id: str) -> Path:
        return self.path / f"node-{node_id}.crt"

    def exists(self) -> bool:
        return self.ca_cert.exists()

    def holds_ca(self) -> bool:
        return self.ca_key.exists()

    def write(self, path: Path, data: bytes) -> None:
        write_private(path, data)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialises read-modify-write between the node and the CLI on one machine."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- the CA ----------------------------------------------------------------------------

    def load_ca(self) -> x509.Certificate:
        try:
            return pki.load_cert(self.ca_cert.read_bytes())
        except FileNotFoundError:
            raise pki.PkiError(f"no mesh here ({self.path}): run `lanai mesh init`, or join one with "
                               "`lanai node --join TOKEN`") from None

    def load_ca_key(self) -> ec.EllipticCurvePrivateKey:
        try:
            return pki.load_key(self.ca_key.read_bytes())
        except FileNotFoundError:
            raise pki.PkiError(f"this machine does not hold the mesh CA ({self.ca_key} is missing): run this on "
                               "the machine where `lanai mesh init` ran") from None

    # --- documents -------------------------------------------------------------------------

    def read_policy(self, ca: x509.Certificate) -> Policy:
        mesh = pki.fingerprint(ca)
        try:
            signed = self.policy.read_bytes()
        except FileNotFoundError:
            return Policy(mesh)
        key = ca.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        try:
            return verify(signed, key, mesh)
        except PolicyError as exc:
            raise PolicyError(f"{self.policy}: {exc}") from None

    def read_invites(self) -> dict[str, Invite]:
        return {k: Invite(**v) for k, v in self._json(self.invites).items()}

    def write_invites(self, invites: Mapping[str, Invite]) -> None:
        self.write(self.invites, json.dumps({k: asdict(v) for k, v in invites.items()}, indent=1).encode())

    def read_members(self) -> dict[str, dict[str, Any]]:
        """node id -> {"serial", "not_after", "joined"} for every certificate the CA signed."""
        return dict(self._json(self.members))

    def write_members(self, members: Mapping[str, Mapping[str, Any]]) -> None:
        self.write(self.members, json.dumps(members, indent=1, sort_keys=True).encode())

    def read_json(self, path: Path) -> dict[str, Any]:
        return self._json(path)

    def _json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a JSON object")
        return data
