"""Prometheus metrics, correct when gunicorn runs several worker processes."""

import logging
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
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily  # noqa: E402

log = logging.getLogger(__name__)
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
DELIVERY_SECONDS = Histogram(
    "roomcast_delivery_seconds",
    "Seconds from an event's publish to Redis by another process (web or Celery) to its delivery to this "
    "process's clients, by namespace and event; a process delivers its own emits at once, unmeasured. "
    "Read on two clocks when the publisher is on another machine.",
    ["namespace", "event"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Series that exist from the start, at 0, so graphs and alerts see them before their first event.
for scope in ("local", "all"):
    RESYNCS.labels(scope)
for transport in ("websocket", "polling"):
    SLOW_CLIENTS_DROPPED.labels(transport)
HTTP_REQUESTS = Counter(
    "roomcast_http_requests_total",
    "HTTP requests answered, by method and status.",
    ["method", "status"],
)


JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class SharedStateCollector:
    """Report what every process shares, read at scrape time: jobs from the database, the Celery queue from Redis.

    Any web process answers the same figures, for the whole deployment: sum them over processes and they double.
    """

    def __init__(self, job_counts, job_durations, queue_length):
        self.job_counts = job_counts  # () -> {(kind, status): count}
        self.job_durations = job_durations  # (column, buckets) -> {kind: (bucket counts, count, sum)}
        self.queue_length = queue_length  # () -> tasks waiting in the Celery queue

    def collect(self):
        """Yield the jobs gauge and histograms from the database, and the queue's length from the broker.

        A source that fails (the database or Redis away) leaves its families out, with a log
        line: the process's own metrics, which say what is wrong, are still served.
        """
        try:
            yield from self.collect_jobs()
        except Exception as error:
            log.warning("/metrics without the job figures: the database failed (%s)", error)
        try:
            length = self.queue_length()
        except Exception as error:
            log.warning("/metrics without the Celery queue's length: the broker failed (%s)", error)
            return
        if length is not None:  # None: a broker whose queue this cannot read (not Redis)
            queue = GaugeMetricFamily("roomcast_celery_queue_length", "Job tasks waiting in the Celery queue.")
            queue.add_metric([], length)
            yield queue

    def collect_jobs(self):
        """Yield the jobs gauge, and the queue wait and run time histograms."""
        jobs = GaugeMetricFamily("roomcast_jobs", "Jobs by kind and status.", labels=["kind", "status"])
        for (kind, status), count in sorted(self.job_counts().items()):
            jobs.add_metric([kind, status], count)
        families = [jobs]
        for column, name, documentation in (
            ("queue_seconds", "roomcast_job_queue_seconds", "Seconds each job waited for a worker, by kind."),
            ("run_seconds", "roomcast_job_run_seconds", "Seconds a worker ran each finished job, by kind."),
        ):
            family = HistogramMetricFamily(name, documentation, labels=["kind"])
            for kind, (counts, count, total) in sorted(self.job_durations(column, JOB_SECONDS_BUCKETS).items()):
                buckets = [(str(float(bound)), below) for bound, below in zip(JOB_SECONDS_BUCKETS, counts, strict=True)]
                family.add_metric([kind], [*buckets, ("+Inf", count)], total)
            families.append(family)
        return families  # built whole before any is yielded: a failure leaves all of them out


def render(shared_state):
    """Return the metrics page body: every web process's values, then the deployment's shared state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    shared = CollectorRegistry()
    shared.register(shared_state)
    return generate_latest(registry) + generate_latest(shared)
