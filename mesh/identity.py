"""Node ids: made once per machine and kept, but never shared by two nodes."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import socket
import uuid
from pathlib import Path

log = logging.getLogger(__name__)
_held: list[int] = []  # lock file descriptors kept open for the life of the process


def machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            if value := Path(path).read_text().strip():
                return value
        except OSError:
            pass
    return f"{uuid.getnode():012x}-{socket.gethostname()}"


def fingerprint(home: Path) -> str:
    """Changes when the directory is copied (new inode) or moved to another machine."""
    st = home.stat()
    return hashlib.sha256(f"{machine_id()}:{st.st_dev}:{st.st_ino}".encode()).hexdigest()[:16]


def node_id(home: Path) -> str:
    """The id of the node using `home`: read back if it was made here, else made anew.
    A second node running on the same directory at once gets an id of its own."""
    home.mkdir(parents=True, exist_ok=True)
    path, mark = home / "node-id", fingerprint(home)
    try:
        stored, stored_mark = path.read_text().split()
    except (OSError, ValueError):
        stored, stored_mark = "", ""
    if not stored or stored_mark != mark:
        if stored:
            log.info("%s was copied from elsewhere: this node takes a new id", path)
        stored = f"{socket.gethostname().split('.')[0][:24]}-{secrets.token_hex(3)}"
        path.write_text(f"{stored} {mark}\n")
    lock = os.open(home / "node-id.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        unique = f"{stored}-{secrets.token_hex(2)}"
        log.warning("another node already runs with %s; this one is %s (give each node its own --home "
                    "for a stable id)", home, unique)
        return unique
    _held.append(lock)
    return stored
