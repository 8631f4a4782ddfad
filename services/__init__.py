"""lanai's inference services: one package per modality, engines free of gRPC code."""

import os

# Nothing leaves the premises. Libraries lanai runs would otherwise phone home: onnxruntime
# (1.29+, Linux and macOS too) queues usage events with a persistent device id in
# ~/.cache/Microsoft and uploads them to Microsoft; Hugging Face libraries send telemetry and
# fetch from the Hub. These must be set before those libraries initialise, so they are set when
# lanai.services is first imported (lanai.mesh imports it too). An explicit setting is kept.
PRIVACY_ENVIRONMENT = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
}
for _name, _value in PRIVACY_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
