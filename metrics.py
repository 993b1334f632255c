"""Prometheus metrics, correct when gunicorn runs several worker processes."""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

disable_created_metrics()  # *_created series double the page and nobody graphs them

# With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), every process
# writes its values to files there and /metrics sums them.
CONNECTED_CLIENTS = Gauge(
    "roomcast_connected_clients",
    "Socket.IO clients connected now, by namespace.",
    ["namespace"],
    multiprocess_mode="livesum",
)
SOCKET_EVENTS = Counter(
    "roomcast_socket_events_total",
    "Socket.IO events handled, by namespace, event and outcome (ok or an error code).",
    ["namespace", "event", "outcome"],
)
HTTP_REQUESTS = Counter(
    "roomcast_http_requests_total",
    "HTTP requests answered, by method and status.",
    ["method", "status"],
)


def render():
    """Return the metrics page body: this process's values, or every process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
