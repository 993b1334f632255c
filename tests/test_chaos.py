"""Chaos: the real stack broken on purpose while people chat and jobs run, judged by what each client shows.

Every scenario is seeded (CHAOS_SEED=<n> replays the choices of a run), bounded in
time and count, and prints one line of figures. Clients follow protocol v2's gap
handling (tests/clients.py: ChatMember, JobWatcher). `make chaos` runs this module
alone; `make test` leaves it out. CHAOS_DEBUG=1 prints every chat client's log;
CHAOS_LOG_DIR=<folder> keeps every process's log of a failed scenario.
"""

import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.chaos import (
    ChatLoad,
    Figures,
    RecoveryClock,
    account,
    chaos_stack,
    check_members,
    check_sends,
    converge,
    parallel,
    register_users,
    shown_seqs,
    stored_messages,
)
from tests.clients import FINAL_JOB_STATUSES, ChatMember, JobWatcher
from tests.helpers import bearer, create_room, wait_until
from tests.relay import LoopbackRelay

pytestmark = pytest.mark.chaos

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**31))
CONVERGE_SECONDS = 30  # after the load ends, for every client to show every stored message
STORM_CLIENTS = 200


@pytest.fixture(scope="module")
def chaos(tmp_root):
    """The stack every scenario breaks (and the next one's fixture mends)."""
    print(f"\nCHAOS seed={SEED} (replay: CHAOS_SEED={SEED} make chaos)")
    with chaos_stack(tmp_root) as stack:
        stack.tokens = register_users(stack.urls[0], 10, "chaos")
        yield stack


class World:
    """One scenario's clients and relays on the chaos stack, and its seeded choices."""

    def __init__(self, chaos, name):
        self.chaos, self.name = chaos, name
        self.rng = random.Random(f"{SEED}:{name}")
        self.sockets = []
        self.relays = []
        self.numbers = iter(range(10**6))

    @property
    def token(self):
        return self.chaos.tokens[0]

    def member(self, port, transport, token=None, failover=True, url=None, reconnect_delay_max=2.0):
        """A ChatMember whose home is the process on port (or url, e.g. a relay's); it fails over to the other."""
        home = url or self.chaos.url(port)
        others = [u for u in self.chaos.urls if u != self.chaos.url(port)] if failover else []
        name = f"{transport[0]}{self.chaos.ports.index(port) and 'B' or 'A'}{next(self.numbers)}"
        member = ChatMember([home, *others], token or self.token, transport, name, seed=self.rng.randrange(2**31))
        member.reconnect_delay_max = reconnect_delay_max
        self.sockets.append(member)
        return member

    def watcher(self, port, transport, token=None):
        """A JobWatcher on the process on port."""
        name = f"jobs-{transport[0]}{self.chaos.ports.index(port) and 'B' or 'A'}{next(self.numbers)}"
        watcher = JobWatcher([self.chaos.url(port)], token or self.token, transport, name, self.rng.randrange(2**31))
        self.sockets.append(watcher)
        return watcher

    def relay(self, port):
        """A LoopbackRelay to the process on port, closed with the world."""
        relay = LoopbackRelay(port)
        self.relays.append(relay)
        return relay

    def close(self):
        for relay in self.relays:  # first: what a cut relay holds ends at once, not in a timeout
            relay.close()
        parallel(lambda socket: socket.close(), self.sockets, workers=32)


@pytest.fixture
def world(chaos, request):
    """Mend the stack, give the scenario a World, close its clients after; on failure print every log."""
    chaos.restore()
    failed_before = request.session.testsfailed
    scenario = World(chaos, request.node.name)
    yield scenario
    scenario.close()
    if request.session.testsfailed > failed_before:
        print(chaos.logs())
        if os.environ.get("CHAOS_LOG_DIR"):  # keep every log of a failed scenario
            shutil.copytree(chaos.stack.log_dir, Path(os.environ["CHAOS_LOG_DIR"]) / request.node.name)


def join_all(members, room, timeout=60):
    for member in members:
        member.join(room)
    for member in members:
        member.wait_joined(room, timeout)


def connect_all(members, timeout=60):
    parallel(lambda member: member.connect(timeout), members, workers=24)


