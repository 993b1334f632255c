"""Memory per idle WebSocket connection, by owner: where Roomcast's bytes per client go.

    .venv/bin/python bench/memory.py [--sizes 1000,10000] [--runs 3] [--profile-runs 1] [--redis URL]

Starts Roomcast as bench/run.py does (gunicorn -c gunicorn.conf.py, GeventWebSocketWorker, one
worker, the /bench namespace, limits off), but with this file as the WSGI module: in the worker it
wraps bench/roomcast_wsgi.py and, on SIGUSR2, writes what it holds to a file (VmRSS, greenlets by
what they run and the C stack each has saved, objects by type, and, with MEMORY_PROFILE=1, a
tracemalloc snapshot taken with 25 frames from the worker's import on).

Each run: start a fresh server, connect 100 warm-up clients (socket.io-client as bench/loadgen.mjs
makes them: a WebSocket each to /bench, token auth, one `join`ed room each, fewer connects in
flight), dump, connect N more the same way, wait for the worker to settle, dump again. The
growth over N is the cost per connection. Runs without tracemalloc give the RSS figure (median
over --runs); the --profile-runs with tracemalloc give the breakdown by owner (tracemalloc's own
tables inflate RSS, so their RSS is not used).
Writes bench/results/<date>-memory.json and prints the tables docs/benchmarks.md quotes.
--env NAME=VALUE runs a variant (MEMORY_EXPERIMENTS=ping-timer,rfile-1k tries a cut in the worker,
bench-only; see apply_experiments); --reanalyze FILE recomputes the breakdown from its snapshots.
"""

import collections
import json
import os
import re
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES = 25  # tracemalloc frames per allocation: enough to reach the owner through the stack's layers
WARMUP = 100  # clients connected before the "before" dump: first-connect costs (imports, caches) are not counted


# ---------------------------------------------------------------------------------------------
# In the worker: gunicorn -c gunicorn.conf.py bench.memory:app (MEMORY_WORKER=1)
# ---------------------------------------------------------------------------------------------


