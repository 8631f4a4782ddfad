"""How a process takes part in mesh trust: one frozen dataclass, built once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecurityConfig:
    insecure: bool = False
    """Plaintext everywhere, no mesh, no keys: any device on the LAN may join and call (labs only)."""
    client_tls: bool = True
    """Serve TLS (a mesh certificate) on the client port; `lanai up` turns it off on loopback."""
    require_keys: bool = True
    """Clients need an API key or a mesh certificate; `lanai up` (one person, one machine) turns it off."""
    join: str = field(default_factory=lambda: os.environ.get("LANAI_JOIN", ""))
    """A join token from `lanai mesh invite` (first start only; default $LANAI_JOIN)."""
    create_mesh: bool = True
    """With no mesh in LANAI_HOME and no token, create one (this machine then holds the CA)."""
    metrics_token: str = field(default_factory=lambda: os.environ.get("LANAI_METRICS_TOKEN", ""))
    """When set, /metrics and /sd want `Authorization: Bearer <token>` (default $LANAI_METRICS_TOKEN)."""
