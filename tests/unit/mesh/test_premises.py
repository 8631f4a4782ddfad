"""lanai.mesh.premises: which addresses a router may send work to (nothing leaves the LAN)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from lanai.mesh.premises import DEFAULT_ALLOWED, Premises

DEFAULT = Premises.parse()

# --- the default allow-list -------------------------------------------------------------------------------------

INSIDE = [
    # loopback
    "127.0.0.0", "127.0.0.1", "127.255.255.255", "::1",
    # RFC 1918
    "10.0.0.0", "10.1.2.3", "10.255.255.255",
    "172.16.0.0", "172.20.5.5", "172.31.255.255",
    "192.168.0.0", "192.168.1.10", "192.168.255.255",
    # RFC 4193 unique local
    "fc00::", "fd12:3456:789a::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    # link-local
    "169.254.0.0", "169.254.1.1", "169.254.255.255",
    "fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]

OUTSIDE = [
    # just outside each range
    "126.255.255.255", "128.0.0.0", "::", "::2",
    "9.255.255.255", "11.0.0.0",
    "172.15.255.255", "172.32.0.0",
    "192.167.255.255", "192.169.0.0",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::",
    "169.253.255.255", "169.255.0.0",
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::1",
    # public
    "8.8.8.8", "1.1.1.1", "2001:4860::8888", "2606:4700:4700::1111",
    # special-purpose ranges Python's is_private calls private, but which are not the LAN
    "198.51.100.7", "192.0.2.1", "203.0.113.5", "2001:db8::1", "100.64.0.1",
    # unspecified, broadcast, multicast
    "0.0.0.0", "255.255.255.255", "224.0.0.251", "ff02::fb",
]


@pytest.mark.parametrize("address", INSIDE)
def test_default_allows_loopback_rfc1918_ula_and_link_local(address: str) -> None:
    assert DEFAULT.allows(address)


@pytest.mark.parametrize("address", OUTSIDE)
def test_default_refuses_everything_else(address: str) -> None:
    assert not DEFAULT.allows(address)


def test_python_calls_test_net_private_but_the_premises_do_not() -> None:
    assert ipaddress.ip_address("198.51.100.7").is_private  # the trap the explicit list avoids
    assert not DEFAULT.allows("198.51.100.7")


@pytest.mark.parametrize("address", ["::ffff:10.0.0.1", "::ffff:192.168.1.1", "::ffff:127.0.0.1", "::ffff:7f00:1",
                                     "[::ffff:10.0.0.1]"])
def test_ipv4_mapped_ipv6_is_judged_by_its_ipv4_address(address: str) -> None:
    assert DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "::ffff:172.32.0.1", "::ffff:198.51.100.7"])
def test_ipv4_mapped_public_addresses_are_refused(address: str) -> None:
    assert not DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["[fe80::1]", "[::1]", "[fd00::5]", "fe80::1%eth0", "[fe80::1%eth0]",
                                     "fe80::abcd%en0", "fe80::1%25"])
def test_brackets_and_zone_ids_are_accepted(address: str) -> None:
    assert DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["[2001:4860::8888]", "2001:4860::8888%eth0", "[8.8.8.8]"])
def test_brackets_and_zone_ids_do_not_launder_public_addresses(address: str) -> None:
    assert not DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["localhost", "router.local", "gpu-box", "example.com", "10.0.0.1.nip.io"])
def test_host_names_are_refused_the_caller_must_resolve_first(address: str) -> None:
    assert not DEFAULT.allows(address)


@pytest.mark.parametrize("address", ["", " ", "[]", "10.0.0", "10.0.0.256", "10.0.0.1/8", "not an ip", ":::",
                                     "fe80::1::2", "fe80::g", "%eth0", "0x0a000001", "10.0.0.-1"])
def test_garbage_is_refused_not_an_error(address: str) -> None:
    assert not DEFAULT.allows(address)


# --- parse ------------------------------------------------------------------------------------------------------


def test_parse_defaults_to_the_default_list() -> None:
    assert Premises.parse() == Premises.parse(DEFAULT_ALLOWED)
    assert {str(n) for n in DEFAULT.networks} == {
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
        "fc00::/7", "169.254.0.0/16", "fe80::/10",
    }


def test_a_custom_list_replaces_the_default() -> None:
    p = Premises.parse(["10.77.0.0/24"])
    for inside in ("10.77.0.0", "10.77.0.1", "10.77.0.255", "::ffff:10.77.0.9"):
        assert p.allows(inside), inside
    for outside in ("10.77.1.0", "10.76.255.255", "10.0.0.1", "192.168.1.1", "127.0.0.1", "::1", "fe80::1"):
        assert not p.allows(outside), outside


def test_parse_tolerates_blanks_whitespace_host_bits_and_generators() -> None:
    p = Premises.parse(c for c in [" 10.77.0.9/24 ", "", "   ", "fd00::/8"])
    assert [str(n) for n in p.networks] == ["10.77.0.0/24", "fd00::/8"]
    assert p.allows("10.77.0.200") and p.allows("fd00::1")
    assert not p.allows("10.77.1.1") and not p.allows("fc00::1")


def test_an_empty_list_allows_nothing() -> None:
    p = Premises.parse([])
    assert p.networks == ()
    assert not p.allows("127.0.0.1") and not p.allows("10.0.0.1")


def test_a_single_address_is_a_host_network() -> None:
    p = Premises.parse(["192.168.5.7", "fd00::7"])
    assert p.allows("192.168.5.7") and p.allows("fd00::7")
    assert not p.allows("192.168.5.8") and not p.allows("fd00::8")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "300.0.0.0/8", "not-a-net", "fe80::/129", "10.0.0.0/8/8",
                                 "lan.local/24"])
def test_a_bad_cidr_raises_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="premises allow-list") as info:
        Premises.parse(["10.0.0.0/8", bad])
    assert bad in str(info.value)


def test_premises_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.networks = ()  # type: ignore[misc]
