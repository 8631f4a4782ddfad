"""The mesh CA and its certificates: ECDSA P-256 keys, a CA that signs node certificates
whose common name and first DNS name are the node id, and the facts read back from them."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=3650)
NODE_LIFETIME = dt.timedelta(days=7)
"""Node certificates are short-lived: a node renews its own at two thirds of this."""
ROLE_NODE = "node"
ROLE_CLIENT = "client"
_ORG = "lanai mesh"


class PkiError(ValueError):
    """A key, certificate or request that cannot be used (the message says why)."""


@dataclass(frozen=True)
class CertInfo:
    """What lanai reads from a mesh certificate."""

    name: str
    """The node id (or client name): the subject's common name."""
    role: str
    """"node" or "client" (the subject's organizational unit)."""
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("the mesh key is not an ECDSA key")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from None


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(ca: x509.Certificate) -> str:
    """The mesh id: SHA-256 of the CA certificate (DER), in hex. Joiners pin it."""
    return hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"lanai mesh CA {now:%Y-%m-%d}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def new_csr(key: ec.EllipticCurvePrivateKey, name: str, role: str = ROLE_NODE,
            dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> bytes:
    """A certificate request for `name`, made where its key lives (the key never leaves)."""
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys([name, *dns_names])]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ip_addresses)]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                                    x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Request:
    """A verified certificate request."""

    name: str
    role: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    public_key: ec.EllipticCurvePublicKey


def read_csr(pem: bytes) -> Request:
    """Parse and check a CSR: well formed, self-signed by its key, P-256, a name lanai can use."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise PkiError(f"the certificate request is not a PEM CSR: {exc}") from None
    if not csr.is_signature_valid:
        raise PkiError("the certificate request's signature does not match its key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise PkiError("the certificate request must carry an ECDSA P-256 key")
    name = _attribute(csr.subject, NameOID.COMMON_NAME)
    role = _attribute(csr.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ROLE_NODE
    if not name or len(name) > 63 or not name.isascii() or not all(c.isalnum() or c in "-_." for c in name):
        raise PkiError(f"the requested name {name!r} is not a node id (letters, digits, '-', '_', '.'; 1-63)")
    if role not in (ROLE_NODE, ROLE_CLIENT):
        raise PkiError(f"unknown certificate role {role!r}")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(n for n in san.get_values_for_type(x509.DNSName) if n.isascii())  # others: IDNA, not ours
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return Request(name, role, dns, ips, key)


def issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, request: Request, now: dt.datetime,
          lifetime: dt.timedelta = NODE_LIFETIME) -> x509.Certificate:
    """Sign a certificate for a verified request: the name is the common name and first DNS name
    (routers pin it as the TLS server name); the other names are the machine's own (clients
    connect by them). Usable for both ends of a TLS connection."""
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys([request.name, *request.dns_names])]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in request.ip_addresses]
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, request.role),
                         x509.NameAttribute(NameOID.COMMON_NAME, request.name)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(request.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def info(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CertInfo(_attribute(cert.subject, NameOID.COMMON_NAME),
                    _attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ROLE_NODE,
                    cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc, dns, ips)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def renewal_due(cert: CertInfo, now: dt.datetime) -> bool:
    """Renew once two thirds of the lifetime have passed (pure: the clock is passed in)."""
    return now >= cert.not_after - (cert.not_after - cert.not_before) / 3


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    value = values[0].value if values else ""
    return value.decode() if isinstance(value, bytes) else value
