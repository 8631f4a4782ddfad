"""The vision service's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from lanai.services.core.metrics import LATENCY_BUCKETS

IMAGES = Counter("lanai_vision_images", "Images processed, by task and model.", ["task", "model"])
SECONDS = Histogram("lanai_vision_duration_seconds", "Time to decode and process one image, by task.",
                    ["task"], buckets=LATENCY_BUCKETS)
