"""gunicorn settings, each read from the environment: gunicorn -c gunicorn.conf.py."""

import os
import resource
import shutil
import sys
import tempfile

from config import ConfigError, cors_allowed_origins, env, env_bool, env_int, log_format
from core.logs import logging_config

# Metrics from every worker meet in files in this folder (see core/metrics.py). It
# must be set before anything imports prometheus_client, which picks its
# storage at import, and workers inherit what the master imported.
OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="roomcast-metrics-")

# gevent records, for every greenlet, the greenlet that spawned it and its locals (a
# debugging aid): 3.8 KB per idle connection, whose three greenlets live as long as it
# does (docs/benchmarks.md, "Memory per idle connection"). Read when gevent is imported.
os.environ.setdefault("GEVENT_TRACK_GREENLET_TREE", "0")

wsgi_app = "wsgi:app"
worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
bind = env("BIND", f"{env('HOST', '127.0.0.1')}:{env('PORT', '8000')}")
# One worker by default: long-polling clients must keep reaching the same
# process. Several workers need WEBSOCKET_ONLY=1 (checked below).
workers = env_int("WEB_CONCURRENCY", 1)
# Connections one worker may hold; gunicorn's default of 1000 would cap clients.
worker_connections = env_int("WORKER_CONNECTIONS", 20000)
backlog = env_int("BACKLOG", 2048)
# The gevent worker heartbeats from its own greenlet; idle WebSockets do not
# count against this timeout, only a worker blocked for this long does.
timeout = env_int("WORKER_TIMEOUT", 30)
graceful_timeout = env_int("GRACEFUL_TIMEOUT", 20)
# Seconds an idle keep-alive connection stays open (applied in post_worker_init:
# gunicorn's pywsgi-based workers do not apply it themselves).
keepalive = env_int("KEEPALIVE", 5)
SUBSCRIBE_TIMEOUT = 10  # seconds a new worker waits for its Redis listener before it serves
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = env("LOG_LEVEL", "info")
# gunicorn's lines and the app's, in one format (LOG_FORMAT); the access line names the
# request id the app answered with (X-Request-ID), which its own lines for that request carry.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
# gunicorn's control socket (gunicornc) is unused; do not write one under $HOME.
control_socket_disable = True
# No preload_app: each worker must monkey-patch before the app is imported.
preload_app = False


def remove_own_metrics_dir():
    """Remove the metrics folder if this file made it."""
    if OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def refuse(message):
    """Stop start-up with a clear message."""
    remove_own_metrics_dir()
    sys.exit(f"gunicorn.conf.py: {message}")


try:
    logconfig_dict = logging_config(log_format(), loglevel)
except (ConfigError, ValueError) as error:
    refuse(str(error))


def raise_open_files_limit(needed):
    """Raise RLIMIT_NOFILE toward `needed`; warn when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(
            f"gunicorn.conf.py: WARNING open-files limit is {target}, below the {needed} that "
            f"worker_connections={worker_connections} needs; raise it (ulimit -n, LimitNOFILE=)",
            file=sys.stderr,
        )


def on_starting(server):
    """Check the configuration before any worker starts."""
    try:
        websocket_only = env_bool("WEBSOCKET_ONLY", False)
        cors_allowed_origins()
    except ConfigError as error:
        refuse(str(error))
    if workers > 1 and not websocket_only:
        refuse(
            f"workers={workers} with long-polling enabled: polling clients would hit "
            "processes that do not know them. Set WEBSOCKET_ONLY=1, or run one worker "
            "per process behind a sticky load balancer (deploy/nginx.conf)."
        )
    raise_open_files_limit(worker_connections + 1024)
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):  # values of an earlier run are stale
        os.remove(os.path.join(metrics_dir, name))


def on_exit(server):
    """Clean up after the last worker."""
    remove_own_metrics_dir()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Subscribe to Redis, close idle connections, close sockets on SIGTERM, tune the GC (resources/socket/)."""
    from resources.socket.gunicorn_worker import serve_in_worker

    serve_in_worker(worker, keepalive, SUBSCRIBE_TIMEOUT)
