"""A process's mesh trust at run time: its certificate (renewed before expiry), the CA, the
signed policy (revocations, API keys), and what follows from them: TLS credentials for both
ports and for dialling members, who a peer is, whether a client's key is good."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509

from lanai.mesh import metrics
from lanai.mesh.security import authority, pki
from lanai.mesh.security.config import SecurityConfig
from lanai.mesh.security.policy import ApiKey, Policy, PolicyError, verify
from lanai.mesh.security.store import MeshDir
from lanai.services.core.errors import Unauthenticated

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
HOW_TO_GET_A_KEY = ("ask the mesh's owner for an API key (`lanai mesh key create NAME` on the machine holding the "
                    "mesh CA) and pass it as --key or LANAI_KEY, or as `authorization: Bearer KEY` metadata")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class HandshakeFailed(Exception):
    """The TCP connection opened but the peer did not complete TLS as a mesh member."""


class Untrusted(Exception):
    """A node that could not prove membership. `state` is "untrusted" or "revoked"."""

    def __init__(self, reason: str, state: str = "untrusted") -> None:
        super().__init__(reason)
        self.state = state


class Trust:
    def __init__(self, mesh: MeshDir, node_id: str, config: SecurityConfig, *, clock: Clock = utc_now) -> None:
        self.dir, self.node_id, self.config, self._clock = mesh, node_id, config, clock
        self.ca = mesh.load_ca()
        self.ca_pem = pki.cert_pem(self.ca)
        self.mesh_id = pki.fingerprint(self.ca)
        self.policy = mesh.read_policy(self.ca)
        self.signed_policy = mesh.policy.read_bytes() if mesh.policy.exists() else b""
        self._policy_mtime = _mtime(mesh.policy)
        self._key_pem = mesh.node_key(node_id).read_bytes()
        self._cert_pem = mesh.node_cert(node_id).read_bytes()
        self.cert = pki.info(pki.load_cert(self._cert_pem))
        self.generation = 0
        """Changes whenever the certificate does: channels made before are stale."""
        self.on_policy: list[Callable[[Policy], None]] = []
        self.on_certificate: list[Callable[[], None]] = []
        self._peers: dict[bytes, pki.CertInfo] = {}
        self._task: asyncio.Task[None] | None = None
        self.addresses: list[str] = machine_addresses()
        """IP addresses the certificate names (renewals name them again)."""
        self.renew_from: Callable[[bytes], Any] | None = None
        """async (csr_pem) -> certificate PEM, for a member that does not hold the CA (set by the node)."""

    def now(self) -> dt.datetime:
        return self._clock()

    @property
    def short_id(self) -> str:
        """The mesh id as mDNS TXT carries it (64 bits of the fingerprint: names a mesh, proves nothing)."""
        return self.mesh_id[:16]

    @property
    def holds_ca(self) -> bool:
        return self.dir.holds_ca()

    # --- TLS credentials -------------------------------------------------------------------

    def server_credentials(self, *, require_client_auth: bool) -> grpc.ServerCredentials:
        """TLS with this node's certificate, re-read on every new connection so renewal needs no
        restart. With client auth (the mesh port) only certificates of this mesh's CA get in."""
        served = [self._cert_pem]

        def current() -> grpc.ServerCertificateConfiguration:
            return grpc.ssl_server_certificate_configuration([(self._key_pem, self._cert_pem)],
                                                             root_certificates=self.ca_pem)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            if served[0] is self._cert_pem:
                return None
            served[0] = self._cert_pem
            return current()

        # grpc's stub leaves out the None ("no change") that the API documents
        return grpc.dynamic_ssl_server_credentials(current(), fetch, require_client_auth)  # type: ignore[arg-type]

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """For dialling a member's mesh port: trust only the mesh CA, present this node's certificate."""
        return grpc.ssl_channel_credentials(self.ca_pem, self._key_pem, self._cert_pem)

    def probe(self, host: str, port: int, timeout: float = 3.0) -> pki.CertInfo:
        """Who answers at host:port? A TLS handshake (Python's ssl, OpenSSL) that verifies the peer
        against the mesh CA and reads its certificate; the gRPC channel then pins that name.
        HandshakeFailed: not a member (wrong CA, expired, plaintext); OSError: unreachable."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the name is what we want to learn; the chain is checked
        context.load_verify_locations(cadata=self.ca_pem.decode())
        context.load_cert_chain(self.dir.node_cert(self.node_id), self.dir.node_key(self.node_id))
        context.set_alpn_protocols(["h2"])
        with socket.create_connection((host.strip("[]"), port), timeout) as raw:
            try:
                with context.wrap_socket(raw) as tls:
                    der = tls.getpeercert(binary_form=True)
            except ssl.SSLCertVerificationError as exc:
                raise HandshakeFailed(f"its certificate is not of this mesh: {exc.verify_message}") from None
            except (ssl.SSLError, OSError) as exc:
                raise HandshakeFailed(f"no TLS with a mesh certificate on that port ({exc}): an --insecure "
                                      "node, another mesh's, or not a mesh port") from None
        assert der is not None  # CERT_REQUIRED: a verified peer always has one
        return pki.info(x509.load_der_x509_certificate(der))

    # --- who is calling --------------------------------------------------------------------

    def peer(self, context: grpc.aio.ServicerContext[Any, Any]) -> pki.CertInfo | None:
        """The member on the other end (TLS verified its certificate against the mesh CA), or
        None for a caller without a certificate (the client port asks for none)."""
        pem = next(iter(context.auth_context().get("x509_pem_cert") or ()), None)
        if pem is None:
            return None
        known = self._peers.get(pem)
        if known is None:
            if len(self._peers) > 1024:
                self._peers.clear()
            known = self._peers[pem] = pki.info(pki.load_cert(pem))
        return known

    def revoked(self, node_id: str) -> bool:
        return self.policy.is_revoked(node_id)

    def check_key(self, presented: str | None) -> ApiKey:
        """The API key a client presented, if it is one of this mesh's and not revoked."""
        if not presented:
            metrics.CLIENT_CALLS_REJECTED.labels("no_key").inc()
            raise Unauthenticated(f"this mesh needs an API key and the call carried none: {HOW_TO_GET_A_KEY}")
        key = self.policy.key_named(presented)
        if key is None:
            metrics.CLIENT_CALLS_REJECTED.labels("unknown_key").inc()
            raise Unauthenticated(f"the API key is not one of this mesh's keys: {HOW_TO_GET_A_KEY}")
        if key.revoked:
            metrics.CLIENT_CALLS_REJECTED.labels("revoked_key").inc()
            raise Unauthenticated(f"the API key {key.name!r} was revoked: {HOW_TO_GET_A_KEY}")
        return key

    # --- the policy ------------------------------------------------------------------------

    def offer(self, signed: bytes) -> bool:
        """Take a signed policy if the CA signed it for this mesh and it is newer. PolicyError if forged."""
        key = self.ca.public_key()
        offered = verify(signed, key, self.mesh_id)  # type: ignore[arg-type]
        if offered.version <= self.policy.version:
            return False
        with self.dir.locked():
            on_disk = self.dir.read_policy(self.ca)
            if on_disk.version < offered.version:
                self.dir.write(self.dir.policy, signed)
            else:  # the CLI wrote a newer one that was not reloaded yet: that one wins
                offered, signed = on_disk, self.dir.policy.read_bytes()
            self._policy_mtime = _mtime(self.dir.policy)
        self._adopt(offered, signed)
        return True

    def _adopt(self, policy: Policy, signed: bytes) -> None:
        newly = sorted(set(policy.revoked_nodes) - set(self.policy.revoked_nodes))
        self.policy, self.signed_policy = policy, signed
        log.info("node %s: mesh policy version %d (%d revoked node(s), %d API key(s))", self.node_id,
                 policy.version, len(policy.revoked_nodes), len(policy.keys))
        if self.node_id in newly:
            log.error("node %s: this node was revoked from the mesh; no member will call it or answer it, and "
                      "it refuses every call now",
                      self.node_id)
        for listener in self.on_policy:
            listener(policy)

    def reload_policy_file(self) -> None:
        """The CLI on this machine signs policy changes into the file: take them."""
        mtime = _mtime(self.dir.policy)
        if mtime == self._policy_mtime:
            return
        self._policy_mtime = mtime
        try:
            signed = self.dir.policy.read_bytes()
            policy = verify(signed, self.ca.public_key(), self.mesh_id)  # type: ignore[arg-type]
        except (OSError, PolicyError) as exc:
            log.error("node %s: ignoring %s: %s", self.node_id, self.dir.policy, exc)
            return
        if policy.version > self.policy.version:
            self._adopt(policy, signed)

    # --- the certificate -------------------------------------------------------------------

    def renewal_due(self) -> bool:
        return pki.renewal_due(self.cert, self._clock())

    def expired(self) -> bool:
        return self._clock() >= self.cert.not_after

    async def renew(self) -> None:
        """A new key and certificate for this node: signed here when this machine holds the CA,
        else by the CA's node over the mesh port (authenticated by the current certificate)."""
        key = pki.new_key()
        csr = pki.new_csr(key, self.node_id, dns_names=self.cert.dns_names[1:], ip_addresses=self.addresses)
        if self.holds_ca:
            cert_pem = await asyncio.to_thread(authority.issue_own, self.dir, csr, self._clock())
        elif self.renew_from is not None:
            cert_pem = await self.renew_from(csr)
        else:
            raise pki.PkiError("no way to reach the mesh CA to renew the certificate")
        cert = pki.load_cert(cert_pem)
        if not pki.issued_by(cert, self.ca) or pki.info(cert).name != self.node_id:
            raise pki.PkiError("the renewed certificate is not this node's from this mesh's CA")
        self.dir.write(self.dir.node_key(self.node_id), pki.key_pem(key))
        self.dir.write(self.dir.node_cert(self.node_id), cert_pem)
        self._key_pem, self._cert_pem, self.cert = pki.key_pem(key), cert_pem, pki.info(cert)
        self.generation += 1
        log.info("node %s: certificate renewed, valid until %s", self.node_id, f"{self.cert.not_after:%Y-%m-%d %H:%M}")
        for listener in self.on_certificate:
            listener()

    async def maintain(self, policy_every_s: float = 1.0, renew_every_s: float = 60.0) -> None:
        """Until cancelled: pick up policy changes made by the CLI, renew the certificate when due."""
        since_renew_check = renew_every_s
        while True:
            self.reload_policy_file()
            since_renew_check += policy_every_s
            if since_renew_check >= renew_every_s:
                since_renew_check = 0.0
                if self.renewal_due():
                    try:
                        await self.renew()
                    except Exception as exc:  # the CA may be away for a while: keep serving, retry later
                        log.warning("node %s: could not renew the certificate (valid until %s): %s", self.node_id,
                                    f"{self.cert.not_after:%Y-%m-%d %H:%M}", exc)
            await asyncio.sleep(policy_every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.maintain(), name=f"trust {self.node_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def machine_addresses(listen: str = "") -> list[str]:
    """Loopback, the address the node listens on (when one) and every address of this machine's
    interfaces: clients connect by any of them, so the certificate names them all (link-local
    IPv6 carries a scope and is left out)."""
    import ipaddress

    import ifaddr

    found = ["127.0.0.1", "::1"]
    try:
        if not ipaddress.ip_address(listen).is_unspecified:
            found.append(listen)
    except ValueError:
        pass
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif not ip.ip[0].startswith("fe80"):
                found.append(ip.ip[0])
    return list(dict.fromkeys(found))


def machine_names() -> list[str]:
    host = socket.gethostname().split(".")[0]
    return list(dict.fromkeys([host, f"{host}.local", "localhost"]))


def _mtime(path: Any) -> tuple[int, int, int]:
    """Changes whenever the file is replaced: writes are atomic renames, so the inode changes
    even where timestamps are coarse."""
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns, st.st_size
    except OSError:
        return 0, 0, 0



