"""Run the benchmark: every scenario against every server in turn, on loopback, in one run.

    python bench/run.py [--quick] [--servers roomcast,node,...]

Writes bench/results/<date>[-quick].json and .md and prints progress as it goes.
See bench/README.md for what is measured and how.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from config import THROTTLES  # noqa: E402
from devtools.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from devtools.processes import Process  # noqa: E402

PROJECT_PYTHON = str(ROOT / ".venv" / "bin" / "python")
SIMPLE_PYTHON = str(BENCH / ".venv-simple" / "bin" / "python")
PEERS_PYTHON = str(BENCH / ".venv-peers" / "bin" / "python")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OPEN_FILES = 200_000
GENERATOR_CONNECTIONS = 12_000  # this machine caps open files at 20,000 per process

SIZES = {
    "quick": {
        "repeats": 2,
        "capacity": [1000],
        "rooms": [200, 1000],
        "ticks": 10,
        "ack": [100, 400],
        "ack_seconds": 2,
        "latency_jobs": 1,
        "burst": 20,
    },
    # Before/after comparisons of Roomcast's own code: enough load that per-event costs dominate.
    "profile": {
        "repeats": 3,
        "capacity": [3000],
        "rooms": [1000],
        "ticks": 10,
        "ack": [1000],
        "ack_seconds": 5,
        "latency_jobs": 1,
        "burst": 20,
    },
    "full": {
        "repeats": 3,
        "capacity": [1000, 5000, 10000, 20000],
        "rooms": [1000, 5000, 10000],
        "ticks": 10,
        # Raised until p99 passes 50 ms or a step fails; the top is what one generator process can hold.
        "ack": [500, 1000, 2000, 4000, 6000, 8000, 11000],
        "ack_seconds": 4,
        "latency_jobs": 3,
        "burst": 200,
    },
}


def raise_open_files():
    """Let a child hold many connections (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, max(hard, OPEN_FILES)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def log(message):
    """Print progress with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class MeasuredProcess(Process):
    """A server under test: may hold many connections; its process tree's memory and CPU can be read."""

    def __init__(self, name, command, env, log_dir, **popen_options):
        super().__init__(name, command, env, log_dir, preexec_fn=raise_open_files, **popen_options)

    def pids(self):
        """Return this process and all its descendants."""
        children = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError):
                    continue
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], [self.popen.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_bytes(self):
        """Resident memory of the whole process tree."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def cpu_seconds(self):
        """CPU time used so far by the whole process tree (live processes)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError):
                pass
        return total / CLOCK_TICKS


