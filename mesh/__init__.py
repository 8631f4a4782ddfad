"""lanai's mesh: the node host, admission control, load reporting, metrics and CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lanai")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

API_VERSION = "v1"
