"""gunicorn settings, each read from the environment: gunicorn -c gunicorn.conf.py."""

import os
import resource
import shutil
import sys
import tempfile

from config import ConfigError, cors_allowed_origins, env, env_bool, env_int

# Metrics from every worker meet in files in this folder (see metrics.py). It
# must be set before anything imports prometheus_client, which picks its
# storage at import, and workers inherit what the master imported.
OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="roomcast-metrics-")

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
FIRST_REQUEST_SECONDS = 10  # a new connection's first request line must come within this
SUBSCRIBE_TIMEOUT = 10  # seconds a new worker waits for its Redis listener before it serves
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = env("LOG_LEVEL", "info")
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


def close_when_idle(handler_class, seconds):
    """Return handler_class, closing a connection idle for `seconds` between requests (0: after each)."""
    import gevent

    class Handler(handler_class):
        served = False  # per connection: gevent makes a handler for each

        def read_requestline(self):
            # Else an idle keep-alive connection (a browser's, nginx's upstream pool)
            # holds a worker_connections slot for ever, and holds up a graceful
            # shutdown until graceful_timeout.
            first, self.served = not self.served, True
            if not first and seconds <= 0:
                return ""  # keep-alive off; gevent's handler closes the connection
            with gevent.Timeout(max(seconds, FIRST_REQUEST_SECONDS) if first else seconds, False):
                return super().read_requestline()
            return ""

        def upgrade_websocket(self):
            # gevent-websocket refuses a bad upgrade (no Sec-WebSocket-Version) with a
            # text body, which pywsgi cannot write: the client got nothing and the log a traceback.
            result = super().upgrade_websocket()
            if isinstance(result, list):
                return [part.encode() if isinstance(part, str) else part for part in result]
            return result

    return Handler


def post_worker_init(worker):
    """Close idle connections, start the sweeper, subscribe to Redis, close sockets on SIGTERM, tune the GC."""
    import gc
    import signal

    import gevent

    from extensions import socketio
    from services.jobs import supervise
    from services.throttle import keep_process_alive_forever
    from socket_views import close_all_connections

    if worker.wsgi_handler is not None:  # pywsgi-based workers (ours); `-k gevent` has its own keepalive
        worker.wsgi_handler = close_when_idle(worker.wsgi_handler, keepalive)
    # Every web process sweeps; the sweep's conditional updates let only one act on a job.
    gevent.spawn(supervise, worker.wsgi)
    # The connections this process holds count toward their users' limits while it lives.
    gevent.spawn(keep_process_alive_forever)

    # Subscribe to the Socket.IO channel before serving: python-socketio would do it
    # at the first connect, and lose what is published until the subscription is in.
    # If Redis is away, serve anyway; /readyz says 503 until the listener is subscribed.
    if not socketio.server.manager.wait_subscribed(SUBSCRIBE_TIMEOUT):
        worker.log.warning("the Redis listener is not subscribed after %s s; /readyz answers 503", SUBSCRIBE_TIMEOUT)

    stop_accepting = worker.handle_exit

    def close_connections_until_exit():
        # Without this, open WebSockets keep the worker until graceful_timeout
        # and then die with it, unannounced; closed cleanly, clients reconnect
        # elsewhere. Repeated: the worker accepts for up to a second more.
        while True:
            close_all_connections(socketio)
            gevent.sleep(0.5)

    def handle_exit(signum, frame):
        stop_accepting(signum, frame)
        gevent.spawn(close_connections_until_exit)

    signal.signal(signal.SIGTERM, handle_exit)

    # The app and its libraries are loaded: keep those objects out of every later
    # full garbage collection, whose pauses stall every client of this worker, and
    # collect the young generation every 10,000 allocations instead of 700, which
    # made full collections rare (docs/benchmarks.md, "Profiling").
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