class Server:
    """One server under test: how to start it, and how to emit to its rooms through Redis."""

    def __init__(self, name, label, kind, **options):
        self.name, self.label, self.kind, self.options = name, label, kind, options

    def start(self, run):
        """Start the server on a free port; return (process, url, token, env)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PORT": str(port), "REDIS_URL": run.redis_url}
        if self.kind == "node":
            env["ADAPTER_KEY"] = self.channel(run)
            command = ["node", str(BENCH / "servers" / "node_server.mjs")]
            health = "/healthz"
        elif self.kind == "asyncio":
            env["CHANNEL"] = self.channel(run)
            command = [PEERS_PYTHON, str(BENCH / "servers" / "asyncio_server.py")]
            health = "/healthz"
        else:
            instance = run.tmp / f"{self.name}-{port}"
            env.update(
                {
                    # Thousands of connections of one user, acking as fast as they can.
                    **dict.fromkeys(THROTTLES, "0"),
                    "SECRET_KEY": "bench",
                    "ROOMCAST_INSTANCE_PATH": str(instance),
                    "DATABASE_URL": f"sqlite:///{instance / 'roomcast.db'}",
                    "REDIS_KEY_PREFIX": self.channel(run).removesuffix("socketio"),
                    **self.options.get("env", {}),
                }
            )
            python = SIMPLE_PYTHON if self.options.get("simple") else PROJECT_PYTHON
            subprocess.run(
                [python, "-m", "flask", "--app", "app", "db", "upgrade"],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            command = [
                python,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                *self.options.get("args", []),
                "bench.roomcast_wsgi:app",
            ]
            health = "/readyz"
        process = MeasuredProcess(f"{self.name}-{port}", command, env, run.tmp)
        process.wait_for_url(url + health, timeout=60)
        return process, url, self.token(url) if self.kind == "roomcast" else None, env

    def channel(self, run):
        """The Redis channel (Python servers) or adapter key (Node) of this server in this run."""
        return f"bench-{run.stamp}-{self.name}:socketio"

    def token(self, url):
        """Register a bench user and return its token (Roomcast's /bench authenticates like /chat)."""
        credentials = {"username": "bencher", "password": "bench-password"}
        requests.post(f"{url}/api/users", json=credentials, timeout=10)
        return requests.post(f"{url}/api/tokens", json=credentials, timeout=10).json()["token"]

    def emit_command(self, run, room, count):
        """The command that emits `count` ticks to `room` through Redis, as the server's peers do."""
        if self.kind == "node":
            return ["node", str(BENCH / "emit_node.mjs"), run.redis_url, self.channel(run), room, str(count)]
        command = [PROJECT_PYTHON, "-m", "bench.emit_python", run.redis_url, self.channel(run)]
        if self.kind == "roomcast":  # bench/namespace.py joins /bench rooms as chat rooms
            return [*command, f"room:{room}", str(count), "--roomcast"]
        return [*command, room, str(count)]


SERVERS = [
    Server("roomcast", "Roomcast as shipped (gunicorn, GeventWebSocketWorker, 1 worker)", "roomcast"),
    Server(
        "roomcast-simple",
        "Roomcast on gunicorn -k gevent + simple-websocket",
        "roomcast",
        simple=True,
        args=["-k", "gevent"],
    ),
    Server(
        "roomcast-ws2",
        "Roomcast WebSocket-only, 2 workers",
        "roomcast",
        env={"WEBSOCKET_ONLY": "1", "WEB_CONCURRENCY": "2"},
    ),
    Server("asyncio", "python-socketio asyncio on uvicorn", "asyncio"),
    Server("node", "Node.js socket.io 4 + redis-adapter", "node"),
]


class Loadgen:
    """One run of bench/loadgen.mjs: send it go-aheads, read its JSON lines."""

    def __init__(self, run, scenario, url, token, **options):
        command = ["node", str(BENCH / "loadgen.mjs"), scenario, "--url", url]
        if token:
            command += ["--token", token]
        for name, value in options.items():
            command += [
                f"--{name.replace('_', '-')}",
                ",".join(map(str, value)) if isinstance(value, list) else str(value),
            ]
        self.popen = subprocess.Popen(
            command,
            cwd=BENCH,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=run.loadgen_log,
            text=True,
            start_new_session=True,
            preexec_fn=raise_open_files,
        )

    def read(self):
        """Return the next JSON line; fail on an error line or an early exit."""
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self.popen.wait()}); see loadgen.log")
        data = json.loads(line)
        if data["event"] == "error":
            raise RuntimeError(f"the load generator failed: {data['message']}")
        return data

    def go(self, word="go"):
        """Let it continue past a step or ready line ("stop" ends a capacity ramp)."""
        self.popen.stdin.write(f"{word}\n")
        self.popen.stdin.flush()

    def finish(self):
        """Wait for it to exit."""
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def settle(process, seconds=1.0):
    """Wait until the server's CPU use calms down (at most 5 x seconds), for a steady memory reading."""
    deadline = time.monotonic() + seconds * 5
    last = process.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(seconds / 4)
        now = process.cpu_seconds()
        if now - last < seconds / 40:  # under 10 % of a core
            return
        last = now


def percentiles(values):
    """Return {count, p50, p99} of a list of numbers, as the load generator computes them."""
    ordered = sorted(values)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else None  # noqa: E731
    return {"count": len(ordered), "p50": pick(50), "p99": pick(99)}