def counts_of(sockets):
    """Sum the clients' counters that tell how they recovered."""
    total = {}
    for socket in sockets:
        for name, value in socket.counts.items():
            total[name] = total.get(name, 0) + value
    keys = (
        *("drops", "abandoned", "failed_connects", "join_retries", "resyncs", "fills", "duplicates_dropped"),
        "task_errors",  # a client's own failure: should stay 0
    )
    return {key: total.get(key, 0) for key in keys}


def finish_chat(world, scenario, members, room, load, clock, **extra):
    """Wait out the load and convergence; print the figures; assert exactly-once, in order, for everyone."""
    load.wait(timeout=90)
    for port in world.chaos.ports:
        if world.chaos.web(port).popen.poll() is None:
            world.chaos.wait_ready(port)
    stored = stored_messages(world.chaos.urls[1], world.token, room)
    expected = [message["seq"] for message in stored]
    converge(members, room, expected, CONVERGE_SECONDS)
    recovered = clock.stop()
    figures = Figures(scenario, SEED, sent=load.attempted, recovery_seconds=recovered if recovered is not None else -1)
    account(figures, members, room, stored)
    figures.extra.update(extra)
    figures.extra.update(counts_of(members))
    print(f"\n{figures.line()}")
    if os.environ.get("CHAOS_DEBUG"):
        for member in members:
            print(member.name, member.counts, *member.log, sep="\n  ")
    check_sends(load, stored)
    check_members(members, room, stored)
    behind = {name for name, *_ in clock.behind[:5]}
    logs = "\n".join(f"{m.name}: {m.counts} {list(m.log)[-12:]}" for m in members if m.name in behind)
    assert recovered is not None, (
        f"the members were never all current at once during the load: {clock.behind[:10]}\n{logs}"
    )
    return figures


def chat_members(world, per_process=3):
    """Members on both processes, both transports."""
    transports = ["websocket", "polling", "websocket", "polling"][:per_process]
    return [world.member(port, transport) for port in world.chaos.ports for transport in transports]


def test_redis_stopped_for_5_seconds_while_people_chat(world):
    chaos = world.chaos
    room, quiet_room = (
        create_room(chaos.urls[0], world.token, "chaos"),
        create_room(chaos.urls[0], world.token, "chaos"),
    )
    # One of them through a relay, whose connection breaks while Redis is away: it comes
    # back at once, and its join fails (presence is in Redis) until Redis is back.
    relay = world.relay(chaos.ports[0])
    members = [*chat_members(world), world.member(chaos.ports[0], "websocket", url=relay.url, failover=False)]
    connect_all(members)
    join_all(members, room)
    join_all(members, quiet_room)
    load = ChatLoad(members, room, rate=20, count=260, rng=world.rng, label="redis").start()
    load.wait_acked(world.rng.randint(40, 80), timeout=30)

    chaos.stop_redis()
    stopped, before = time.monotonic(), len(load.acked)
    time.sleep(world.rng.uniform(1.0, 3.0))
    relay.reset()
    # The quiet room hears only these, sent while Redis is away, and nothing after: only
    # the resync that follows recovery can bring them to the others.
    quiet = ChatLoad(members[-2:-1], quiet_room, rate=5, count=world.rng.randint(2, 5), rng=world.rng, label="quiet")
    quiet.start().wait(timeout=30)
    wait_until(lambda: time.monotonic() - stopped >= 5, "5 s", 10)  # the fault: Redis away for 5 s
    during = len(load.acked) - before
    chaos.start_redis()
    clock = RecoveryClock(members, room, chaos.urls[1], world.token)
    quiet_clock = RecoveryClock(members, quiet_room, chaos.urls[1], world.token)

    finish_chat(world, "redis-stopped-5s", members, room, load, clock, acked_while_down=during)
    stored = stored_messages(chaos.urls[1], world.token, quiet_room)
    converge(members, quiet_room, [message["seq"] for message in stored], CONVERGE_SECONDS)
    recovered = quiet_clock.stop()
    figures = Figures("redis-stopped-5s/quiet-room", SEED, sent=quiet.attempted, recovery_seconds=recovered or -1)
    account(figures, members, quiet_room, stored)
    print(f"\n{figures.line()}")
    check_sends(quiet, stored)
    check_members(members, quiet_room, stored)


