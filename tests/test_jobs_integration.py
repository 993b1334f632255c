"""/jobs against the real stack: gunicorn + Redis + real Celery workers, over both transports."""

import contextlib
import csv
import io
import itertools
import os
import signal
import time
import uuid

import pytest
import requests

from tests.clients import SocketClient, follow_to_the_end, register
from tests.helpers import FAST_JOB_RECOVERY, bearer
from tests.realstack import running_stack

pytestmark = pytest.mark.integration

TRANSPORTS = ["websocket", "polling"]
names = (f"j{uuid.uuid4().hex[:6]}{n}" for n in itertools.count())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_sleep_jobs_progress_arrives_in_order_and_ends_with_done(stack, open_client, transport):
    token = register(stack.url, next(names))
    client = open_client(token, transport, namespace="/jobs")
    ack = client.call("start", {"kind": "sleep", "params": {"seconds": 1, "steps": 5}})
    assert ack["ok"] and ack["job"]["status"] in ("queued", "running")  # a quick worker may have it already

    progress, done = follow_to_the_end(client, ack["job"]["id"])
    assert progress == [0, 20, 40, 60, 80, 100]
    assert done == {
        "job_id": ack["job"]["id"],
        "version": 8,  # 1 queued, 2 running, 3 to 7 the five steps, 8 done
        "status": "succeeded",
        "result": {"seconds": 1, "steps": 5},
        "error": None,
    }
    stored = requests.get(f"{stack.url}/api/jobs/{ack['job']['id']}", headers=bearer(token), timeout=10).json()["job"]
    assert stored["status"] == "succeeded" and stored["progress"] == 100


def test_an_export_is_exactly_the_rooms_messages_and_the_room_hears_the_bot(stack, open_client):
    owner, other = register(stack.url, next(names)), register(stack.url, next(names))
    room = f"x{uuid.uuid4().hex[:8]}"
    requests.post(f"{stack.url}/api/rooms", json={"name": room}, headers=bearer(owner), timeout=10)
    chat = open_client(owner, "websocket")
    sent = [chat.call("send", {"room": room, "text": f'message {n}, with "quotes"\n'})["message"] for n in range(30)]
    listener = open_client(other, "websocket")
    assert listener.call("join", {"room": room})["ok"]

    jobs = open_client(owner, "websocket", namespace="/jobs")
    ack = jobs.call("start", {"kind": "export", "params": {"room": room, "format": "csv"}, "room": room})
    _, done = follow_to_the_end(jobs, ack["job"]["id"])
    assert done["status"] == "succeeded" and done["result"]["rows"] == 30

    bot = listener.wait_for("message", lambda message: message["author"] == "bot")
    assert f"#{ack['job']['id']}" in bot["text"] and "30 messages" in bot["text"]
    body = requests.get(stack.url + done["result"]["url"], headers=bearer(owner), timeout=10).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(int(row["id"]), row["text"], row["author"]) for row in rows] == [
        (message["id"], message["text"], message["author"]) for message in sent
    ]
    assert requests.get(stack.url + done["result"]["url"], headers=bearer(other), timeout=10).status_code == 404


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_that_reconnects_mid_job_gets_the_truth_from_watch(stack, open_client, transport):
    token = register(stack.url, next(names))
    first = open_client(token, transport, namespace="/jobs")
    job = first.call("start", {"kind": "sleep", "params": {"seconds": 2, "steps": 4}})["job"]
    first.wait_for("progress", lambda data: data["progress"] >= 25)
    first.close()
    time.sleep(2.5)  # the job ends while nobody listens

    again = open_client(token, transport, namespace="/jobs")
    watched = again.call("watch", {"job_id": job["id"]})
    assert watched["ok"] and watched["job"]["status"] == "succeeded" and watched["job"]["progress"] == 100


def test_another_user_can_neither_watch_nor_cancel_nor_download(stack, open_client):
    owner, intruder = register(stack.url, next(names)), register(stack.url, next(names))
    jobs = open_client(owner, "websocket", namespace="/jobs")
    job = jobs.call("start", {"kind": "export", "params": {"room": "general", "format": "json"}})["job"]
    _, done = follow_to_the_end(jobs, job["id"])

    theirs = open_client(intruder, "polling", namespace="/jobs")
    assert theirs.call("watch", {"job_id": job["id"]})["error"]["code"] == "not_found"
    assert theirs.call("cancel", {"job_id": job["id"]})["error"]["code"] == "not_found"
    assert requests.get(f"{stack.url}/api/jobs/{job['id']}", headers=bearer(intruder), timeout=10).status_code == 404
    assert requests.get(stack.url + done["result"]["url"], headers=bearer(intruder), timeout=10).status_code == 404
    assert requests.get(stack.url + done["result"]["url"], headers=bearer(owner), timeout=10).status_code == 200