def capacity(run, server, process, url, token):
    """Ramp idle connections; memory per connection, connect rate and latency, failures."""
    settle(process)
    baseline = process.rss_bytes()
    # One generator process holds at most GENERATOR_CONNECTIONS: open files are capped per process.
    count = -(-run.size["capacity"][-1] // GENERATOR_CONNECTIONS)
    generators = [
        Loadgen(
            run, "capacity", url, token, steps=[step // count + (n < step % count) for step in run.size["capacity"]]
        )
        for n in range(count)
    ]
    steps = []
    cpu_before = process.cpu_seconds()
    while (lines := [generator.read() for generator in generators])[0]["event"] == "step":
        timings = [ms for line in lines for ms in line.pop("timings")]
        step = {
            "target": sum(line["target"] for line in lines),
            "connected": sum(line["connected"] for line in lines),
            "failed": sum(line["failed"] for line in lines),
            "errors": [line["errors"] for line in lines if line["errors"]],
            "connect_rate": sum(line["connect_rate"] for line in lines),  # the generators run side by side
            "connect_ms": percentiles(timings),
            "server_cpu_per_1000": 1000 * (process.cpu_seconds() - cpu_before) / max(1, len(timings)),
        }
        settle(process)
        rss = process.rss_bytes()
        step["rss_mb"] = rss / 2**20
        step["kb_per_connection"] = (rss - baseline) / 1024 / max(1, step["connected"])
        steps.append(step)
        log(
            f"  capacity {step['connected']:>6} connected ({step['failed']} failed): "
            f"{step['connect_rate']:.0f}/s, p99 {step['connect_ms']['p99'] or 0:.1f} ms, "
            f"{step['kb_per_connection']:.1f} KB each, {step['server_cpu_per_1000']:.2f} CPU-s per 1000"
        )
        cpu_before = process.cpu_seconds()
        for generator in generators:
            generator.go("stop" if step["failed"] else "go")  # once full, larger steps mean nothing more
    for generator in generators:
        generator.finish()
    shares = [line["generator"]["cpu_share"] for line in lines]
    return {"baseline_rss_mb": baseline / 2**20, "steps": steps, "generator": {"cpu_share": sum(shares)}}


def fanout(run, server, process, url, token):
    """Rooms of several sizes; an external emitter publishes through Redis."""
    results = {}
    count = run.size["ticks"]
    loadgen = Loadgen(run, "fanout", url, token, sizes=run.size["rooms"], count=count)
    ready = loadgen.read()
    for size in run.size["rooms"]:
        settle(process)
        cpu_before = process.cpu_seconds()
        loadgen.go()
        loadgen.read()  # armed: it counts what arrives from now on
        emitter = server.emit_command(run, f"fan{size}", count)
        subprocess.run(emitter, check=True, capture_output=True, timeout=60, cwd=ROOT)
        result = loadgen.read()
        result["server_cpu_seconds"] = process.cpu_seconds() - cpu_before
        result["server_cpu_per_1000"] = 1000 * result["server_cpu_seconds"] / max(1, result["delivered"])
        result["joined"] = ready["members"]
        results[str(size)] = result
        last_member = result["to_last_member_ms"]
        log(
            f"  fan-out {size:>6}: {result['delivered']}/{result['expected']} delivered, "
            f"{result['deliveries_per_second'] or 0:.0f}/s, last member p50 {last_member['p50'] or 0:.1f} "
            f"p99 {last_member['p99'] or 0:.1f} ms, "
            f"{result['server_cpu_per_1000']:.3f} CPU-s per 1000, generator {result['generator']['cpu_share']:.0%}"
        )
    loadgen.finish()
    return results


def ack(run, server, process, url, token):
    """K clients each emit with an ack once a second; K raised until p99 passes 50 ms."""
    limit = 50
    loadgen = Loadgen(run, "ack", url, token, steps=run.size["ack"], seconds=run.size["ack_seconds"], limit=limit)
    steps = []
    while (line := loadgen.read())["event"] in ("window", "step"):
        if line["event"] == "window":
            cpu_before = process.cpu_seconds()
            continue
        line["server_cpu_per_1000"] = 1000 * (process.cpu_seconds() - cpu_before) / max(1, line["rtt_ms"]["count"])
        steps.append(line)
        log(
            f"  ack {line['clients']:>6} clients: {line['acks_per_second']:.0f} acks/s, "
            f"p50 {line['rtt_ms']['p50'] or 0:.1f} p99 {line['rtt_ms']['p99'] or 0:.1f} ms, "
            f"{line['failures']} failed, {line['server_cpu_per_1000']:.3f} CPU-s per 1000, "
            f"generator {line['generator']['cpu_share']:.0%}"
        )
    loadgen.finish()
    within = [s for s in steps if s["rtt_ms"]["p99"] is not None and s["rtt_ms"]["p99"] <= limit and not s["failures"]]
    return {
        "limit_ms": limit,
        "steps": steps,
        "sustained": within[-1] if within else None,
        "generator": line["generator"],
    }


def jobs(run, server, process, url, token, env):
    """Celery sleep jobs emitting progress: emit-to-client latency, jobs per second, 1 and 2 workers."""
    results = {}
    workers = []
    try:
        for count in (1, 2):
            name = f"bench{len(workers)}"
            command = [
                PROJECT_PYTHON,
                "-m",
                "celery",
                "-A",
                "celery_worker",
                "worker",
                "--loglevel=INFO",
                f"--hostname={name}@%h",
            ]
            workers.append(MeasuredProcess(f"celery-{name}-{url.rsplit(':', 1)[1]}", command, env, run.tmp))
            workers[-1].wait_for_output(" ready.")
            loadgen = Loadgen(run, "jobs", url, token, latency_jobs=run.size["latency_jobs"], burst=run.size["burst"])
            result = loadgen.read()
            loadgen.finish()
            results[f"{count}_workers"] = result
            log(
                f"  jobs, {count} worker(s): emit-to-client p50 {result['emit_to_client_ms']['p50']:.2f} "
                f"p99 {result['emit_to_client_ms']['p99']:.2f} ms, "
                f"{result['burst']['jobs_per_second']:.1f} jobs/s ({result['burst']['done']}/{result['burst']['jobs']})"
            )
    finally:
        for worker in workers:
            worker.stop()
    return results


class Run:
    """What one benchmark run shares: Redis, folders, sizes."""

    def __init__(self, size):
        self.size = SIZES[size]
        self.stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        self.tmp = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))  # logs, instance folders
        self.loadgen_log = open(self.tmp / "loadgen.log", "ab")  # closed in close()
        self.redis = EmbeddedRedis().start()
        self.redis_url = self.redis.url

    def close(self):
        """Stop Redis; keep the logs folder (printed) for reading."""
        self.redis.stop()
        self.loadgen_log.close()


