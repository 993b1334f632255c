"""Scale-out with real processes on loopback: Debian's nginx running deploy/nginx.conf in front
of two gunicorn processes, WebSocket-only mode with two workers, a web process stopped with
SIGTERM while people chat, and two Celery workers sharing the jobs."""

import itertools
import json
import os
import re
import signal
import threading
import time
import uuid

import pytest
import requests
import socketio

from devtools.embedded_redis import free_port
from tests.clients import SocketClient, follow_to_the_end, register, session_from
from tests.helpers import FAST_JOB_RECOVERY, bearer, create_room, wait_until
from tests.realstack import nginx_binary, running_stack

pytestmark = pytest.mark.integration

TRANSPORTS = ["websocket", "polling"]
names = (f"s{uuid.uuid4().hex[:6]}{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def cluster(tmp_root, redis_url):
    """nginx in front of two gunicorn processes (ports A and B), and two Celery workers."""
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: .ci/run installs Debian's nginx package")
        pytest.skip("no nginx found (apt-get install nginx); scale-out tests skipped")
    rates = {"SOCKET_RATE_PER_SECOND": "1000", "SOCKET_RATE_BURST": "1000"}
    with running_stack(tmp_root, redis_url, "cluster", **rates, **FAST_JOB_RECOVERY) as stack:
        stack.web_ports = (stack.port, free_port())
        for port in stack.web_ports:
            stack.start_web(port=port)
        stack.start_worker()
        stack.start_worker()
        stack.start_nginx(stack.web_ports)
        yield stack


@pytest.fixture
def show_logs(cluster):
    """Print the tail of every process's log; pytest shows it when the test fails."""
    yield
    for process in [cluster.nginx.process, *cluster.webs, *cluster.workers]:
        print(f"--- {process.name}\n{process.output()[-3000:]}")
    print(f"--- nginx error.log\n{(cluster.nginx.prefix / 'error.log').read_text()[-3000:]}")


def source_ip_for(cluster, port):
    """Return a loopback address whose clients nginx sends to the web process on port."""
    for n in range(2, 255):
        ip = f"127.0.0.{n}"
        with session_from(ip) as session:
            upstream = session.get(f"{cluster.url}/healthz", timeout=10).headers["X-Upstream"]
        if upstream == f"127.0.0.1:{port}":
            return ip
    raise AssertionError(f"no loopback address hashes to port {port}")


def connected_clients(port, namespace="/chat"):
    """Read one web process's roomcast_connected_clients off its own /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(rf'^roomcast_connected_clients\{{namespace="{namespace}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_messages_and_job_events_cross_between_web_processes(cluster, show_logs, transport):
    port_a, port_b = cluster.web_ports
    ip_a, ip_b = source_ip_for(cluster, port_a), source_ip_for(cluster, port_b)
    alice_token, bob_token = register(cluster.url, next(names)), register(cluster.url, next(names))
    room = create_room(cluster.url, alice_token)
    opened = []

    def pinned(token, ip, namespace="/chat"):
        client = SocketClient(cluster.url, token, transport, namespace=namespace, source_ip=ip).connect()
        opened.append(client)
        return client

    try:
        alice, bob = pinned(alice_token, ip_a), pinned(bob_token, ip_b)
        wait_until(lambda: (connected_clients(port_a), connected_clients(port_b)) == (1, 1), "one client on each")
        for client in (alice, bob):
            assert client.call("join", {"room": room})["ok"]

        for sender, receiver in ((alice, bob), (bob, alice)):
            sent = sender.call("send", {"room": room, "text": f"from {sender.source_ip}"})["message"]
            assert receiver.wait_for("message", lambda m, sent=sent: m["id"] == sent["id"]) == sent

        # A job started through one process streams to its owner's watcher on the other,
        # and its bot message reaches the room on both.
        jobs_a, jobs_b = pinned(alice_token, ip_a, "/jobs"), pinned(alice_token, ip_b, "/jobs")
        for starter, watcher in ((jobs_a, jobs_b), (jobs_b, jobs_a)):
            job = starter.call("start", {"kind": "sleep", "params": {"seconds": 1, "steps": 4}, "room": room})["job"]
            assert watcher.call("watch", {"job_id": job["id"]})["ok"]
            for client in (starter, watcher):
                progress, done = follow_to_the_end(client, job["id"])
                assert done["status"] == "succeeded" and progress == sorted(progress)
            for client in (alice, bob):
                client.wait_for(
                    "message", lambda m, job=job: m["author"] == "bot" and m["client_id"] == f"job-{job['id']}"
                )
    finally:
        for client in opened:
            client.close()


def test_two_celery_workers_share_the_jobs(cluster, show_logs):
    token = register(cluster.url, next(names))
    jobs = SocketClient(cluster.url, token, "websocket", namespace="/jobs").connect()
    try:
        # Four slow jobs at once: each worker reserves only what its two processes run (prefetch 1).
        started = [jobs.call("start", {"kind": "sleep", "params": {"seconds": 2, "steps": 2}})["job"] for _ in range(4)]
        # The four run at once: take their done events in whatever order they come.
        done = [jobs.wait_for("done", timeout=30) for _ in started]
        assert sorted((d["job_id"], d["status"]) for d in done) == [(job["id"], "succeeded") for job in started]
    finally:
        jobs.close()
    # Each worker's log line of a job's end is written before its done event is sent
    # (Celery's own "Task ... succeeded" line comes after: it may not be written yet).
    ids = {job["id"] for job in started}
    ran = {worker.name: sorted(succeeded(worker.output()) & ids) for worker in cluster.workers}
    assert sorted(itertools.chain(*ran.values())) == [job["id"] for job in started]  # each job ran once
    assert all(ran.values()), f"one worker ran every job: {ran}"


def succeeded(log):
    """Return the ids of the jobs a worker's JSON log says it finished with success."""
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return {line["job_id"] for line in lines if line.get("status") == "succeeded" and "job_id" in line}


def established_connections(pid, port):
    """Count the TCP connections to port that process pid holds open, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


def test_websocket_only_mode_serves_one_room_from_two_workers(websocket_only_stack):
    stack = websocket_only_stack
    workers = stack.web.child_pids()
    assert len(workers) == 2
    token = register(stack.url, next(names))
    room = create_room(stack.url, token)
    clients = []
    try:
        # The kernel gives each connection to whichever worker accepts first: connect until both hold some.
        while len(clients) < 100 and (
            len(clients) < 6 or 0 in [established_connections(p, stack.port) for p in workers]
        ):
            clients.append(SocketClient(stack.url, token, None).connect())  # None: follow /api/socketio
        assert all(established_connections(pid, stack.port) for pid in workers), "one worker took every connection"
        for client in clients:
            assert client.sio.transport() == "websocket"
            assert client.call("join", {"room": room})["ok"]

        sent = [client.call("send", {"room": room, "text": f"from {n}"})["message"] for n, client in enumerate(clients)]
        for client in clients:
            received = [client.wait_for("message", lambda m: m["room"] == room) for _ in sent]
            # Every message once, whichever worker holds sender and reader. Two workers may
            # deliver two sends in either order (each delivers its own at once, the other's
            # through Redis): clients show them by seq (docs/protocol.md), which has no holes.
            assert sorted(received, key=lambda m: m["seq"]) == sent
            assert [m["seq"] for m in sent] == list(range(1, len(sent) + 1))
    finally:
        for client in clients:
            client.close()


class Member:
    """A chat client that behaves like the page: it reconnects, joins again with `since`, drops duplicates by id."""

    def __init__(self, url, token, transport, source_ip, room):
        self.url, self.token, self.transport, self.source_ip, self.room = url, token, transport, source_ip, room
        self.live = []  # every message event, as it arrived, over every connection
        self.caught_up = []  # every message a join returned
        self.connections = 0
        self.retried = set()  # texts whose send was retried
        self.client = None
        self.connect()

    def last_id(self):
        """Return the newest message id seen, or None."""
        return max((message["id"] for message in self.live + self.caught_up), default=None)

    def collect(self):
        """Move the message events received so far into self.live."""
        while not self.client.events.empty():
            name, data = self.client.events.get()
            if name == "message":
                self.live.append(data)

    def connect(self, timeout=30):
        """(Re)connect through the balancer and join with since, until it works."""
        deadline = time.monotonic() + timeout
        while True:
            if self.client is not None:
                self.collect()
                self.client.close()
            self.client = SocketClient(self.url, self.token, self.transport, source_ip=self.source_ip)
            try:
                self.client.connect()
                since = self.last_id()
                ack = self.client.call(
                    "join", {"room": self.room} if since is None else {"room": self.room, "since": since}
                )
                self.caught_up.extend(ack["messages"])
                self.connections += 1
                return
            except socketio.exceptions.SocketIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def heal(self):
        """Reconnect if the server closed the connection."""
        if not self.client.sio.connected:
            self.connect()

    def send(self, text, client_id, timeout=30):
        """Send until acknowledged, reconnecting as needed; the same client_id makes a retry safe."""
        deadline = time.monotonic() + timeout
        while True:
            self.heal()
            try:
                return self.client.call("send", {"room": self.room, "text": text, "client_id": client_id}, timeout=5)
            except socketio.exceptions.SocketIOError:
                self.retried.add(text)  # the retry broadcasts it again (docs/protocol.md, send)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def shown(self):
        """Return what the page would show: every message once, by id."""
        return sorted(
            {message["id"]: message for message in self.live + self.caught_up}.values(), key=lambda m: m["id"]
        )

    def close(self):
        """Disconnect."""
        self.client.close()


def test_sigterm_to_one_web_process_while_people_chat_loses_nothing(cluster, show_logs):
    port_a, port_b = cluster.web_ports
    web_a = next(web for web in cluster.webs if web.popen.poll() is None and web.name.startswith(f"web-{port_a}-"))
    token = register(cluster.url, next(names))
    room = create_room(cluster.url, token)
    ips = {port: source_ip_for(cluster, port) for port in cluster.web_ports}
    # Two people on each process, one per transport; the polling one first: closing
    # it must not hold up closing the others.
    members = [
        Member(cluster.url, token, transport, ips[port], room)
        for port in (port_a, port_b)
        for transport in ("polling", "websocket")
    ]
    on_a, on_b = members[:2], members[2:]
    texts = [f"message {n}" for n in range(45)]
    exited_at = []

    def wait_for_exit():
        web_a.popen.wait(timeout=30)
        exited_at.append(time.monotonic())

    stopping = threading.Thread(target=wait_for_exit)
    try:
        for n, text in enumerate(texts):
            if n == 15:
                stopping_since = time.monotonic()
                os.kill(web_a.popen.pid, signal.SIGTERM)  # the master, as systemd's KillMode=mixed does
                stopping.start()
            members[n % len(members)].send(text, client_id=f"c{n}")
            for member in members:
                member.heal()
            time.sleep(0.05)
        stopping.join()
        assert web_a.popen.returncode == 0

        stored = requests.get(
            f"{cluster.url}/api/rooms/{room}/messages?since=0&limit=1000",
            headers=bearer(token),
            timeout=10,
        ).json()
        assert [message["text"] for message in stored] == texts  # each stored once, retries included

        def everyone_has_everything():
            for member in members:
                member.collect()
            return all(len(member.shown()) == len(stored) for member in members)

        wait_until(everyone_has_everything, "every member to have every message")
        for member in members:
            assert member.shown() == stored
        retried = set().union(*(member.retried for member in members))
        for member in on_b:  # never disconnected: every message arrived live, once (shown in seq order)...
            live = sorted(member.live, key=lambda message: message["seq"])
            # ...but for a send whose ack was lost as its process stopped: the retry broadcasts it again.
            once = [m for n, m in enumerate(live) if not (n and m["id"] == live[n - 1]["id"] and m["text"] in retried)]
            assert [message["id"] for message in once] == [message["id"] for message in stored]
            assert member.connections == 1
        for member in on_a:
            assert member.connections >= 2, "the members on the stopped process did not reconnect"
        # Connections closed at once: the process did not wait out graceful_timeout (20 s).
        assert exited_at[0] - stopping_since < 10, f"stopped in {exited_at[0] - stopping_since:.1f} s"
    finally:
        for member in members:
            member.close()
        if web_a.popen.poll() is not None:  # else the test failed before stopping it
            cluster.start_web(port=port_a)