def test_a_web_worker_killed_with_sigkill_mid_chat(world):
    chaos = world.chaos
    port_a = chaos.ports[0]
    room = create_room(chaos.urls[0], world.token, "chaos")
    members = chat_members(world)
    connect_all(members)
    join_all(members, room)
    load = ChatLoad(members, room, rate=20, count=200, rng=world.rng, label="sigkill").start()
    load.wait_acked(world.rng.randint(40, 80), timeout=30)

    killed = chaos.kill_web_worker(port_a)
    clock = RecoveryClock(members, room, chaos.urls[1], world.token)
    wait_until(lambda: chaos.worker_pid(port_a) not in (None, killed), "gunicorn to start another worker", 30)
    chaos.wait_ready(port_a)

    finish_chat(world, "web-worker-sigkill", members, room, load, clock)


def test_a_web_process_stopped_with_sigterm_mid_chat(world):
    chaos = world.chaos
    port_a = chaos.ports[0]
    room = create_room(chaos.urls[0], world.token, "chaos")
    members = chat_members(world)
    connect_all(members)
    join_all(members, room)
    load = ChatLoad(members, room, rate=20, count=200, rng=world.rng, label="sigterm").start()
    load.wait_acked(world.rng.randint(40, 80), timeout=30)

    stopping_since = time.monotonic()
    web_a = chaos.terminate_web(port_a)
    clock = RecoveryClock(members, room, chaos.urls[1], world.token)
    web_a.popen.wait(timeout=30)
    exit_seconds = time.monotonic() - stopping_since

    finish_chat(world, "web-process-sigterm", members, room, load, clock, exit_seconds=round(exit_seconds, 1))
    assert web_a.popen.returncode == 0
    assert exit_seconds < 15, f"the process took {exit_seconds:.1f} s to stop"
    assert all(member.url == chaos.urls[1] for member in members), "a member did not fail over to B"


def follow_jobs(world, watchers, job_ids, timeout):
    """Wait until every watcher shows every job finished; return the seconds it took, or None."""
    started = time.monotonic()
    try:
        wait_until(
            lambda: all(w.job(job_id).finished for w in watchers for job_id in job_ids), "final job states", timeout
        )
    except AssertionError:
        return None
    return time.monotonic() - started


def check_jobs(world, watchers, job_ids):
    """Assert each job ended, and each watcher shows its stored final state and version; return the stored jobs."""
    stored = []
    for job_id in job_ids:
        answer = requests.get(f"{world.chaos.urls[0]}/api/jobs/{job_id}", headers=bearer(world.token), timeout=10)
        job = answer.json()["job"]
        assert job["status"] in FINAL_JOB_STATUSES, f"job {job_id} did not end: {job}"
        for watcher in watchers:
            view = watcher.job(job_id)
            assert (view.status, view.version) == (job["status"], job["version"]), (
                f"{watcher.name} shows job {job_id} {view.status} v{view.version}, stored {job['status']} "
                f"v{job['version']}; applied {view.applied}; log {list(watcher.log)[-8:]}"
            )
            versions = [version for version, _, _ in view.applied]
            assert versions == sorted(set(versions)), f"{watcher.name} went back: {view.applied}"
        stored.append(job)
    return stored


def job_scenario_setup(world, count, seconds, steps):
    """Chat members and job watchers on both processes; start the jobs; return (members, watchers, room, jobs)."""
    chaos = world.chaos
    port_a, port_b = chaos.ports
    room = create_room(chaos.urls[0], world.token, "chaos")
    members = [world.member(port_a, "websocket"), world.member(port_b, "polling")]
    watchers = [world.watcher(port_a, "websocket"), world.watcher(port_b, "polling")]
    connect_all([*members, *watchers])
    join_all(members, room)
    params = {"seconds": seconds, "steps": steps}
    jobs = [watchers[0].start("sleep", params, room) for _ in range(count)]
    for job in jobs:
        watchers[1].watch(job["id"])
    return members, watchers, room, jobs


