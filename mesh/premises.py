"""The premises policy: which addresses a router may send work to (nothing leaves the LAN)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOWED = (
    "127.0.0.0/8", "::1/128",                              # loopback
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",       # RFC 1918
    "fc00::/7",                                            # RFC 4193 unique local
    "169.254.0.0/16", "fe80::/10",                         # link-local
)


@dataclass(frozen=True)
class Premises:
    """An allow-list of networks; a node whose address is outside it never gets a request."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, cidrs: Iterable[str] | str = DEFAULT_ALLOWED) -> Premises:
        """CIDRs as a list, or one comma-separated string."""
        if isinstance(cidrs, str):
            cidrs = cidrs.split(",")
        try:
            return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()))
        except ValueError as exc:
            raise ValueError(f"bad network in the premises allow-list: {exc}") from None

    def allows(self, address: str) -> bool:
        """Whether an IP address (not a host name; resolve first) is on the premises."""
        try:
            ip = ipaddress.ip_address(address.strip("[]").split("%")[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)