def test_cancel_stops_the_work(stack, open_client):
    token = register(stack.url, next(names))
    jobs = open_client(token, "websocket", namespace="/jobs")
    job = jobs.call("start", {"kind": "sleep", "params": {"seconds": 60, "steps": 60}})["job"]
    jobs.wait_for("progress", lambda data: data["progress"] >= 1)
    asked = time.monotonic()
    assert jobs.call("cancel", {"job_id": job["id"]})["ok"]
    done = jobs.wait_for("done", lambda data: data["job_id"] == job["id"], timeout=10)
    assert done["status"] == "cancelled" and time.monotonic() - asked < 5
    stopped_at = requests.get(f"{stack.url}/api/jobs/{job['id']}", headers=bearer(token), timeout=10).json()["job"]
    time.sleep(1.5)
    later = requests.get(f"{stack.url}/api/jobs/{job['id']}", headers=bearer(token), timeout=10).json()["job"]
    assert later["status"] == "cancelled" and later["progress"] == stopped_at["progress"] < 100


def test_a_job_started_over_http_streams_to_the_owners_watching_socket(stack, open_client):
    token = register(stack.url, next(names))
    answer = requests.post(
        f"{stack.url}/api/jobs",
        json={"kind": "sleep", "params": {"seconds": 1.5, "steps": 3}},
        headers=bearer(token),
        timeout=10,
    )
    assert answer.status_code == 202
    job_id = answer.json()["job"]["id"]
    jobs = open_client(token, "polling", namespace="/jobs")
    assert jobs.call("watch", {"job_id": job_id})["ok"]
    _, done = follow_to_the_end(jobs, job_id)
    assert done["status"] == "succeeded"


def first_quarter(client, stack):
    """Wait for a job's progress to reach 25 %; on failure show what the processes logged."""
    try:
        client.wait_for("progress", lambda data: data["progress"] >= 25, timeout=30)
    except AssertionError as error:
        logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in [stack.web, *stack.workers])
        raise AssertionError(f"{error}\n{logs}") from None


@pytest.fixture
def crash_stack(tmp_root, redis_url):
    """Return a factory of stacks of their own (web only), whose workers the test kills."""
    with contextlib.ExitStack() as stacks:

        def make(**env):
            label = f"crash{uuid.uuid4().hex[:6]}"
            real = stacks.enter_context(running_stack(tmp_root, redis_url, label, **{**FAST_JOB_RECOVERY, **env}))
            real.start_web()
            return real

        yield make


def test_a_job_survives_its_worker_being_killed(crash_stack):
    stack = crash_stack()
    doomed = stack.start_worker()
    token = register(stack.url, next(names))
    jobs = SocketClient(stack.url, token, "websocket", namespace="/jobs").connect()
    try:
        job = jobs.call("start", {"kind": "sleep", "params": {"seconds": 4, "steps": 8}})["job"]
        first_quarter(jobs, stack)
        doomed.signal(signal.SIGKILL)  # the whole worker: its main process and its pool
        doomed.popen.wait()
        stack.start_worker()

        progress, done = follow_to_the_end(jobs, job["id"], timeout=60)
        assert done["status"] == "succeeded"
        assert progress == sorted(progress) and progress[-1] == 100  # the re-run resumed; the bar never went back
        assert f"job {job['id']}: its worker stopped responding; queued attempt 2" in stack.web.output()
    finally:
        jobs.close()


def test_a_job_whose_pool_process_is_killed_is_put_back_and_finished(crash_stack):
    # Celery puts the task back (acks_late, reject_on_worker_lost) about 10 s
    # after its process dies; the sweeper waits longer here, so it stays out.
    stack = crash_stack(JOB_STALE_SECONDS="45")
    worker = stack.start_worker()
    token = register(stack.url, next(names))
    jobs = SocketClient(stack.url, token, "websocket", namespace="/jobs").connect()
    try:
        job = jobs.call("start", {"kind": "sleep", "params": {"seconds": 4, "steps": 8}})["job"]
        first_quarter(jobs, stack)
        for pid in worker.child_pids():  # the main process lives on and sees its task's process die
            os.kill(pid, signal.SIGKILL)

        progress, done = follow_to_the_end(jobs, job["id"], timeout=60)
        assert done["status"] == "succeeded" and progress == sorted(progress)
        assert "WorkerLostError" in worker.output()
        assert "queued attempt" not in stack.web.output()  # Celery put the task back, not the sweeper
    finally:
        jobs.close()
