"""The services a node can host, by name. Adding a service is a folder under services/ with an
`entry.py` (lanai.services.core.entry.ServiceEntry) and one line here; the node, its flags, the
router's catalog and the metrics need nothing else."""

from __future__ import annotations

import functools
from importlib import import_module

from lanai.services.core.entry import ServiceEntry

ENTRIES = {
    "speech": "lanai.services.speech.entry",
    "vision": "lanai.services.vision.entry",
    "language": "lanai.services.language.entry",
    "voice": "lanai.services.voice.entry",
}
"""Name -> the module holding its ENTRY, in the order `lanai node` lists and loads them."""


def names() -> tuple[str, ...]:
    return tuple(ENTRIES)


@functools.cache
def entry(name: str) -> ServiceEntry:
    """The entry of a service (imported on first use, not when lanai.mesh is)."""
    if name not in ENTRIES:
        raise ValueError(f"unknown service {name!r}; this node can host: {', '.join(ENTRIES)}")
    found: ServiceEntry = import_module(ENTRIES[name]).ENTRY
    return found


def entries() -> tuple[ServiceEntry, ...]:
    return tuple(entry(name) for name in ENTRIES)
