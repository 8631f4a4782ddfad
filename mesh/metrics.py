"""lanai's Prometheus vocabulary (`lanai_*`), defined once, and the /metrics endpoint."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

# Inference spans milliseconds (a tiny image) to minutes (an hour of audio).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

NODE_INFO = Gauge("lanai_node_info", "Always 1; labels say what this process is.", ["node", "version", "role"])
REQUESTS = Counter("lanai_requests", "Finished RPCs by service, method, node and gRPC status code.",
                   ["service", "method", "node", "code"])
REQUEST_SECONDS = Histogram("lanai_request_duration_seconds", "Wall time of an RPC from arrival to last message.",
                            ["service", "method"], buckets=LATENCY_BUCKETS)
QUEUE_SECONDS = Histogram("lanai_queue_duration_seconds", "Time a job waited for an execution slot.",
                          ["service"], buckets=LATENCY_BUCKETS)
COMPUTE_SECONDS = Histogram("lanai_compute_duration_seconds", "Time a job ran in its slot (decoding + inference).",
                            ["service", "model"], buckets=LATENCY_BUCKETS)
SLOTS = Gauge("lanai_slots", "Execution slots of a service.", ["service", "node"])
IN_FLIGHT = Gauge("lanai_in_flight", "Jobs running in a slot now.", ["service", "node"])
QUEUED = Gauge("lanai_queued", "Jobs waiting for a slot now.", ["service", "node"])
OPEN_STREAMS = Gauge("lanai_open_streams", "Open streaming sessions.", ["service", "node"])

SPEECH_AUDIO_SECONDS = Counter("lanai_speech_audio_seconds", "Seconds of audio transcribed.", ["model"])
SPEECH_REAL_TIME_FACTOR = Histogram(
    "lanai_speech_real_time_factor", "Compute time divided by audio duration (below 1 is faster than real time).",
    ["model"], buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))

_server_lock = threading.Lock()


def start_metrics_server(host: str, port: int) -> int:
    """Serve /metrics over HTTP in a daemon thread; returns the bound port (port 0 picks one)."""
    with _server_lock:
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_port)