def machine():
    """Describe the machine the run is on."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    memory = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
    }


def median_and_spread(values):
    """Return {median, min, max, runs} of the numbers given (None ones dropped)."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def first_step_past(ack):
    """Return the ack step after the last within the limit (None if all held): its generator CPU says who gave out."""
    held = ack["sustained"]["clients"] if ack["sustained"] else 0
    return next((step for step in ack["steps"] if "generator" in step and step["clients"] > held), None)


def summarize(repeats):
    """Reduce each server's repeated runs to the headline figures, each a median with its spread."""
    figures = {}
    last = lambda run: run["capacity"]["steps"][-1]  # noqa: E731
    figures["capacity_connected"] = median_and_spread([last(r)["connected"] for r in repeats])
    figures["capacity_failed"] = median_and_spread([sum(s["failed"] for s in r["capacity"]["steps"]) for r in repeats])
    # Memory at the largest step every connection succeeded (a failed step holds half-open ones).
    clean = lambda run: ([s for s in run["capacity"]["steps"] if not s["failed"]] or run["capacity"]["steps"])[-1]  # noqa: E731
    figures["kb_per_connection"] = median_and_spread([clean(r)["kb_per_connection"] for r in repeats])
    figures["kb_measured_at"] = median_and_spread([clean(r)["connected"] for r in repeats])
    figures["connect_rate"] = median_and_spread([last(r)["connect_rate"] for r in repeats])
    figures["connect_p50_ms"] = median_and_spread([last(r)["connect_ms"]["p50"] for r in repeats])
    figures["connect_p99_ms"] = median_and_spread([last(r)["connect_ms"]["p99"] for r in repeats])
    figures["connect_cpu_per_1000"] = median_and_spread([last(r)["server_cpu_per_1000"] for r in repeats])
    for size in repeats[0]["fanout"]:
        fan = [r["fanout"][size] for r in repeats]
        figures[f"fanout_{size}_per_second"] = median_and_spread([f["deliveries_per_second"] for f in fan])
        figures[f"fanout_{size}_p50_ms"] = median_and_spread([f["to_last_member_ms"]["p50"] for f in fan])
        figures[f"fanout_{size}_p99_ms"] = median_and_spread([f["to_last_member_ms"]["p99"] for f in fan])
        figures[f"fanout_{size}_cpu_per_1000"] = median_and_spread([f["server_cpu_per_1000"] for f in fan])
        figures[f"fanout_{size}_lost"] = median_and_spread([f["expected"] - f["delivered"] for f in fan])
    sustained = [r["ack"]["sustained"] for r in repeats]
    figures["ack_clients"] = median_and_spread([s and s["clients"] for s in sustained])
    figures["ack_per_second"] = median_and_spread([s and s["acks_per_second"] for s in sustained])
    figures["ack_p99_ms"] = median_and_spread([s and s["rtt_ms"]["p99"] for s in sustained])
    figures["ack_cpu_per_1000"] = median_and_spread([s and s["server_cpu_per_1000"] for s in sustained])
    figures["ack_generator_cpu"] = median_and_spread([s and s["generator"]["cpu_share"] for s in sustained])
    beyond = [first_step_past(r["ack"]) for r in repeats]
    figures["ack_beyond_generator_cpu"] = median_and_spread([s and s["generator"]["cpu_share"] for s in beyond])
    figures["capacity_generator_cpu"] = median_and_spread([r["capacity"]["generator"]["cpu_share"] for r in repeats])
    for size in repeats[0]["fanout"]:
        shares = [r["fanout"][size]["generator"]["cpu_share"] for r in repeats]
        figures[f"fanout_{size}_generator_cpu"] = median_and_spread(shares)
    return figures


