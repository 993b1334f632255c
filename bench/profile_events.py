"""Server CPU per 1,000 acknowledged events and per 1,000 connects, and where it goes, on the real stack.

    .venv/bin/python bench/profile_events.py [--events 10000] [--connects 1000] [--runs 3] [--profile]

Starts Roomcast as bench/run.py does (gunicorn -c gunicorn.conf.py, GeventWebSocketWorker, one worker,
bench/roomcast_wsgi.py with its /bench namespace, SQLite, an embedded Redis), but with the shipped
limits on (CONNECTIONS_PER_USER, USER_EVENTS_PER_10S... set high enough never to bite: one user makes
every connection), so their Redis calls are in the path; --no-throttles turns them off as make bench does.

Clients are raw Engine.IO v4 / Socket.IO v5 over WebSocket (websocket-client, in threads): the
least a client can do, so the machine's two cores go to the server. Each run: a fresh server,
a warm-up (50 connects, 1,000 events), then

- events: --clients connections, each sending `echo` with an ack and waiting for it, --events in all;
- connects: --connects WebSocket connects to /bench with token auth (Engine.IO open, then the
  namespace's CONNECT and its answer), --parallel at a time, held open; then all closed (disconnects).

What is measured is the gunicorn worker's CPU time (the sum over its threads of
/proc/<pid>/task/<tid>/schedstat, in ns), over each phase, less what the idle worker uses in as
much time (its timers: Redis listener, job sweeper, heartbeat), per 1,000. Wall time and client
CPU do not enter it, so a busy machine changes it little. Medians over --runs.

--profile adds one run under py-spy (bench/.venv-peers, `make bench-deps`) sampling the worker in
each phase, and prints where the CPU goes by owner (engineio, socketio, flask-socketio, Flask,
Roomcast, logging, metrics, Redis, ...): each sample is given to the innermost frame that is not
a generic standard-library helper.
"""

import argparse
import collections
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import websocket

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.run import MeasuredProcess, log, raise_open_files  # noqa: E402
from config import THROTTLES  # noqa: E402
from devtools.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

PY_SPY = BENCH / ".venv-peers" / "bin" / "py-spy"
NAMESPACE = "/bench"
HIGH = "1000000000"  # a limit that is on but never bites


# --------------------------------------------------------------------------- the server