def vm_rss():
    """This process's resident memory in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def greenlet_kind(glet):
    """Name what a live greenlet runs, from the frames it is suspended in."""
    frame, names = glet.gr_frame, []
    while frame is not None:
        names.append((frame.f_code.co_filename, frame.f_code.co_name))
        frame = frame.f_back
    for filename, name in names:
        if filename.endswith(os.path.join("engineio", "socket.py")) and name in ("writer", "_send_ping"):
            return f"engineio Socket.{name}"
        if filename.endswith(os.path.join("gevent", "pywsgi.py")) and name == "handle":
            return "pywsgi handler (connection; runs engineio's reader loop)"
    if names:
        filename, name = names[-1]
        return f"other: {os.path.relpath(filename, ROOT) if filename.startswith(ROOT) else filename}:{name}"
    return f"other: {type(glet).__module__}.{type(glet).__qualname__} (not started or no frame)"


def dump(path):
    """Write what this worker holds to path (JSON) and path + ".snap" (tracemalloc), atomically."""
    import gc
    import tracemalloc

    import greenlet

    from extensions import socketio

    rss = vm_rss()  # first: what follows allocates
    report = {"pid": os.getpid(), "vm_rss": rss, "tracing": tracemalloc.is_tracing()}
    if tracemalloc.is_tracing():
        report["traced"], report["traced_peak"] = tracemalloc.get_traced_memory()
        report["tracemalloc_own"] = tracemalloc.get_tracemalloc_memory()
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(path + ".snap.tmp")
        os.replace(path + ".snap.tmp", path + ".snap")
        del snapshot
    # gc.get_objects() leaves out what tune_gc() froze at start; all that connections make is in it.
    types, kinds = collections.Counter(), collections.defaultdict(lambda: [0, 0])
    for obj in gc.get_objects():
        kind = type(obj)
        types[f"{kind.__module__}.{kind.__qualname__}"] += 1
        if isinstance(obj, greenlet.greenlet) and not obj.dead:
            entry = kinds[greenlet_kind(obj)]
            entry[0] += 1
            entry[1] += obj._stack_saved  # the part of its C stack greenlet copied to the heap
    server = socketio.server
    report["greenlets"] = {kind: {"count": n, "stack_saved": saved} for kind, (n, saved) in kinds.items()}
    report["types"] = dict(types.most_common(200))
    report["engineio_sockets"] = len(server.eio.sockets)
    report["socketio_rooms"] = {
        namespace: {"rooms": len(rooms), "memberships": sum(len(members) for members in rooms.values())}
        for namespace, rooms in server.manager.rooms.items()
    }
    with open(path + ".tmp", "w") as out:
        json.dump(report, out)
    os.replace(path + ".tmp", path)


def apply_experiments(names):
    """Try a cut in the worker, bench-only, to measure what it saves (MEMORY_EXPERIMENTS=a,b)."""
    import time as clock

    import gevent
    from engineio import packet
    from engineio import socket as engineio_socket
    from gevent import pywsgi

    if "rfile-1k" in names:
        # pywsgi reads each connection through a BufferedReader of 8 KB (sock.makefile('rb', -1)).
        plain_init = pywsgi.WSGIHandler.__init__

        def small_rfile_init(self, sock, address, server, rfile=None):
            plain_init(self, sock, address, server, rfile if rfile is not None else sock.makefile("rb", 1024))

        pywsgi.WSGIHandler.__init__ = small_rfile_init
    if "ping-timer" in names:
        # engineio spawns a greenlet per ping cycle that sleeps ping_interval; a loop timer does the same.
        def schedule_ping(self):
            if self.last_ping:
                self.last_ping = None
                timer = gevent.get_hub().loop.timer(self.server.ping_interval)

                def ping():
                    timer.close()
                    if not self.closing and not self.closed:
                        self.last_ping = clock.time()
                        self.send(packet.Packet(packet.PING))

                timer.start(ping)

        engineio_socket.Socket.schedule_ping = schedule_ping


def worker_app():
    """Start tracemalloc (MEMORY_PROFILE=1) before the app is imported; dump on SIGUSR2 to MEMORY_DUMP_PATH."""
    if os.environ.get("MEMORY_PROFILE") == "1":
        import tracemalloc

        tracemalloc.start(FRAMES)
    import gevent

    from bench.roomcast_wsgi import app as wsgi_app

    if os.environ.get("MEMORY_EXPERIMENTS"):
        apply_experiments(os.environ["MEMORY_EXPERIMENTS"].split(","))

    path = os.environ["MEMORY_DUMP_PATH"]
    # In a greenlet of its own, not in the signal handler: whatever greenlet the signal interrupts goes on.
    gevent.signal_handler(signal.SIGUSR2, lambda: gevent.spawn(dump, path))
    return wsgi_app


if __name__ != "__main__" and os.environ.get("MEMORY_WORKER") == "1":
    app = worker_app()


# ---------------------------------------------------------------------------------------------
# The orchestrator: python bench/memory.py
# ---------------------------------------------------------------------------------------------

# Owners, by the package of the innermost frame of an allocation's traceback that is not generic
# (stdlib helpers are passed over to the code that called them). First match wins.
OWNERS = [
    # Greenlet objects: gevent's Greenlet is compiled (no Python frame), so they show as the call that spawns.
    ("greenlets (objects)", lambda f, n: f.endswith("engineio/server.py") and n == "start_background_task"),
    ("greenlets (objects)", lambda f, n: f.endswith("engineio/async_drivers/gevent.py") and n == "__init__"),
    ("greenlets (objects)", lambda f, n: f.endswith("gevent/baseserver.py") and n in ("_do_read", "do_handle")),
    ("greenlets (objects)", lambda f, n: f.endswith("gevent/pool.py") and n == "spawn"),
    # Logging asks threading.current_thread() for the record's threadName; under gevent each greenlet
    # that logs gets a _DummyThread (and its lock) for as long as it lives.
    (
        "logging: a _DummyThread per greenlet that logs",
        lambda f, n: f.endswith(("gevent/threading.py", "gevent/thread.py")),
    ),
    ("pywsgi / gevent-websocket (handler, WebSocket, socket, buffers)", lambda f, n: "/gevent/" in f),
    ("pywsgi / gevent-websocket (handler, WebSocket, socket, buffers)", lambda f, n: "/geventwebsocket/" in f),
    ("pywsgi / gevent-websocket (handler, WebSocket, socket, buffers)", lambda f, n: "/gunicorn/" in f),
    ("pywsgi / gevent-websocket (handler, WebSocket, socket, buffers)", lambda f, n: f.endswith("gunicorn_worker.py")),
    ("Engine.IO (Socket, queue, packets)", lambda f, n: "/engineio/" in f),
    (
        "Roomcast (BaseSocket dicts, TokenBucket, room index, outbox)",
        lambda f, n: f.endswith("resources/socket/outbox.py"),
    ),
    ("Socket.IO (manager rooms, sessions)", lambda f, n: "/socketio/" in f and "/flask_socketio/" not in f),
    ("Socket.IO (manager rooms, sessions)", lambda f, n: "/bidict/" in f),
    (
        "Roomcast (BaseSocket dicts, TokenBucket, room index, outbox)",
        lambda f, n: f.endswith("resources/socket/manager.py"),
    ),
    ("Flask-SocketIO / Flask (session copies, request contexts)", lambda f, n: "/flask_socketio/" in f),
    ("Flask-SocketIO / Flask (session copies, request contexts)", lambda f, n: "/flask/" in f or "/werkzeug/" in f),
    ("Flask-SocketIO / Flask (session copies, request contexts)", lambda f, n: "/flask_login/" in f),
    (
        "Flask-SocketIO / Flask (session copies, request contexts)",
        lambda f, n: f.endswith("resources/socket/contexts.py"),
    ),
    ("Redis client", lambda f, n: "/redis/" in f),
    ("metrics and logging", lambda f, n: "/prometheus_client/" in f or f.endswith("core/logs.py")),
    ("metrics and logging", lambda f, n: f.endswith("core/metrics.py")),
    ("database session (SQLAlchemy)", lambda f, n: "/sqlalchemy/" in f or "/flask_sqlalchemy/" in f),
    (
        "Roomcast (BaseSocket dicts, TokenBucket, room index, outbox)",
        lambda f, n: f.startswith(ROOT) and "/.venv/" not in f,
    ),
]
SKIP = ("bench/memory.py", "tracemalloc.py")  # the dump's own allocations

# The idle clients: what bench/loadgen.mjs does for each client (socket.io-client over WebSocket, one
# Engine.IO connection each, token auth, source addresses 127.0.0.2-9, `join` acked), with fewer connects
# in flight and a longer timeout, since a worker under tracemalloc connects several times slower.
IDLE_CLIENTS_JS = """
import { createRequire } from "node:module";
const require = createRequire(BENCH_PACKAGE_JSON);
const { io } = require("socket.io-client");
const [url, token, count, room, parallel] = process.argv.slice(2);
const sockets = [];
let next = 0, connected = 0;
const errors = {};
function one(index) {
  return new Promise((resolve) => {
    const socket = io(url + "/bench", {
      transports: ["websocket"], forceNew: true, reconnection: false, timeout: 120000,
      auth: { token }, localAddress: `127.0.0.${2 + (index % 8)}`,
    });
    sockets.push(socket);
    socket.once("connect", () =>
      socket.timeout(120000).emitWithAck("join", { room }).then(
        (ack) => { if (ack.ok) connected++; else errors.join = (errors.join || 0) + 1; resolve(); },
        (error) => { errors[error.message] = (errors[error.message] || 0) + 1; resolve(); }));
    socket.once("connect_error", (error) => { errors[error.message] = (errors[error.message] || 0) + 1; resolve(); });
  });
}
async function lane() { while (next < Number(count)) await one(next++); }
await Promise.all(Array.from({ length: Number(parallel) }, lane));
process.stdout.write(JSON.stringify({ connected, errors }) + "\\n");
process.stdin.resume();  // hold the connections until killed
""".replace("BENCH_PACKAGE_JSON", json.dumps(os.path.join(ROOT, "bench", "package.json")))


def is_generic(filename):
    """Tell whether a frame is a generic helper to pass over (stdlib, except the socket module)."""
    stdlib = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    if filename.startswith("<"):
        return True
    if filename.startswith(stdlib) and "site-packages" not in filename:
        return not filename.endswith(("/socket.py", "/selectors.py"))
    return False


def owner_of(traceback):
    """Return (owner, "file:line" of the allocating frame within that owner) for a tracemalloc Traceback."""
    frames = list(traceback)[::-1]  # innermost first (Traceback runs from the oldest frame)
    for frame in frames:
        if frame.filename.endswith(SKIP):
            return "(the dump itself)", f"{frame.filename}:{frame.lineno}"
    for frame in frames:
        if is_generic(frame.filename):
            continue
        for owner, test in OWNERS:
            if test(frame.filename, function_name(frame)):
                return owner, short(frame.filename, frame.lineno)
        return "other", short(frame.filename, frame.lineno)
    innermost = frames[0] if frames else None
    if innermost is not None and innermost.filename.endswith("/socket.py"):
        return "pywsgi / gevent-websocket (handler, WebSocket, socket, buffers)", short(
            innermost.filename, innermost.lineno
        )
    return "other (stdlib only in the traceback)", short(innermost.filename, innermost.lineno) if innermost else "?"


_FUNCTIONS = {}


def function_name(frame):
    """The name of the function a tracemalloc frame is in (tracemalloc keeps file and line only)."""
    key = (frame.filename, frame.lineno)
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = enclosing_function(frame.filename, frame.lineno)
    return _FUNCTIONS[key]


_TREES = {}


def enclosing_function(filename, lineno):
    """Find the innermost def around a line of a source file."""
    import ast

    if filename not in _TREES:
        try:
            with open(filename) as source:
                tree = ast.parse(source.read())
        except (OSError, SyntaxError, ValueError):
            tree = None
        spans = []
        if tree is not None:
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    spans.append((node.lineno, node.end_lineno, node.name))
        _TREES[filename] = spans
    inside = [span for span in _TREES[filename] if span[0] <= lineno <= span[1]]
    return min(inside, key=lambda span: span[1] - span[0])[2] if inside else None


def short(filename, lineno):
    """A file:line relative to site-packages or the project."""
    marker = "site-packages/"
    if marker in filename:
        filename = filename.split(marker, 1)[1]
    elif filename.startswith(ROOT):
        filename = os.path.relpath(filename, ROOT)
    return f"{filename}:{lineno}"


# Where a greenlet is when it switches away: greenlet copies the part of its C stack that the next
# greenlet will overwrite to the heap (PyMem_Realloc, traced) right there, so tracemalloc files
# those copies under these lines. Their total is known exactly (greenlet's _stack_saved).
SWITCH_POINT = re.compile(r"\._wait\(|hub\.wait\(|queue\.get\(|loop\.run\(|\.switch\(")
STACKS = "greenlets (saved C stacks)"


def source_line(site):
    """The source text of a "file:line" site (relative to site-packages or the project)."""
    filename, _, lineno = site.rpartition(":")
    for base in [ROOT, *[path for path in sys.path if path.endswith("site-packages")]]:
        path = os.path.join(base, filename)
        if os.path.exists(path):
            with open(path) as source:
                lines = source.readlines()
            return lines[int(lineno) - 1] if int(lineno) <= len(lines) else ""
    return ""


def attribute(before_snap, after_snap, connections, stack_saved=0.0):
    """Growth between two snapshots, by owner and by allocation site, in bytes per connection.

    stack_saved: the bytes per connection greenlets hold as saved C stacks; taken out of the
    switch-point sites they were traced at (in proportion to those sites' growth) into their own owner.
    """
    import tracemalloc

    before = tracemalloc.Snapshot.load(before_snap)
    after = tracemalloc.Snapshot.load(after_snap)
    owners = collections.defaultdict(float)
    sites = collections.defaultdict(lambda: [0.0, 0.0, None])  # (owner, site) -> bytes, blocks, a traceback
    for diff in after.compare_to(before, "traceback"):
        if not diff.size_diff:
            continue
        owner, site = owner_of(diff.traceback)
        owners[owner] += diff.size_diff
        entry = sites[(owner, site)]
        entry[0] += diff.size_diff
        entry[1] += diff.count_diff
        if entry[2] is None or abs(diff.size_diff) > entry[2][0]:
            entry[2] = (abs(diff.size_diff), [short(f.filename, f.lineno) for f in list(diff.traceback)[::-1][:12]])
    switch_sites = [key for key, entry in sites.items() if entry[0] > 0 and SWITCH_POINT.search(source_line(key[1]))]
    at_switch_points = sum(sites[key][0] for key in switch_sites)
    moved = min(stack_saved * connections, at_switch_points)
    for key in switch_sites:
        share = moved * sites[key][0] / at_switch_points if at_switch_points else 0
        sites[key][0] -= share
        owners[key[0]] -= share
    if moved:
        owners[STACKS] += moved
        sites[(STACKS, "greenlet/TStackState.cpp:122 (PyMem_Realloc at a switch)")] = [moved, 0.0, (0, [])]
    total = sum(size for owner, size in owners.items() if owner != "(the dump itself)")
    return {
        "stack_saved_per_connection": stack_saved,
        "traced_at_switch_points_per_connection": at_switch_points / connections,
        "switch_point_sites": [site for _, site in switch_sites],
        "traced_growth_per_connection": total / connections,
        "owners": {owner: size / connections for owner, size in sorted(owners.items(), key=lambda kv: -kv[1])},
        "sites": [
            {
                "owner": owner,
                "site": site,
                "bytes_per_connection": size / connections,
                "blocks_per_connection": blocks / connections,
                "traceback": traceback[1],
            }
            for (owner, site), (size, blocks, traceback) in sorted(sites.items(), key=lambda kv: -kv[1][0])
            if abs(size) / connections >= 8
        ],
    }


def main():
    import argparse
    import statistics
    import subprocess
    import tempfile

    sys.path.insert(0, ROOT)
    import requests

    from bench.run import GENERATOR_CONNECTIONS, MeasuredProcess, log, raise_open_files, settle
    from config import THROTTLES
    from devtools.embedded_redis import EmbeddedRedis, free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="idle connections to measure at, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs without tracemalloc per size (the RSS figure)")
    parser.add_argument("--profile-runs", type=int, default=1, help="runs with tracemalloc per size (the breakdown)")
    parser.add_argument("--redis", help="Redis URL (default: an embedded Redis); e.g. redis://127.0.0.1:6379/6")
    parser.add_argument("--parallel", type=int, default=50, help="connects in flight at once (tracemalloc slows them)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (a variant, e.g. GEVENT_TRACK_GREENLET_TREE=0)",
    )
    parser.add_argument("--out", help="JSON results file (default bench/results/<date>-memory.json)")
    parser.add_argument("--reanalyze", metavar="JSON", help="recompute the breakdown of an earlier results file")
    arguments = parser.parse_args()
    if arguments.reanalyze:
        with open(arguments.reanalyze) as earlier:
            results = json.load(earlier)
        for run in results["runs"]:
            if run["profile"]:
                stack_saved = sum(g["stack_saved_bytes"] for g in run["greenlets_per_connection"].values())
                run.update(
                    attribute(run["before"]["snapshot"], run["after"]["snapshot"], run["connected"], stack_saved)
                )
        with open(arguments.reanalyze, "w") as written:
            json.dump(results, written, indent=1)
        print(report_tables(results, statistics))
        return
    sizes = [int(size) for size in arguments.sizes.split(",")]
    if max(sizes) + WARMUP > GENERATOR_CONNECTIONS:
        parser.error(f"at most {GENERATOR_CONNECTIONS - WARMUP} connections (one generator process)")
    raise_open_files()
    tmp = tempfile.mkdtemp(prefix="roomcast-memory-")
    redis = None
    if arguments.redis:
        redis_url = arguments.redis
    else:
        redis = EmbeddedRedis().start()
        redis_url = redis.url
    stamp = time.strftime("%Y%m%d%H%M%S")
    log(f"memory per connection: sizes {sizes}, {arguments.runs} plain + {arguments.profile_runs} traced runs each; "
        f"logs in {tmp}")  # fmt: skip
    generator_log = open(os.path.join(tmp, "loadgen.log"), "ab")

    def start(profile, label):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        instance = os.path.join(tmp, label)
        dump_path = os.path.join(tmp, f"{label}-dump")
        env = {
            **os.environ,
            "PORT": str(port),
            "REDIS_URL": redis_url,
            **dict.fromkeys(THROTTLES, "0"),
            "SECRET_KEY": "bench",
            "ROOMCAST_INSTANCE_PATH": instance,
            "DATABASE_URL": f"sqlite:///{instance}/roomcast.db",
            "REDIS_KEY_PREFIX": f"bench-memory-{stamp}-{label}:",
            "ACCESS_LOG": "",  # 10,000 connects' lines would only fill the log
            # The dump blocks the worker's loop (a snapshot of 10,000 connections' traces takes minutes):
            # gunicorn must not take that for a hung worker.
            "WORKER_TIMEOUT": "1800",
            "MEMORY_WORKER": "1",
            "MEMORY_PROFILE": "1" if profile else "0",
            "MEMORY_DUMP_PATH": dump_path,
            **dict(item.split("=", 1) for item in arguments.env),
        }
        python = os.path.join(ROOT, ".venv", "bin", "python")
        subprocess.run([python, "-m", "flask", "--app", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        command = [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.memory:app"]
        process = MeasuredProcess(label, command, env, __import__("pathlib").Path(tmp))
        process.wait_for_url(url + "/readyz", timeout=90)
        credentials = {"username": "bencher", "password": "bench-password"}
        requests.post(f"{url}/api/users", json=credentials, timeout=10)
        token = requests.post(f"{url}/api/tokens", json=credentials, timeout=10).json()["token"]
        return process, url, token, dump_path

    def take_dump(process, dump_path, name):
        worker = process.child_pids()[0]
        for stale in (dump_path, dump_path + ".snap"):
            if os.path.exists(stale):
                os.remove(stale)
        os.kill(worker, signal.SIGUSR2)
        deadline = time.monotonic() + 600
        while not os.path.exists(dump_path):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker wrote no dump")
            time.sleep(0.2)
        with open(dump_path) as dumped:
            report = json.load(dumped)
        if report["pid"] != worker:
            raise RuntimeError("the dump is from another process")
        if os.path.exists(dump_path + ".snap"):
            os.replace(dump_path + ".snap", f"{dump_path}-{name}.snap")
            report["snapshot"] = f"{dump_path}-{name}.snap"
        return report

    client_script = os.path.join(tmp, "idle_clients.mjs")
    with open(client_script, "w") as script:
        script.write(IDLE_CLIENTS_JS)

    def connect(url, token, count, room):
        """Connect `count` idle clients, each joined to `room`; return their Node process once all are in."""
        command = ["node", client_script, url, token, str(count), room, str(arguments.parallel)]
        generator = subprocess.Popen(command, cwd=os.path.join(ROOT, "bench"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=generator_log, text=True,
                                     start_new_session=True, preexec_fn=raise_open_files)  # fmt: skip
        line = generator.stdout.readline()
        if not line:
            raise RuntimeError(f"the client process exited ({generator.wait()}); see {tmp}/loadgen.log")
        ready = json.loads(line)
        if ready["connected"] != count:
            raise RuntimeError(f"not every client connected and joined: {ready}")
        return generator

    def stop_generator(generator):
        if generator.poll() is None:
            os.killpg(generator.pid, signal.SIGKILL)
        generator.wait()

    def one_run(size, profile, index):
        label = f"{'traced' if profile else 'plain'}-{size}-{index}"
        log(f"{label}: starting the server")
        process, url, token, dump_path = start(profile, label)
        generators = []
        try:
            generators.append(connect(url, token, WARMUP, "warmup"))
            settle(process, 2.0)
            before = take_dump(process, dump_path, "before")
            started = time.monotonic()
            generators.append(connect(url, token, size, "idle"))
            connect_seconds = time.monotonic() - started
            settle(process, 2.0)
            time.sleep(2)
            after = take_dump(process, dump_path, "after")
        finally:
            for generator in generators:
                stop_generator(generator)
            process.stop()
        connected = after["engineio_sockets"] - before["engineio_sockets"]
        result = {
            "size": size,
            "profile": profile,
            "connected": connected,
            "connect_seconds": connect_seconds,
            "before": {k: v for k, v in before.items() if k != "types"},
            "after": {k: v for k, v in after.items() if k != "types"},
            "rss_per_connection": (after["vm_rss"] - before["vm_rss"]) / connected,
            "objects_per_connection": {
                name: (after["types"].get(name, 0) - before["types"].get(name, 0)) / connected
                for name in after["types"]
                if (after["types"].get(name, 0) - before["types"].get(name, 0)) / connected >= 0.5
            },
            "greenlets_per_connection": {},
        }
        for kind, entry in after["greenlets"].items():
            old = before["greenlets"].get(kind, {"count": 0, "stack_saved": 0})
            result["greenlets_per_connection"][kind] = {
                "count": (entry["count"] - old["count"]) / connected,
                "stack_saved_bytes": (entry["stack_saved"] - old["stack_saved"]) / connected,
                "stack_saved_bytes_each": entry["stack_saved"] / entry["count"] if entry["count"] else 0,
            }
        if profile:
            result["traced_growth_per_connection"] = (after["traced"] - before["traced"]) / connected
            result["tracemalloc_own_per_connection"] = (
                after["tracemalloc_own"] - before["tracemalloc_own"]
            ) / connected
            stack_saved = sum(g["stack_saved_bytes"] for g in result["greenlets_per_connection"].values())
            result.update(attribute(before["snapshot"], after["snapshot"], connected, stack_saved))
        log(
            f"{label}: {connected} connected in {connect_seconds:.1f} s; {result['rss_per_connection'] / 1024:.1f} KB "
            f"RSS each" + (f", {result['traced_growth_per_connection'] / 1024:.1f} KB traced each" if profile else "")
        )
        return result

    results = {"date": stamp, "env": arguments.env, "sizes": sizes, "warmup": WARMUP, "frames": FRAMES, "runs": []}
    try:
        for size in sizes:
            for index in range(arguments.profile_runs):
                results["runs"].append(one_run(size, True, index))
            for index in range(arguments.runs):
                results["runs"].append(one_run(size, False, index))
    finally:
        generator_log.close()
        if redis is not None:
            redis.stop()
    out = arguments.out or os.path.join(ROOT, "bench", "results", f"{time.strftime('%Y-%m-%d')}-memory.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as written:
        json.dump(results, written, indent=1)
    print(report_tables(results, statistics))
    log(f"wrote {out}")


def report_tables(results, statistics):
    """The figures as markdown: RSS per connection, greenlets, and the traced breakdown by owner."""
    lines = ["| connections | runs | KB RSS per connection, median (min–max) | greenlets per connection |",
             "|---|---|---|---|"]  # fmt: skip
    for size in results["sizes"]:
        plain = [run for run in results["runs"] if run["size"] == size and not run["profile"]]
        if not plain:
            continue
        kb = [run["rss_per_connection"] / 1024 for run in plain]
        glets = statistics.median(sum(g["count"] for g in run["greenlets_per_connection"].values()) for run in plain)
        lines.append(
            f"| {size} | {len(plain)} | {statistics.median(kb):.1f} ({min(kb):.1f}–{max(kb):.1f}) | {glets:.2f} |"
        )
    for run in results["runs"]:
        if run["profile"]:
            traced = run["traced_growth_per_connection"] / 1024
            lines += ["", f"Traced run, {run['connected']} connections: {traced:.2f} "
                      f"KB traced per connection (RSS of the traced run {run['rss_per_connection'] / 1024:.1f} KB, "
                      f"of which tracemalloc's own tables {run['tracemalloc_own_per_connection'] / 1024:.1f} KB)", "",
                      "| owner | KB per connection |", "|---|---|"]  # fmt: skip
            lines += [f"| {owner} | {size / 1024:.2f} |" for owner, size in run["owners"].items()]
            lines += ["", "| owner | site | bytes per connection | blocks per connection |", "|---|---|---|---|"]
            lines += [f"| {s['owner']} | {s['site']} | {s['bytes_per_connection']:.0f} | "
                      f"{s['blocks_per_connection']:.2f} |" for s in run["sites"][:40]]  # fmt: skip
    for run in results["runs"]:
        lines += ["", f"Greenlets per connection ({'traced' if run['profile'] else 'plain'} run, {run['size']}):"]
        lines += [f"- {kind}: {g['count']:.2f}, C stack saved {g['stack_saved_bytes']:.0f} B per connection "
                  f"({g['stack_saved_bytes_each']:.0f} B each)" for kind, g in run["greenlets_per_connection"].items()
                  if abs(g["count"]) >= 0.01]  # fmt: skip
        break
    return "\n".join(lines)


if __name__ == "__main__":
    main()