CAPACITY_ROWS = [
    ("capacity_connected", "idle WebSocket clients held (of {capacity})", "{:.0f}"),
    ("capacity_failed", "connections refused or failed", "{:.0f}"),
    ("kb_per_connection", "memory per idle connection (KB RSS)", "{:.1f}"),
    ("kb_measured_at", "... measured with this many connected", "{:.0f}"),
    ("connect_rate", "connect rate at the last step (/s)", "{:.0f}"),
    ("connect_p50_ms", "connect latency p50 (ms)", "{:.1f}"),
    ("connect_p99_ms", "connect latency p99 (ms)", "{:.1f}"),
    ("connect_cpu_per_1000", "server CPU-s per 1000 connects", "{:.2f}"),
    ("capacity_generator_cpu", "... load generator CPU over the ramp (cores)", "{:.2f}"),
]
ACK_ROWS = [
    ("ack_clients", "ack: clients at 1 event/s with p99 <= 50 ms", "{:.0f}"),
    ("ack_per_second", "ack: sustained acks/s", "{:.0f}"),
    ("ack_p99_ms", "ack: p99 at that load (ms)", "{:.1f}"),
    ("ack_cpu_per_1000", "ack: server CPU-s per 1000 acks at that load", "{:.3f}"),
    ("ack_generator_cpu", "ack: load generator CPU at that load (cores)", "{:.2f}"),
    ("ack_beyond_generator_cpu", "ack: load generator CPU at the next step, which failed (cores)", "{:.2f}"),
]


def fanout_rows(sizes):
    """Table rows of the fan-out figures, per room size."""
    rows = []
    for size in sizes:
        rows += [
            (f"fanout_{size}_per_second", f"fan-out {size}: deliveries/s", "{:.0f}"),
            (f"fanout_{size}_p50_ms", f"fan-out {size}: to last member p50 (ms)", "{:.1f}"),
            (f"fanout_{size}_p99_ms", f"fan-out {size}: to last member p99 (ms)", "{:.1f}"),
            (f"fanout_{size}_cpu_per_1000", f"fan-out {size}: server CPU-s per 1000 deliveries", "{:.3f}"),
            (f"fanout_{size}_lost", f"fan-out {size}: deliveries missing", "{:.0f}"),
            (f"fanout_{size}_generator_cpu", f"fan-out {size}: load generator CPU (cores)", "{:.2f}"),
        ]
    return rows


