"""Prometheus metrics, correct when gunicorn runs several worker processes."""

import os

# Empty means unset, as for every setting (an env file copied from .env.example has it
# empty); prometheus_client, which reads it at import, would write into the working folder.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

from prometheus_client import (  # noqa: E402
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

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
LISTENER_SUBSCRIBED = Gauge(
    "roomcast_listener_subscribed",
    "1 while this web process's Redis listener is subscribed to the Socket.IO channel, else 0.",
    multiprocess_mode="liveall",
)
PUBLISH_FAILURES = Counter(
    "roomcast_publish_failures_total",
    "Socket.IO messages that could not be published to Redis (their receivers catch up after a resync).",
)
RESYNCS = Counter(
    "roomcast_resyncs_total",
    "resync events sent after a gap in the Redis channel, by scope (local: this process's clients; all).",
    ["scope"],
)
SLOW_CLIENTS_DROPPED = Counter(
    "roomcast_slow_clients_dropped_total",
    "Socket.IO clients disconnected for having over SOCKET_MAX_PENDING_BYTES waiting to be sent, by transport.",
    ["transport"],
)
HTTP_REQUESTS = Counter(
    "roomcast_http_requests_total",
    "HTTP requests answered, by method and status.",
    ["method", "status"],
)


class JobsCollector:
    """Report jobs by kind and status, counted in the database at scrape time."""

    def __init__(self, counts):
        self.counts = counts  # a callable returning {(kind, status): count}

    def collect(self):
        """Yield the roomcast_jobs gauge."""
        family = GaugeMetricFamily("roomcast_jobs", "Jobs by kind and status.", labels=["kind", "status"])
        for (kind, status), count in sorted(self.counts().items()):
            family.add_metric([kind, status], count)
        yield family


def render(job_counts):
    """Return the metrics page body: every web process's values, and the jobs from the database."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    jobs = CollectorRegistry()
    jobs.register(JobsCollector(job_counts))
    return generate_latest(registry) + generate_latest(jobs)
