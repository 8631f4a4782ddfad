"""Nothing leaves the premises. Libraries lanai runs would otherwise phone home: onnxruntime
(1.29+, Linux and macOS too) queues usage events with a persistent device id in
~/.cache/Microsoft and uploads them to Microsoft; Hugging Face libraries send telemetry and
fetch from the Hub; Ray reports usage statistics to Anyscale. These must be set before those libraries initialise: every process lanai
starts calls `keep_on_premises()` first (the CLI's main, Node.start), and engines import those
libraries only when they load a model. An explicit setting is kept."""

from __future__ import annotations

import os

PRIVACY_ENVIRONMENT = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def keep_on_premises() -> None:
    for name, value in PRIVACY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
