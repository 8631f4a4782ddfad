"""lanai.mesh.security.enrol: an expired certificate does not count as membership for --join."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lanai.mesh.security import authority, pki
from lanai.mesh.security.enrol import _has_certificate
from lanai.mesh.security.store import MeshDir


def test_an_expired_certificate_lets_the_node_join_again(tmp_path: Path) -> None:
    mesh = MeshDir(tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    authority.init(mesh, now)
    key = pki.new_key()
    request = pki.read_csr(pki.new_csr(key, "old-node"))
    cert = pki.issue(mesh.load_ca_key(), mesh.load_ca(), request, now - dt.timedelta(days=8))
    mesh.write(mesh.node_key("old-node"), pki.key_pem(key))
    mesh.write(mesh.node_cert("old-node"), pki.cert_pem(cert))
    assert _has_certificate(mesh, "old-node")  # still this mesh's, for loading
    assert not _has_certificate(mesh, "old-node", current=True)  # but --join is not skipped
    fresh = pki.issue(mesh.load_ca_key(), mesh.load_ca(), request, now)
    mesh.write(mesh.node_cert("old-node"), pki.cert_pem(fresh))
    assert _has_certificate(mesh, "old-node", current=True)