def start_server(redis_url, tmp, label, throttles, root=ROOT):
    """Start gunicorn with the checkout's bench/roomcast_wsgi.py on a free port; return (process, url, token)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    instance = Path(tmp) / label
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": redis_url,
        **dict.fromkeys(THROTTLES, HIGH if throttles else "0"),
        # Each client sends as fast as its acks come back; the per-connection bucket still runs.
        "SOCKET_RATE_PER_SECOND": HIGH,
        "SOCKET_RATE_BURST": HIGH,
        "SECRET_KEY": "bench",
        "ROOMCAST_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'roomcast.db'}",
        "REDIS_KEY_PREFIX": f"bench-profile-{label}:",
        "ACCESS_LOG": "-",  # as shipped: a line per connection, written when it closes
    }
    venv = root / ".venv" if (root / ".venv").exists() else ROOT / ".venv"
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "flask", "--app", "app", "db", "upgrade"], env=env, cwd=root, check=True,
                   capture_output=True)  # fmt: skip
    command = [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.roomcast_wsgi:app"]
    process = MeasuredProcess(label, command, env, Path(tmp), cwd=root)
    process.wait_for_url(url + "/readyz", timeout=90)
    credentials = {"username": "bencher", "password": "bench-password"}
    requests.post(f"{url}/api/users", json=credentials, timeout=10)
    token = requests.post(f"{url}/api/tokens", json=credentials, timeout=10).json()["token"]
    return process, url, token


def user_system_ticks(pid):
    """User and system CPU time of a process (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ns(pid):
    """CPU time used so far by every thread of a process, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # a thread that just ended
            pass
    return total


class Meter:
    """The worker's CPU over a phase, less its idle rate over the same wall time."""

    def __init__(self, pid):
        self.pid = pid
        start, began = cpu_ns(pid), time.monotonic()
        time.sleep(3)
        self.idle_ns_per_s = (cpu_ns(pid) - start) / (time.monotonic() - began)

    def __enter__(self):
        self.cpu, self.ticks, self.wall = cpu_ns(self.pid), user_system_ticks(self.pid), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.wall
        self.cpu_s = max(0.0, (cpu_ns(self.pid) - self.cpu - self.idle_ns_per_s * self.wall)) / 1e9
        user, system = (after - before for after, before in zip(user_system_ticks(self.pid), self.ticks, strict=True))
        self.system_share = system / max(1, user + system)  # the kernel's part: socket I/O, mostly


def settle(pid, quiet_ns_per_s, seconds=0.5, limit=30):
    """Wait until the worker's CPU rate falls back near idle (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    last = cpu_ns(pid)
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = cpu_ns(pid)
        if now - last < (quiet_ns_per_s + 20e6) * seconds:  # within 2 % of a core of idle
            return
        last = now


# --------------------------------------------------------------------------- the clients


class Client:
    """One Socket.IO client on one WebSocket, connected to /bench with a token."""

    def __init__(self, url, token):
        self.ws = websocket.create_connection(
            url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket", timeout=60
        )
        opening = self.ws.recv()
        if not opening.startswith("0{"):
            raise RuntimeError(f"no Engine.IO open packet: {opening!r}")
        self.ws.send(f"40{NAMESPACE}," + json.dumps({"token": token}))
        answer = self.receive("4")
        if not answer.startswith(f"40{NAMESPACE},"):
            raise RuntimeError(f"connect refused: {answer!r}")
        self.ids = itertools.count()

    def receive(self, prefix):
        """Return the next frame starting with prefix, answering pings meanwhile."""
        while True:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
            elif frame.startswith(prefix):
                return frame

    def echo(self):
        """Send one acked echo and wait for its ack."""
        ack_id = next(self.ids)
        self.ws.send(f'42{NAMESPACE},{ack_id}["echo",{{"sent":{time.time()},"data":"profile"}}]')
        ack = self.receive(f"43{NAMESPACE},{ack_id}[")
        if '"ok":true' not in ack:
            raise RuntimeError(f"echo failed: {ack!r}")

    def close(self):
        """Close the WebSocket (the server sees the client go)."""
        self.ws.close()


def in_threads(count, job, items):
    """Run job(item) for every item over `count` threads; return the results in order."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(job, items))


def paced(count, per_second, start):
    """Yield count times, the n-th not before start + n / per_second (at once when behind)."""
    for n in range(count):
        delay = start + n / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n


def events_phase(clients, events, per_second):
    """The clients send `events` acked echoes in all, at per_second together, each waiting for its ack."""
    shares = [events // len(clients) + (n < events % len(clients)) for n in range(len(clients))]
    start = time.monotonic()

    def send(job):
        index, client, count = job
        for _ in paced(count, per_second / len(clients), start + index / per_second):
            client.echo()

    jobs = [(n, client, count) for n, (client, count) in enumerate(zip(clients, shares, strict=True))]
    in_threads(len(clients), send, jobs)


def connect_many(url, token, count, parallel, per_second=None):
    """Open `count` clients, `parallel` at a time (at per_second in all, if given); return them."""
    shares = [count // parallel + (n < count % parallel) for n in range(parallel)]
    start = time.monotonic()

    def open_share(job):
        index, share = job
        if per_second is None:
            return [Client(url, token) for _ in range(share)]
        return [Client(url, token) for _ in paced(share, per_second / parallel, start + index / per_second)]

    opened = in_threads(parallel, open_share, list(enumerate(shares)))
    return [client for group in opened for client in group]


def close_all(clients, parallel=8):
    """Close every client."""
    in_threads(
        parallel, lambda group: [client.close() for client in group], [clients[n::parallel] for n in range(parallel)]
    )


# --------------------------------------------------------------------------- py-spy, by owner

# Where a frame's file lives -> who owns the CPU spent there. First match wins.
OWNERS = [
    ("/gevent/_socketcommon.py", None),  # a socket call: the kernel's time, for whoever sends or reads
    ("/gevent/_socket3.py", None),
    ("/engineio/", "engineio"),
    ("/flask_socketio/", "flask-socketio"),
    ("/socketio/", "socketio"),
    ("/geventwebsocket/", "gevent-websocket"),
    ("/gevent/", "gevent (pywsgi, hub)"),
    ("/greenlet/", "gevent (pywsgi, hub)"),
    ("/gunicorn/", "gunicorn (access log)"),
    ("/flask_login/", "Flask (contexts, session, login)"),
    ("/flask_sqlalchemy/", "SQLAlchemy"),
    ("/flask/", "Flask (contexts, session, login)"),
    ("/werkzeug/", "Flask (contexts, session, login)"),
    ("/itsdangerous/", "token check (itsdangerous)"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/redis/", "Redis client"),
    ("/prometheus_client/", "metrics (prometheus_client)"),
    ("/pythonjsonlogger/", "logging"),
    ("/logging/", "logging"),
    ("/json/", "JSON (stdlib)"),
    ("resources/socket/base.py", "Roomcast: BaseSocket"),
    ("core/logs.py", "Roomcast: log context"),
    ("core/validation.py", "Roomcast: BaseSocket"),
    ("bench/namespace.py", "Roomcast: BaseSocket"),
    ("resources/socket/", "Roomcast: socket internals (outbox, handshake, manager, packets)"),
    ("services/", "Roomcast: services (accounts, throttle)"),
    ("core/", "Roomcast: core"),
]
# Standard-library helpers whose time belongs to whoever called them.
GENERIC = ("contextlib", "functools", "threading", "queue", "weakref", "_weakrefset", "abc", "typing", "copy",
           "socket", "selectors", "urllib", "uuid", "base64", "hmac", "hashlib", "datetime", "enum", "collections",
           "time", "random", "re", "string", "codecs", "encodings", "operator", "types", "inspect", "http")  # fmt: skip


def frame_file(frame):
    """The file of a py-spy raw frame 'function (path:line)'."""
    inside = frame.rsplit(" (", 1)[-1].rstrip(")")
    return inside.rsplit(":", 1)[0]


def owner_of(stack):
    """The owner of one sample: its innermost frame that is not a generic stdlib helper."""
    for frame in reversed(stack):
        path = frame_file(frame)
        owner = next((owner for marker, owner in OWNERS if marker in path), False)
        if owner is None:
            continue
        if owner:
            return owner
        module = Path(path).parts
        stdlib = "site-packages" not in path and not path.startswith(str(ROOT))
        if (
            stdlib
            and module
            and (module[-1].removesuffix(".py") in GENERIC or any(p in GENERIC for p in module[-3:-1]))
        ):
            continue
        return "other stdlib" if stdlib else f"other: {path}"
    return "unknown"


# Named pieces of the path, counted wherever they are in a sample's stack (inclusive): a frame is
# (function, file) and matches when its function ends with the name and its file contains the path.
PIECES = {
    "request context: build, push, pop": [("RequestContext.push", "flask/ctx.py"),
                                          ("RequestContext.pop", "flask/ctx.py"),
                                          ("RequestContext.__init__", "flask/ctx.py"),
                                          ("EventContext.__init__", "contexts.py")],
    "... of which URL adapter and route match": [("Flask.create_url_adapter", "flask/app.py"),
                                                 ("RequestContext.match_request", "flask/ctx.py")],
    "... of which session open (cookie)": [("open_session", "sessions.py"), ("open_session", "contexts.py")],
    "... of which teardown (DB session remove, signals)": [("Flask.do_teardown_request", "flask/app.py"),
                                                           ("Flask.do_teardown_appcontext", "flask/app.py")],
    "metrics (labels, inc)": [("", "prometheus_client/")],
    "log context bind/unbind": [("bind", "core/logs.py"), ("unbind", "core/logs.py"),
                                ("log_context", "core/logs.py")],
    "log lines (format, write)": [("Logger._log", "logging/__init__.py")],
    "Redis commands (redis-py)": [("execute_command", "redis/client.py"), ("Pipeline.execute", "redis/client.py")],
    "SQLAlchemy (any)": [("", "sqlalchemy/")],
    "token signature (itsdangerous)": [("", "itsdangerous/")],
    "payload_size (the payload encoded again)": [("payload_size", "resources/socket/base.py")],
    "payload validation": [("validate", "core/validation.py")],
    "packet decode (Engine.IO, Socket.IO, JSON)": [("Packet.__init__", "engineio/packet.py"),
                                                  ("Packet.__init__", "socketio/packet.py")],
    "ack packet encode (JSON)": [("Packet.encode", "socketio/packet.py")],
    "WebSocket frame read (gevent-websocket)": [("WebSocket.read_message", "geventwebsocket/websocket.py")],
    "... of which UTF-8 check": [("Utf8Validator.validate", "utf8validator.py"),
                                 ("Utf8Check.validate", "gunicorn_worker.py")],
    "... of which unmasking": [("Header.mask_payload", "geventwebsocket/websocket.py"),
                               ("unmask_payload", "gunicorn_worker.py")],
    "WebSocket frame write (gevent-websocket)": [("WebSocket.send", "geventwebsocket/websocket.py")],
    "Engine.IO writer greenlet": [("writer", "engineio/socket.py")],
    "HTTP request parsing (pywsgi)": [("WSGIHandler.read_request", "gevent/pywsgi.py")],
    "WebSocket handshake (gevent-websocket)": [("WebSocketHandler.upgrade_connection", "geventwebsocket/handler.py")],
    "gevent hub (event loop, switches)": [("Hub.run", "gevent/hub.py")],
}  # fmt: skip


def frame_parts(frame):
    """Split a py-spy raw frame 'function (path:line)' into (function, path)."""
    function, _, inside = frame.rpartition(" (")
    return function, inside.rstrip(")").rsplit(":", 1)[0]


def piece_matches(parts, needles):
    """Tell whether any frame (function, path) of a stack matches one of a piece's (function, path) needles."""
    return any(function.endswith(name) and path in file for function, file in parts for name, path in needles)


def read_raw(path):
    """Read py-spy's raw output: (frames innermost last, count) per distinct stack."""
    stacks = []
    for line in Path(path).read_text().splitlines():
        trace, _, count = line.rpartition(" ")
        if trace and count.isdigit():
            stacks.append((trace.split(";"), int(count)))
    return stacks


def breakdown(path):
    """Return ({owner: share of samples}, {piece: share}, samples) of a py-spy raw file."""
    stacks = read_raw(path)
    owners, pieces = collections.Counter(), collections.Counter()
    stacks = [(frames, count) for frames, count in stacks if not any("gevent/threadpool.py" in f for f in frames)]
    total = sum(count for _, count in stacks) or 1  # the event loop's thread only: not the pool's idle threads
    for frames, count in stacks:
        owners[owner_of(frames)] += count
        parts = [frame_parts(frame) for frame in frames]
        for piece, needles in PIECES.items():
            if piece_matches(parts, needles):
                pieces[piece] += count
    return ({k: v / total for k, v in owners.items()}, {k: v / total for k, v in pieces.items()}, total)


class Sampler:
    """py-spy recording the worker while a phase runs."""

    def __init__(self, pid, out):
        self.out = out
        self.popen = subprocess.Popen(
            [str(PY_SPY), "record", "-p", str(pid), "-r", "500", "-f", "raw", "--gil", "--full-filenames", "-o", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # attached

    def stop(self):
        """Stop sampling; py-spy writes its file on SIGINT."""
        self.popen.send_signal(signal.SIGINT)
        self.popen.wait(timeout=60)


# --------------------------------------------------------------------------- a run


def one_run(arguments, redis_url, tmp, label, profile, root=ROOT):
    """Start a server, warm it up, measure events then connects; return the figures."""
    process, url, token = start_server(redis_url, tmp, label, arguments.throttles, root)
    result = {"label": label}
    try:
        worker = process.child_pids()[0]
        warm = connect_many(url, token, 50, 10)
        events_phase(warm, 1000, 2000)
        close_all(warm)
        clients = connect_many(url, token, arguments.clients, arguments.clients)
        meter = Meter(worker)

        def phase(name, count, work):
            """Measure work() (count of them) on a settled worker, under py-spy when profiling; return its result."""
            settle(worker, meter.idle_ns_per_s)
            sampler = Sampler(worker, f"{tmp}/{label}-{name}.txt") if profile else None
            with meter:
                done = work()
            if sampler:
                sampler.stop()
                result[f"{name}_profile"] = sampler.out
            result[f"{name}_cpu_per_1000"] = 1000 * meter.cpu_s / count
            result[f"{name}_per_second"] = count / meter.wall
            result[f"{name}_system_share"] = meter.system_share
            return done

        phase("events", arguments.events, lambda: events_phase(clients, arguments.events, arguments.rate))
        close_all(clients)

        def connect():
            return connect_many(url, token, arguments.connects, arguments.parallel, arguments.connect_rate)

        clients = phase("connects", arguments.connects, connect)
        settle(worker, meter.idle_ns_per_s)
        with meter:
            close_all(clients)
            settle(worker, meter.idle_ns_per_s, seconds=0.25)
        result["disconnects_cpu_per_1000"] = 1000 * meter.cpu_s / arguments.connects
    finally:
        process.stop()
    return result


def print_profile(name, path, cpu_per_1000, system_share):
    """Print a phase's breakdown: share of samples and CPU-ms per 1,000 by owner, then named pieces.

    py-spy samples (--gil) only Python holding the GIL: user space. The kernel's part (system time)
    is shown apart and the samples share out the rest.
    """
    owners, pieces, samples = breakdown(path)
    print(f"\n{name}: {samples} samples, {cpu_per_1000:.3f} CPU-s per 1000 (unprofiled runs' median), "
          f"{system_share:.0%} of it in the kernel: {system_share * cpu_per_1000 * 1000:.0f} ms")  # fmt: skip
    cpu_per_1000 *= 1 - system_share
    print("| owner | share | CPU-ms per 1000 |\n|---|---|---|")
    for owner, share in sorted(owners.items(), key=lambda item: -item[1]):
        print(f"| {owner} | {share:.1%} | {share * cpu_per_1000 * 1000:.0f} |")
    print("\n| piece (inclusive, anywhere in the stack) | share | CPU-ms per 1000 |\n|---|---|---|")
    for piece in PIECES:
        if pieces.get(piece):
            print(f"| {piece} | {pieces[piece]:.1%} | {pieces[piece] * cpu_per_1000 * 1000:.0f} |")


def report(summary, profiled):
    """Print the breakdowns of a profiled run, scaled by the measured runs' medians."""
    median = lambda key: summary[key]["median"]  # noqa: E731
    print_profile("acked events", profiled["events_profile"], median("events_cpu_per_1000"),
                  median("events_system_share"))  # fmt: skip
    print_profile("connects", profiled["connects_profile"], median("connects_cpu_per_1000"),
                  median("connects_system_share"))  # fmt: skip


FIGURES = ("events_cpu_per_1000", "connects_cpu_per_1000", "disconnects_cpu_per_1000", "events_system_share",
           "connects_system_share")  # fmt: skip


def summarize(runs):
    """Return {figure: {median, min, max}} over runs."""
    return {
        key: {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for key in FIGURES
        if (values := [run[key] for run in runs])
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="acked events per run")
    parser.add_argument("--clients", type=int, default=10, help="connections the events are spread over")
    parser.add_argument("--connects", type=int, default=1000, help="connects per run")
    parser.add_argument("--parallel", type=int, default=10, help="connects in flight at once")
    parser.add_argument("--rate", type=float, default=1000, help="events per second, all clients together")
    parser.add_argument("--connect-rate", type=float, default=200, help="connects per second")
    parser.add_argument("--runs", type=int, default=3, help="measured runs (the figures are their medians)")
    parser.add_argument("--profile", action="store_true", help="one more run under py-spy: the breakdown by owner")
    parser.add_argument("--no-throttles", dest="throttles", action="store_false",
                        help="the shared limits off (0), as make bench runs; default: on, never biting")  # fmt: skip
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="another checkout (git worktree add DIR COMMIT) to run in turn with this one, "
                             "run for run, so both see the same machine")  # fmt: skip
    parser.add_argument("--out", help="write the runs' figures to this JSON file")
    parser.add_argument("--reanalyze", metavar="JSON", help="print the breakdown of an earlier --profile run's file")
    arguments = parser.parse_args()
    if arguments.reanalyze:
        record = json.loads(Path(arguments.reanalyze).read_text())
        report(record["summary"]["this"], record["profiled"])
        return
    raise_open_files()
    tmp = tempfile.mkdtemp(prefix="roomcast-profile-")
    redis = EmbeddedRedis().start()
    stamp = time.strftime("%H%M%S")
    trees = {"this": ROOT} if arguments.baseline is None else {"baseline": arguments.baseline.resolve(), "this": ROOT}
    log(f"profile_events: {arguments.runs} runs of {arguments.events} events and {arguments.connects} connects "
        f"per tree ({', '.join(trees)}), throttles {'on' if arguments.throttles else 'off'}; "
        f"logs in {tmp}")  # fmt: skip
    runs = {name: [] for name in trees}
    try:
        for index in range(arguments.runs):
            for name, root in trees.items():
                figures = one_run(arguments, redis.url, tmp, f"{name}{stamp}-{index}", profile=False, root=root)
                runs[name].append(figures)
                log(f"{name} run {index + 1}: events {figures['events_cpu_per_1000']:.3f} CPU-s per 1000 "
                    f"({figures['events_per_second']:.0f}/s), connects {figures['connects_cpu_per_1000']:.3f} "
                    f"({figures['connects_per_second']:.0f}/s), "
                    f"disconnects {figures['disconnects_cpu_per_1000']:.3f}")  # fmt: skip
        profiled = one_run(arguments, redis.url, tmp, f"spy{stamp}", profile=True) if arguments.profile else None
    finally:
        redis.stop()
    summary = {name: summarize(tree_runs) for name, tree_runs in runs.items()}
    for key in FIGURES:
        cells = [f"{name} {summary[name][key]['median']:.3f} ({summary[name][key]['min']:.3f}-"
                 f"{summary[name][key]['max']:.3f})" for name in trees]  # fmt: skip
        print(f"{key}: " + ", ".join(cells))
    if profiled:
        report(summary["this"], profiled)
    if arguments.out:
        settings = {**vars(arguments), "baseline": str(arguments.baseline)}
        record = {"arguments": settings, "runs": runs, "summary": summary, "profiled": profiled}
        Path(arguments.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