def finish_jobs(world, scenario, members, watchers, room, jobs, clock_started, timeout, diagnose=None):
    """Wait for every job to end for every watcher and the bot messages to reach every member; print; assert."""
    job_ids = [job["id"] for job in jobs]
    waited = follow_jobs(world, watchers, job_ids, timeout)
    if waited is None:
        if diagnose:
            diagnose()
        states = {w.name: {i: (w.job(i).status, w.job(i).version) for i in job_ids} for w in watchers}
        raise AssertionError(f"the jobs did not end for every watcher within {timeout} s: {states}")
    recovered = time.monotonic() - clock_started
    # The bot posts a job's outcome right after its done event.
    stored = wait_until(
        lambda: len(messages := stored_messages(world.chaos.urls[0], world.token, room)) >= len(jobs) and messages,
        "a bot message per job",
        15,
    )
    converge(members, room, [message["seq"] for message in stored], CONVERGE_SECONDS)
    figures = Figures(scenario, SEED, sent=len(jobs), recovery_seconds=recovered)
    account(figures, members, room, stored)
    final = [job for job in jobs if all(w.job(job["id"]).finished for w in watchers)]
    figures.extra.update(jobs=len(jobs), jobs_shown_final=len(final), **counts_of([*members, *watchers]))
    figures.extra["version_jumps"] = sum(w.counts["version_jumps"] for w in watchers)
    print(f"\n{figures.line()}")
    stored_jobs = check_jobs(world, watchers, job_ids)
    assert [job["status"] for job in stored_jobs] == ["succeeded"] * len(jobs), stored_jobs
    assert len(stored) == len(jobs), f"one bot message per job expected: {[m['text'] for m in stored]}"
    check_members(members, room, stored)


def test_a_celery_worker_killed_with_sigkill_mid_job(world):
    chaos = world.chaos
    members, watchers, room, jobs = job_scenario_setup(world, count=2, seconds=4, steps=8)
    starter = watchers[0]
    wait_until(lambda: all((starter.job(job["id"]).progress or 0) >= 25 for job in jobs), "25 % of each job", 30)

    chaos.kill_celery_workers()
    killed_at = time.monotonic()
    chaos.start_worker()  # as a supervisor would; the sweeper re-queues the jobs within JOB_STALE_SECONDS

    finish_jobs(world, "celery-worker-sigkill", members, watchers, room, jobs, killed_at, timeout=60)


def test_redis_restarted_while_a_job_runs(world):
    chaos = world.chaos
    members, watchers, room, jobs = job_scenario_setup(world, count=1, seconds=6, steps=12)
    (worker,) = chaos.live_workers()
    job_id = jobs[0]["id"]
    wait_until(lambda: (watchers[0].job(job_id).progress or 0) >= 16, "the job under way", 30)

    chaos.stop_redis()
    time.sleep(world.rng.uniform(1.0, 3.0))  # the fault: Redis away a moment
    chaos.start_redis()
    restarted_at = time.monotonic()

    def diagnose():
        alive = worker.popen.poll() is None
        raise AssertionError(
            f"job {job_id} did not end for every watcher within 45 s of Redis restarting; the Celery worker "
            f"{'is still running' if alive else f'exited with {worker.popen.returncode}'}:\n{worker.output()[-4000:]}"
        )

    finish_jobs(world, "redis-restart-mid-job", members, watchers, room, jobs, restarted_at, 45, diagnose)
    assert worker.popen.poll() is None, f"the Celery worker exited when Redis restarted:\n{worker.output()[-4000:]}"


def test_a_connection_that_drops_without_a_close_while_others_send(world):
    chaos = world.chaos
    port_a, port_b = chaos.ports
    room = create_room(chaos.urls[0], world.token, "chaos")
    # Through relays: two whose network goes silent (no FIN, no RST), one whose connection is reset.
    silent_relays = [world.relay(port_a), world.relay(port_b)]
    reset_relay = world.relay(port_a)
    silent = [
        world.member(port_a, "websocket", url=silent_relays[0].url, failover=False),
        world.member(port_b, "polling", url=silent_relays[1].url, failover=False),
    ]
    reset = world.member(port_a, "polling", url=reset_relay.url, failover=False)
    senders = [world.member(port_a, "websocket"), world.member(port_b, "websocket"), world.member(port_b, "polling")]
    members = [*silent, reset, *senders]
    connect_all(members)
    join_all(members, room)
    load = ChatLoad(senders, room, rate=20, count=200, rng=world.rng, label="drop").start()
    load.wait_acked(world.rng.randint(30, 60), timeout=30)

    for relay in silent_relays:
        relay.cut()
    reset_relay.reset()
    # The silent ones hear nothing; after a while the page gives up on the dead connection
    # (a browser's offline/online events; else Engine.IO's ping timeout, 45 s) and connects again.
    time.sleep(world.rng.uniform(2.0, 4.0))
    for member in silent:
        member.abandon()
    clock = RecoveryClock(members, room, chaos.urls[1], world.token)

    finish_chat(world, "drop-without-close", members, room, load, clock)
    assert all(member.counts["abandoned"] == 1 for member in silent)
    assert reset.counts["drops"] >= 1, "the reset connection was not noticed"


