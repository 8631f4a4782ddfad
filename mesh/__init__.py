"""lanai's mesh: the node host, admission control, load reporting, metrics and CLI."""

from importlib.metadata import PackageNotFoundError, version

import lanai.services  # noqa: F401 - sets the no-telemetry environment before any inference library loads

try:
    __version__ = version("lanai")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

API_VERSION = "v1"
