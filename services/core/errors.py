"""Domain errors of lanai. Each maps to one gRPC status code in lanai.mesh.status."""

from __future__ import annotations


class LanaiError(Exception):
    """Base of every error lanai reports to a caller. The message says what was
    wrong and what to do about it; it is sent to the client as is."""


class InvalidInput(LanaiError):
    """The request itself is wrong (bad audio, bad option, bad stream order)."""


class ModelNotFound(LanaiError):
    """The request names a model this node does not serve."""


class ModelNotPrepared(LanaiError):
    """A model is known but its files are not prepared in the model cache."""


class Overloaded(LanaiError):
    """Every slot is busy and the queue is full: try again later or elsewhere."""


class Unavailable(LanaiError):
    """The service cannot take work now (draining, not loaded, unreachable)."""


class DeadlineExceeded(LanaiError):
    """The caller's deadline passed before the work could finish."""


class Unauthenticated(LanaiError):
    """The caller did not prove who it is: no API key, a wrong or revoked one."""


class PermissionDenied(LanaiError):
    """The caller is known but may not do this (a revoked member, a used-up invite)."""


QUOTE_CHARS = 64
"""The most characters of a client's value an error message repeats: the message travels in a
gRPC header, and a 1 MB model name echoed whole would exceed its limit (RESOURCE_EXHAUSTED)."""


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr() of a client-supplied value, cut to its first `limit` characters when longer."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
