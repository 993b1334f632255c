"""The chaos suite's world: the real stack on a Redis the test stops and starts, its faults, and the accounting.

Two gunicorn processes (A and B) on loopback ports, one Celery worker at a time, a
redis-server of the test's own and the database tests/databases.py gives
(PostgreSQL when DATABASE_URL says so). Faults are done to processes we started,
by their pids. The accounting compares what the database stored with what each
client showed.
"""

import collections
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from devtools.embedded_redis import EmbeddedRedis, free_port
from tests.helpers import bearer, wait_until
from tests.realstack import running_stack

# Fast enough for 20+ messages a second from a few clients; a vanished Celery
# worker's job is re-run within seconds (JOB_STALE_SECONDS), as in tests/conftest.py.
CHAOS_ENV = {
    "SOCKET_RATE_PER_SECOND": "1000",
    "SOCKET_RATE_BURST": "1000",
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "JOB_STALE_SECONDS": "5",
    "JOB_SWEEP_SECONDS": "0.5",
    "ACCESS_LOG": "",  # 200 polling clients make a lot of it
}
PAGE = 1000  # the HTTP API's largest page


class ChaosStack:
    """The real stack, with the faults the scenarios need, and a way back to healthy."""

    def __init__(self, stack, redis):
        self.stack, self.redis = stack, redis
        self.ports = (stack.port, free_port())  # A and B

    def url(self, port):
        return f"http://127.0.0.1:{port}"

    @property
    def urls(self):
        return [self.url(port) for port in self.ports]

    def web(self, port):
        """Return the latest web process started on port."""
        return [web for web in self.stack.webs if web.name.startswith(f"web-{port}-")][-1]

    def live_workers(self):
        """Return the Celery workers still running."""
        return [worker for worker in self.stack.workers if worker.popen.poll() is None]

    def ready(self, port):
        """Tell whether the web process on port answers /readyz with 200."""
        try:
            return requests.get(f"{self.url(port)}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, port, timeout=30):
        """Wait until the web process on port is ready (database, Redis and its listener)."""
        wait_until(lambda: self.ready(port), f"/readyz 200 on port {port}", timeout)

    def restore(self):
        """Bring back whatever an earlier scenario left down: Redis, both web processes, one Celery worker."""
        if not self.redis.running:
            self.redis.start()
        for port in self.ports:
            if not self.stack.webs or not any(w.name.startswith(f"web-{port}-") for w in self.stack.webs):
                self.stack.start_web(port=port)
            elif self.web(port).popen.poll() is not None:
                self.stack.start_web(port=port)
        if not self.live_workers():
            self.stack.start_worker()
        for port in self.ports:
            self.wait_ready(port)

    # --- faults ---

    def stop_redis(self):
        """Stop redis-server (SIGTERM to the pid we started), keeping its port for start_redis()."""
        self.redis.stop(keep_port=True)

    def start_redis(self):
        """Start redis-server again on the same port, empty."""
        self.redis.start()

    def kill_web_worker(self, port):
        """SIGKILL the gunicorn worker of the process on port (its master starts another); return its pid."""
        (pid,) = self.web(port).child_pids()
        os.kill(pid, signal.SIGKILL)
        return pid

    def worker_pid(self, port):
        """Return the pid of the gunicorn worker on port, or None while there is none."""
        try:
            pids = self.web(port).child_pids()
        except FileNotFoundError:
            return None
        return pids[0] if len(pids) == 1 else None

    def terminate_web(self, port):
        """SIGTERM the master on port, as systemd's KillMode=mixed does; return the process."""
        web = self.web(port)
        os.kill(web.popen.pid, signal.SIGTERM)
        return web

    def restart_web(self, port, timeout=30):
        """Start the web process on port again and wait for /readyz."""
        return self.stack.start_web(port=port, timeout=timeout)

    def kill_celery_workers(self):
        """SIGKILL every live Celery worker's process group (master and pool)."""
        for worker in self.live_workers():
            worker.signal(signal.SIGKILL)
            worker.popen.wait(timeout=10)

    def start_worker(self):
        return self.stack.start_worker()

    def logs(self, tail=3000):
        """Return the end of every process's log, for a failing test."""
        return "\n".join(
            f"--- {process.name}\n{process.output()[-tail:]}" for process in [*self.stack.webs, *self.stack.workers]
        )


@contextmanager
def chaos_stack(tmp_root):
    """Yield a ChaosStack: Redis of its own, a migrated database, web processes A and B, one Celery worker."""
    redis = EmbeddedRedis().start()
    try:
        with running_stack(tmp_root, redis.url, "chaos", **CHAOS_ENV) as stack:
            chaos = ChaosStack(stack, redis)
            for port in chaos.ports:
                stack.start_web(port=port)
            stack.start_worker()
            yield chaos
    finally:
        redis.stop()


def register_users(url, count, label):
    """Register count users and return their tokens."""
    tokens = []
    for n in range(count):
        name = f"{label}{uuid.uuid4().hex[:6]}{n}"
        answer = requests.post(f"{url}/api/users", json={"username": name, "password": "correct horse"}, timeout=30)
        assert answer.status_code == 201, answer.text
        answer = requests.post(f"{url}/api/tokens", json={"username": name, "password": "correct horse"}, timeout=30)
        assert answer.status_code == 200, answer.text
        tokens.append(answer.json()["token"])
    return tokens


def stored_messages(url, token, room):
    """Read every message the database stored for a room, paging by seq over HTTP."""
    messages = []
    while True:
        since = messages[-1]["seq"] if messages else 0
        answer = requests.get(
            f"{url}/api/rooms/{room}/messages",
            params={"since_seq": since, "limit": PAGE},
            headers=bearer(token),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        messages.extend(page)
        if len(page) < PAGE:
            return messages


def parallel(function, items, workers=16):
    """Run function on every item on a few threads; return the results in order (raising the first error)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


class ChatLoad:
    """Senders, one thread each, sending numbered messages at a steady rate until stopped or out of messages."""

    def __init__(self, senders, room, rate, count, rng, label):
        self.senders, self.room, self.label = senders, room, label
        self.interval = len(senders) / rate  # each sender's share of the rate
        self.count = count  # messages in all
        self.rng = rng
        self.attempted = 0  # messages a sender began to send
        self.acked = {}  # client_id -> the stored message its ack returned
        self.failures = []  # (client_id, error) of sends never acknowledged
        self.numbers = iter(range(count))
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # set only to end a failing test's senders sooner
        self.offsets = [self.rng.random() * self.interval for _ in senders]  # seeded, so runs stagger alike
        self.threads = [
            threading.Thread(target=self._send_from, args=(sender, offset), daemon=True)
            for sender, offset in zip(senders, self.offsets, strict=True)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def _next(self):
        with self.lock:
            number = next(self.numbers, None)
            self.attempted += number is not None
            return number

    def _send_from(self, sender, offset):
        due = time.monotonic() + offset
        while not self.stopping.is_set() and (number := self._next()) is not None:
            self.stopping.wait(max(0.0, due - time.monotonic()))
            client_id = f"{self.label}-{number}"
            try:
                message = sender.send(self.room, f"{self.label} message {number} from {sender.name}", client_id)
                with self.lock:
                    self.acked[client_id] = message
            except AssertionError as error:
                with self.lock:
                    self.failures.append((client_id, str(error)))
            due += self.interval

    def wait_acked(self, count, timeout):
        """Wait until count messages were acknowledged."""
        wait_until(lambda: len(self.acked) >= count, f"{count} acknowledged sends", timeout, interval=0.02)

    def wait(self, timeout):
        """Wait until every sender is done; fail if one is still sending after timeout."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), f"senders still busy after {timeout} s"


@dataclass
class Figures:
    """One scenario's numbers, printed on one line."""

    scenario: str
    seed: int
    sent: int = 0
    stored: int = 0
    shown: list = field(default_factory=list)  # per member
    lost: int = 0  # (member, stored message) pairs never shown
    duplicated: int = 0  # messages shown more than once, over every member
    recovery_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def line(self):
        shown = f"{min(self.shown)}..{max(self.shown)} over {len(self.shown)} members" if self.shown else "-"
        extra = "".join(f" {name}={value}" for name, value in self.extra.items())
        return (
            f"CHAOS {self.scenario} seed={self.seed}: sent={self.sent} stored={self.stored} shown={shown} "
            f"lost={self.lost} duplicated={self.duplicated} recovered_in={self.recovery_seconds:.1f}s{extra}"
        )


class RecoveryClock:
    """Seconds from a fault until every member is back: connected, in the room, and current.

    Current at time T means showing, in order, every message stored by T - LAG (what
    is younger may still be on its way). It is first checked LAG after the fault, so
    a member cut off by the fault is not counted as current before it notices. Polled
    on a thread of its own while the load goes on; `seconds` stays None if it never happens.
    """

    LAG = 0.5

    def __init__(self, members, room, url, token):
        self.members, self.room, self.url, self.token = members, room, url, token
        self.started = time.monotonic()
        self.history = collections.deque()  # (time, newest stored seq), oldest first
        self.seconds = None
        self.behind = []  # the members not current at the last look
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                self.history.append((now, last_stored_seq(self.url, self.token, self.room)))
            except (AssertionError, requests.RequestException):
                pass  # that process may be the one down; read again
            while len(self.history) > 1 and self.history[1][0] <= now - self.LAG:
                self.history.popleft()
            if now - self.started >= self.LAG and self.history and self.history[0][0] <= now - self.LAG:
                target = list(range(1, self.history[0][1] + 1))
                self.behind = [
                    (member.name, member.in_room(self.room), len(shown_seqs(member, self.room)), len(target))
                    for member in self.members
                    if not self._current(member, target)
                ]
                if not self.behind:
                    self.seconds = now - self.started
                    return
            self.stopping.wait(0.1)

    def _current(self, member, target):
        return member.in_room(self.room) and shown_seqs(member, self.room)[: len(target)] == target

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        return self.seconds


def last_stored_seq(url, token, room):
    """Return the seq of the newest message stored in the room (0 if none)."""
    answer = requests.get(
        f"{url}/api/rooms/{room}/messages",
        params={"limit": 1},
        headers=bearer(token),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()[-1]["seq"] if answer.json() else 0


def shown_seqs(member, room):
    return [message["seq"] for message in member.shown(room)]


def converge(members, room, expected, timeout):
    """Wait until every member shows exactly the expected seqs, or timeout passes (the checks that follow say how)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(shown_seqs(member, room) == expected for member in members):
            return
        time.sleep(0.1)


def account(figures, members, room, stored):
    """Fill in shown, lost and duplicated from what each member shows against what was stored."""
    expected = [message["seq"] for message in stored]
    figures.stored = len(stored)
    figures.shown, figures.lost, figures.duplicated = [], 0, 0
    for member in members:
        seqs = shown_seqs(member, room)
        figures.shown.append(len(seqs))
        figures.lost += len(set(expected) - set(seqs))
        figures.duplicated += len(seqs) - len(set(seqs))


def check_members(members, room, stored):
    """Assert every member shows every stored message exactly once, in seq order; say who did not, and how."""
    expected = [message["seq"] for message in stored]
    assert expected == list(range(1, len(expected) + 1)), f"stored seqs have holes: {expected}"
    problems = []
    for member in members:
        seqs = shown_seqs(member, room)
        if seqs != expected:
            counts = collections.Counter(seqs)
            missing = sorted(set(expected) - set(seqs))
            doubled = sorted(seq for seq, n in counts.items() if n > 1)
            problems.append(
                f"{member.name} ({member.transport}, {member.url}): showed {len(seqs)} of {len(expected)}; "
                f"missing {missing[:20]}, doubled {doubled[:20]}, out of order {seqs != sorted(seqs)}; "
                f"counts {dict(member.counts)}; log {list(member.log)[-8 if problems else -30 :]}"
            )
    assert not problems, "\n".join(problems)


def check_sends(load, stored):
    """Assert every send was acknowledged and stored once, under the seq its ack gave, and nothing else was stored."""
    by_client_id = collections.Counter(message["client_id"] for message in stored)
    doubled = [client_id for client_id, n in by_client_id.items() if n > 1]
    assert not doubled, f"stored twice: {doubled}"
    assert not load.failures, f"sends never acknowledged: {load.failures[:5]}"
    assert set(by_client_id) == set(load.acked), f"stored but not sent: {sorted(set(by_client_id) - set(load.acked))}"
    seqs = {message["client_id"]: message["seq"] for message in stored}
    wrong = {client_id: (message["seq"], seqs[client_id]) for client_id, message in load.acked.items()
             if message["seq"] != seqs[client_id]}  # fmt: skip
    assert not wrong, f"acknowledged under another seq than stored (acked, stored): {wrong}"
