"""The mesh's Prometheus vocabulary (`lanai_*`: node, router and membership metrics, defined
once; each service's own live in lanai.services.<name>.metrics) and the HTTP endpoint serving
/metrics (every process) and /sd (routers: Prometheus HTTP service discovery)."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lanai.services.core.metrics import LATENCY_BUCKETS

NODE_INFO = Gauge("lanai_node_info", "Always 1; labels say what this process is.", ["node", "version", "role"])
REQUESTS = Counter("lanai_requests", "Finished RPCs by service, method, node and gRPC status code.",
                   ["service", "method", "node", "code"])
REQUEST_SECONDS = Histogram("lanai_request_duration_seconds", "Wall time of an RPC from arrival to last message.",
                            ["service", "method"], buckets=LATENCY_BUCKETS)
SLOTS = Gauge("lanai_slots", "Execution slots of a service.", ["service", "node"])
IN_FLIGHT = Gauge("lanai_in_flight", "Jobs running in a slot now.", ["service", "node"])
QUEUED = Gauge("lanai_queued", "Jobs waiting for a slot now.", ["service", "node"])
OPEN_STREAMS = Gauge("lanai_open_streams", "Open streaming sessions.", ["service", "node"])


ROUTER_REQUESTS = Counter("lanai_router_requests", "Client calls a router placed, by the status the client got.",
                          ["service", "method", "node", "code"])
ROUTER_REQUEST_SECONDS = Histogram("lanai_router_request_duration_seconds",
                                   "Wall time of a routed call, retries included.", ["service", "method"],
                                   buckets=LATENCY_BUCKETS)
ROUTER_ATTEMPTS = Counter("lanai_router_attempts", "Calls a router sent to a node, by the node's answer.",
                          ["service", "node", "code"])
ROUTER_RETRIES = Counter("lanai_router_retries", "Calls a router sent to another node after one failed or was full.",
                         ["service"])
ROUTER_STREAMS_MOVED = Counter("lanai_router_streams_moved", "Live streams a router moved to another node after "
                               "their node was lost mid-call.", ["service"])
ROUTER_CIRCUIT_TRIPS = Counter("lanai_router_circuit_trips", "Times a router stopped using a node after failures.",
                               ["node"])

REFUSED_PEERS = Counter("lanai_mesh_refused_peers", "Nodes or callers refused for lack of mesh membership, by reason "
                        "(untrusted, foreign, revoked, forwarded_by_non_member).", ["reason"])
CLIENT_CALLS_REJECTED = Counter("lanai_client_calls_rejected", "Client calls refused before any work, by reason "
                                "(no_key, unknown_key, revoked_key, node_revoked).", ["reason"])
HTTP_REQUESTS = Counter("lanai_http_requests", "Requests to the HTTP door (OpenAI API, console), by route and "
                        "HTTP status.", ["route", "status"])
HTTP_SECONDS = Histogram("lanai_http_request_duration_seconds", "Wall time of an HTTP door request until its "
                         "response began (streams: until the first event).", ["route"], buckets=LATENCY_BUCKETS)
WYOMING_REQUESTS = Counter("lanai_wyoming_requests", "Requests to the Wyoming door (Home Assistant), by kind "
                           "(describe, transcribe, synthesize; connect, other) and outcome (ok or a gRPC status name).",
                           ["kind", "code"])

NODE_STATES = ("up", "suspect", "down", "refused", "draining", "untrusted", "foreign", "revoked")
_mesh_views: dict[str, Callable[[], Mapping[str, int]]] = {}


class _MeshCollector(Collector):
    """lanai_mesh_nodes, read from each router's state when scraped (never stale)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("lanai_mesh_nodes", "Nodes as a router sees them, by state.",
                                   labels=["node", "state"])
        for router_id, counts in list(_mesh_views.items()):
            seen = counts()
            for state in NODE_STATES:
                family.add_metric([router_id, state], seen.get(state, 0))
        yield family


_collector: _MeshCollector | None = None


def watch_mesh(router_id: str, counts: Callable[[], Mapping[str, int]]) -> None:
    """Report a router's view in lanai_mesh_nodes (the collector is registered by the first router)."""
    global _collector
    if _collector is None:
        _collector = _MeshCollector()
        REGISTRY.register(_collector)
    _mesh_views[router_id] = counts


def unwatch_mesh(router_id: str) -> None:
    _mesh_views.pop(router_id, None)


SdTargets = Callable[[str], list[dict[str, Any]]]
"""Given the host the scraper used to reach us, the http_sd target groups."""


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, *, token: str = "") -> None:
        super().__init__((host, port), _Handler)
        self.sd: SdTargets | None = None
        self.token = token
        """When set, /metrics and /sd want `Authorization: Bearer <token>` (Prometheus: `authorization:`)."""
        self.ca_pem = b""
        """The mesh CA certificate, served at /mesh/ca.pem for joiners (they check its fingerprint)."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        if path == "/mesh/ca.pem" and self.server.ca_pem:
            self._send(200, "application/x-pem-file", self.server.ca_pem)  # public: joiners pin its hash
            return
        if self.server.token and path in ("/metrics", "/sd") and not hmac.compare_digest(
                (self.headers.get("Authorization") or "").encode(), f"Bearer {self.server.token}".encode()):
            self._send(401, "text/plain", b"this endpoint wants Authorization: Bearer <the --metrics-token>\n")
            return
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        elif path == "/sd" and self.server.sd is not None:
            host = _host_only(self.headers.get("Host") or "")
            self._send(200, "application/json", json.dumps(self.server.sd(host)).encode())
        else:
            self._send(404, "text/plain", b"lanai serves /metrics (and /sd on routers)\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: scrapes are frequent
        pass


def _host_only(host_header: str) -> str:
    """"10.0.0.5:9464" -> "10.0.0.5", "[fd00::5]:9464" -> "[fd00::5]", "router" -> "router"."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def start_metrics_server(host: str, port: int, *, token: str = "") -> MetricsServer:
    """Serve /metrics (and /sd once a router sets `sd`) in a daemon thread; port 0 picks one."""
    server = MetricsServer(host, port, token=token)
    threading.Thread(target=server.serve_forever, name="lanai-metrics", daemon=True).start()
    return server