def test_200_clients_reconnect_at_once_after_a_process_restart(world):
    chaos = world.chaos
    port_a, port_b = chaos.ports
    room = create_room(chaos.urls[0], world.token, "chaos")
    tokens = chaos.tokens
    # Everyone on A comes back to A (no failover): a storm on the restarted process.
    storm = [
        world.member(port_a, "polling" if n % 4 == 0 else "websocket", token=tokens[n % len(tokens)], failover=False)
        for n in range(STORM_CLIENTS)
    ]
    observers = [world.member(port_b, "websocket"), world.member(port_b, "polling")]
    members = [*storm, *observers]
    started = time.monotonic()
    connect_all(members)
    join_all(members, room)
    setup_seconds = time.monotonic() - started
    # 40 s of load: it must outlast the SIGTERM's drain (up to 8 s), the restart and the clients' backoff
    # (up to 7 s between tries): on a slower machine of this kind two clients came back 12 s after the drop.
    load = ChatLoad(observers[:1], room, rate=5, count=200, rng=world.rng, label="storm").start()
    load.wait_acked(world.rng.randint(10, 20), timeout=30)

    web_a = chaos.terminate_web(port_a)
    web_a.popen.wait(timeout=30)
    chaos.restart_web(port_a)
    clock = RecoveryClock(members, room, chaos.urls[1], world.token)

    finish_chat(world, "reconnect-storm-200", members, room, load, clock, setup_seconds=round(setup_seconds, 1))
    assert all(member.url == chaos.urls[0] for member in storm)


def test_the_first_message_right_after_a_web_worker_starts(world):
    chaos = world.chaos
    port_a, port_b = chaos.ports
    room = create_room(chaos.urls[0], world.token, "chaos")
    observers = [world.member(port_b, "websocket"), world.member(port_a, "polling", failover=False)]
    connect_all(observers)
    join_all(observers, room)
    newcomers, latencies, vias = [], [], []
    rounds = ["sigkill", "sigkill", "restart"]
    world.rng.shuffle(rounds)
    for n, how in enumerate(rounds):
        restarting = None
        if how == "sigkill":
            chaos.kill_web_worker(port_a)  # its master starts a fresh worker at once
        else:
            chaos.terminate_web(port_a).popen.wait(timeout=30)
            restarting = threading.Thread(target=chaos.restart_web, args=(port_a,))
            restarting.start()
        # No wait for /readyz: two people connect as soon as the new worker takes connections,
        # join, and one sends; the other, on the same new worker, must get it live.
        listener, sender = (
            world.member(port_a, world.rng.choice(["websocket", "polling"]), failover=False, reconnect_delay_max=0.1)
            for _ in range(2)
        )
        newcomers += [listener, sender]
        connect_all([listener, sender])
        join_all([listener, sender], room)
        message = sender.send(room, f"first message of worker {n} ({how})", f"first-{n}")
        sent_at = time.monotonic()
        everyone = [*observers, *newcomers]
        wait_until(
            lambda seq=message["seq"], everyone=everyone: all(seq in shown_seqs(s, room) for s in everyone),
            f"every member to show message {message['seq']} (round {n}, {how}) with no message after it",
            15,
            interval=0.02,
        )
        latencies.append(time.monotonic() - sent_at)
        vias.append(listener.shown_via(room, message["seq"]))
        if restarting:
            restarting.join(timeout=60)

    members = [*observers, *newcomers]
    stored = stored_messages(chaos.urls[1], world.token, room)
    figures = Figures("first-message-after-start", SEED, sent=len(rounds), recovery_seconds=max(latencies))
    account(figures, members, room, stored)
    figures.extra.update(rounds="+".join(rounds), latencies="/".join(f"{s:.2f}" for s in latencies))
    figures.extra.update(listener_got_it="/".join(vias), **counts_of(members))
    print(f"\n{figures.line()}")
    check_members(members, room, stored)
    assert vias == ["live"] * len(rounds), "a member on the new worker missed its first message live"
