"""lanai.mesh.security.pki: the mesh CA, node certificates signed from verified requests, and the
facts read back from them. Pure: every clock reading is passed in."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lanai.mesh.security import pki

T0 = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
NODE = "gpu-1"


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return pki.new_ca(T0)


def raw_csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str, unit: str = "node") -> bytes:
    """A CSR built without pki.new_csr's checks (names DNSName would refuse, other key types)."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def node_cert(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], *, name: str = NODE,
              role: str = pki.ROLE_NODE, dns: tuple[str, ...] = ("gpu-box", "gpu-box.local", "localhost"),
              ips: tuple[str, ...] = ("127.0.0.1", "::1", "192.168.1.20"), now: dt.datetime = T0) -> x509.Certificate:
    request = pki.read_csr(pki.new_csr(pki.new_key(), name, role, dns, ips))
    return pki.issue(ca[0], ca[1], request, now)


# --- the CA ---------------------------------------------------------------------------------------------------


def test_the_ca_is_a_p256_ca_valid_for_ten_years(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = ca
    assert isinstance(key.curve, ec.SECP256R1)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True and constraints.path_length == 0
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc == T0 - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == T0 + pki.CA_LIFETIME
    assert pki.issued_by(cert, cert)  # self-signed


def test_the_fingerprint_is_the_sha256_of_the_ca_der(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    cert = ca[1]
    expected = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert pki.fingerprint(cert) == expected
    assert len(expected) == 64


def test_the_fingerprint_is_stable_through_pem_and_differs_between_cas(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    cert = ca[1]
    reloaded = pki.load_cert(pki.cert_pem(cert))
    assert pki.fingerprint(reloaded) == pki.fingerprint(cert)
    assert pki.fingerprint(pki.new_ca(T0)[1]) != pki.fingerprint(cert)


def test_a_key_round_trips_through_pem() -> None:
    key = pki.new_key()
    loaded = pki.load_key(pki.key_pem(key))
    assert loaded.private_numbers() == key.private_numbers()


def test_a_non_ec_key_is_refused() -> None:
    pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(pki.PkiError, match="not an ECDSA key"):
        pki.load_key(pem)


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(pki.PkiError, match="not a PEM certificate"):
        pki.load_cert(b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")


# --- node certificates ----------------------------------------------------------------------------------------


def test_a_node_certificate_names_the_node_first(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    cert = node_cert(ca)
    got = pki.info(cert)
    assert got.name == NODE
    assert got.role == pki.ROLE_NODE
    assert got.dns_names == (NODE, "gpu-box", "gpu-box.local", "localhost")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE


def test_a_node_certificate_carries_the_ip_addresses(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca))
    assert got.ip_addresses == ("127.0.0.1", "::1", "192.168.1.20")
    san = node_cert(ca).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)


def test_the_node_id_is_not_repeated_when_the_request_names_it_too(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca, dns=(NODE, "gpu-box", NODE)))
    assert got.dns_names == (NODE, "gpu-box")


def test_a_node_certificate_lives_seven_days(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca))
    assert got.not_before == T0 - dt.timedelta(minutes=5)
    assert got.not_after == T0 + dt.timedelta(days=7)
    assert pki.NODE_LIFETIME == dt.timedelta(days=7)


def test_a_node_certificate_is_no_ca_and_serves_both_ends(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    cert = node_cert(ca)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert cert.issuer == ca[1].subject


def test_a_client_certificate_says_client(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca, name="alice", role=pki.ROLE_CLIENT, dns=(), ips=()))
    assert got.role == pki.ROLE_CLIENT
    assert got.name == "alice" and got.dns_names == ("alice",) and got.ip_addresses == ()


def test_serials_differ(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    assert pki.info(node_cert(ca)).serial != pki.info(node_cert(ca)).serial


# --- issued_by ------------------------------------------------------------------------------------------------


def test_issued_by_is_true_for_the_signing_ca(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    assert pki.issued_by(node_cert(ca), ca[1])


def test_issued_by_is_false_for_another_ca(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    other = pki.new_ca(T0)
    assert not pki.issued_by(node_cert(ca), other[1])
    assert not pki.issued_by(node_cert(other), ca[1])


def test_a_ca_with_the_same_name_but_another_key_did_not_issue_it(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    twin = pki.new_ca(T0)[1]
    assert twin.subject == ca[1].subject  # same day, same name
    assert not pki.issued_by(node_cert(ca), twin)


# --- read_csr -------------------------------------------------------------------------------------------------


def test_a_good_request_reads_back_as_made() -> None:
    key = pki.new_key()
    request = pki.read_csr(pki.new_csr(key, NODE, dns_names=["gpu-box"], ip_addresses=["10.0.0.5"]))
    assert request.name == NODE and request.role == pki.ROLE_NODE
    assert request.dns_names == (NODE, "gpu-box")
    assert request.ip_addresses == ("10.0.0.5",)
    assert request.public_key.public_numbers() == key.public_key().public_numbers()


def test_a_request_without_names_still_reads() -> None:
    request = pki.read_csr(raw_csr(pki.new_key(), NODE))
    assert request.name == NODE and request.dns_names == () and request.ip_addresses == ()


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()], ids=["p384", "secp256k1"])
def test_a_request_with_another_curve_is_refused(curve: ec.EllipticCurve) -> None:
    with pytest.raises(pki.PkiError, match="P-256"):
        pki.read_csr(raw_csr(ec.generate_private_key(curve), NODE))


def test_a_request_with_an_rsa_key_is_refused() -> None:
    with pytest.raises(pki.PkiError, match="P-256"):
        pki.read_csr(raw_csr(rsa.generate_private_key(65537, 2048), NODE))


@pytest.mark.parametrize("name", ["gpu 1", "gpu/1", "../ca", "a" * 64, "gpu:1", "gpu*"])
def test_a_request_for_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(pki.PkiError, match="not a node id"):
        pki.read_csr(raw_csr(pki.new_key(), name))


@pytest.mark.parametrize("name", ["a", "a" * 63, "gpu-1.lab_2"])
def test_names_at_the_limits_are_taken(name: str) -> None:
    assert pki.read_csr(raw_csr(pki.new_key(), name)).name == name


def test_a_request_for_a_non_ascii_name_is_refused_as_a_bad_request() -> None:
    with pytest.raises(pki.PkiError, match="not a node id"):
        pki.read_csr(raw_csr(pki.new_key(), "nöde"))


def test_a_request_for_an_unknown_role_is_refused() -> None:
    with pytest.raises(pki.PkiError, match="role"):
        pki.read_csr(raw_csr(pki.new_key(), NODE, unit="admin"))


def test_a_tampered_request_is_refused() -> None:
    csr = x509.load_pem_x509_csr(pki.new_csr(pki.new_key(), "node-a"))
    der = csr.public_bytes(serialization.Encoding.DER)
    assert der.count(b"node-a") >= 1
    tampered = x509.load_der_x509_csr(der.replace(b"node-a", b"node-b"))  # same length: still parses
    with pytest.raises(pki.PkiError, match="signature"):
        pki.read_csr(tampered.public_bytes(serialization.Encoding.PEM))


GARBAGE_CSR = b"-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize("pem", [b"", b"not a csr", GARBAGE_CSR], ids=["empty", "text", "garbage-der"])
def test_garbage_is_not_a_request(pem: bytes) -> None:
    with pytest.raises(pki.PkiError, match="not a PEM CSR"):
        pki.read_csr(pem)


def test_a_certificate_is_not_a_request(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    with pytest.raises(pki.PkiError):
        pki.read_csr(pki.cert_pem(node_cert(ca)))


# --- renewal --------------------------------------------------------------------------------------------------


def test_renewal_is_not_due_after_one_day_of_seven(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca))
    assert not pki.renewal_due(got, T0)
    assert not pki.renewal_due(got, T0 + dt.timedelta(days=1))


def test_renewal_is_due_after_five_days_and_once_expired(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca))
    assert pki.renewal_due(got, T0 + dt.timedelta(days=5))
    assert pki.renewal_due(got, T0 + dt.timedelta(days=8))


def test_renewal_falls_due_at_two_thirds_of_the_lifetime(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    got = pki.info(node_cert(ca))
    due = got.not_after - (got.not_after - got.not_before) / 3
    assert not pki.renewal_due(got, due - dt.timedelta(seconds=1))
    assert pki.renewal_due(got, due)