def table(results):
    """Render the side-by-side markdown table: medians, spread, ratio against Node."""
    names = [name for name in results["servers"] if results["servers"][name].get("figures")]
    sizes = results["sizes"]
    rows = CAPACITY_ROWS + fanout_rows(sizes["rooms"]) + ACK_ROWS
    header = "| metric | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    lines = []
    for key, label, fmt in rows:
        cells = []
        reference = results["servers"].get("node", {}).get("figures", {}).get(key)
        for name in names:
            figure = results["servers"][name]["figures"].get(key)
            if figure is None:
                cells.append("n/a")
                continue
            cell = fmt.format(figure["median"])
            if figure["min"] != figure["max"]:
                cell += f" ({fmt.format(figure['min'])}–{fmt.format(figure['max'])})"
            # A ratio for the server's figures; the generator's own CPU is context, not a score.
            if name != "node" and reference and reference["median"] and "generator" not in key:
                cell += f" ×{figure['median'] / reference['median']:.2f}"
            cells.append(cell)
        lines.append(f"| {label.format(capacity=sizes['capacity'][-1])} | " + " | ".join(cells) + " |")
    jobs = results["servers"].get("roomcast", {}).get("jobs")
    text = header + "\n".join(lines) + "\n"
    if jobs:
        text += "\n| Roomcast job path | 1 Celery worker | 2 Celery workers |\n|---|---|---|\n"
        for key, label in (("p50", "emit-to-client p50 (ms)"), ("p99", "emit-to-client p99 (ms)")):
            text += (
                f"| {label} | "
                + " | ".join(f"{jobs[w]['emit_to_client_ms'][key]['median']:.2f}" for w in ("1_workers", "2_workers"))
                + " |\n"
            )
        text += (
            "| jobs per second (short jobs, burst) | "
            + " | ".join(f"{jobs[w]['jobs_per_second']['median']:.1f}" for w in ("1_workers", "2_workers"))
            + " |\n"
        )
    return text


def summarize_jobs(repeats):
    """Median and spread of the job figures over repeats."""
    return {
        workers: {
            "emit_to_client_ms": {
                key: median_and_spread([r[workers]["emit_to_client_ms"][key] for r in repeats])
                for key in ("p50", "p99")
            },
            "jobs_per_second": median_and_spread([r[workers]["burst"]["jobs_per_second"] for r in repeats]),
        }
        for workers in ("1_workers", "2_workers")
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, two repeats, for development")
    parser.add_argument("--size", choices=sorted(SIZES), help="a preset by name (profile: for before/after runs)")
    parser.add_argument("--servers", default=",".join(server.name for server in SERVERS))
    arguments = parser.parse_args()
    raise_open_files()
    size = arguments.size or ("quick" if arguments.quick else "full")
    run = Run(size)
    chosen = [server for server in SERVERS if server.name in arguments.servers.split(",")]
    results = {
        "date": run.stamp,
        "mode": size,
        "machine": machine(),
        "sizes": run.size,
        "servers": {},
    }
    log(f"benchmark ({results['mode']}): {', '.join(s.name for s in chosen)}; logs in {run.tmp}")
    started = time.monotonic()
    try:
        for server in chosen:
            repeats, job_repeats = [], []
            for repeat in range(run.size["repeats"]):
                log(f"{server.label}: run {repeat + 1} of {run.size['repeats']}")
                process, url, token, env = server.start(run)
                try:
                    outcome = {"capacity": capacity(run, server, process, url, token)}
                finally:
                    process.stop()
                # A fresh server for the rest: the ramp may have run it out of open files.
                process, url, token, env = server.start(run)
                try:
                    outcome["fanout"] = fanout(run, server, process, url, token)
                    outcome["ack"] = ack(run, server, process, url, token)
                    if server.name == "roomcast":
                        job_repeats.append(jobs(run, server, process, url, token, env))
                finally:
                    process.stop()
                repeats.append(outcome)
            results["servers"][server.name] = {"label": server.label, "runs": repeats, "figures": summarize(repeats)}
            if job_repeats:
                results["servers"][server.name]["jobs"] = summarize_jobs(job_repeats)
    finally:
        run.close()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    out = BENCH / "results" / (run.stamp if size == "full" else f"{run.stamp}-{size}")
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = table(results)
    out.with_suffix(".md").write_text(
        f"# Benchmark {run.stamp} ({results['mode']}, {results['minutes']} min)\n\n"
        f"Machine: {json.dumps(results['machine'])}\n\n"
        "Each cell: median (min–max over runs) ×ratio against Node in this run.\n\n" + markdown
    )
    print("\n" + markdown)
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
