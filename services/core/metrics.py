"""Metrics every service records; each service defines its own next to its code
(services/<name>/metrics.py). Names are `lanai_*`; the node serves them on /metrics."""

from __future__ import annotations

from prometheus_client import Histogram

# Inference spans milliseconds (a tiny image) to minutes (an hour of audio).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

QUEUE_SECONDS = Histogram("lanai_queue_duration_seconds", "Time a job waited for an execution slot.",
                          ["service"], buckets=LATENCY_BUCKETS)
COMPUTE_SECONDS = Histogram("lanai_compute_duration_seconds", "Time a job ran in its slot (decoding + inference).",
                            ["service", "model"], buckets=LATENCY_BUCKETS)
