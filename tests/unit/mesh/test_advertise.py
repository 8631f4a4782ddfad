"""Which addresses a node announces itself on."""

from __future__ import annotations

import pytest

from lanai.mesh.advertise import Interface, choose_addresses, service_info

MACHINE = [
    Interface("lo", ("127.0.0.1",)),
    Interface("eth0", ("192.168.1.20",)),
    Interface("wlan0", ("192.168.1.21",)),
    Interface("docker0", ("172.17.0.1",)),
    Interface("veth1a2b", ("169.254.3.3",)),
    Interface("br-5f3a", ("172.18.0.1",)),
    Interface("virbr0", ("192.168.122.1",)),
    Interface("tailscale0", ("100.101.102.103",)),
]


def test_default_skips_loopback_and_virtual_interfaces() -> None:
    assert choose_addresses(MACHINE) == ["192.168.1.20", "192.168.1.21"]


def test_an_interface_can_be_pinned() -> None:
    assert choose_addresses(MACHINE, interface="wlan0") == ["192.168.1.21"]
    assert choose_addresses(MACHINE, interface="docker0") == ["172.17.0.1"]  # chosen on purpose


def test_an_address_can_be_pinned_even_loopback() -> None:
    assert choose_addresses(MACHINE, advertise_address="127.0.0.1") == ["127.0.0.1"]


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="no network interface named 'eth9'"):
        choose_addresses(MACHINE, interface="eth9")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        choose_addresses(MACHINE, advertise_address="not-an-ip")
    with pytest.raises(ValueError, match="--advertise-address"):
        choose_addresses([Interface("lo", ("127.0.0.1",)), Interface("docker0", ("172.17.0.1",))])


def test_txt_carries_static_facts_only() -> None:
    info = service_info("node-7", ["192.168.1.20"], 50051, ["speech"], 9464)
    assert info.name == "node-7._lanai._tcp.local." and info.port == 50051
    assert info.properties == {b"api": b"v1", b"id": b"node-7", b"services": b"speech", b"metrics": b"9464"}
