"""Jobs without a worker: the /jobs namespace and /api/jobs with Celery mocked at the
boundary (apply_async, revoke), and the task bodies run directly in this process."""

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from celery.app.task import Task

import tasks
from extensions import db
from models import Job, Message, Room, User, utcnow
from services.jobs import state, sweeper, worker
from services.jobs.worker import JobCancelled, JobRun, job_task
from tests.helpers import bearer, call, event_args, received

pytestmark = pytest.mark.unit

NS = "/jobs"


@pytest.fixture
def queue(monkeypatch, app):
    """Record what would be sent to Celery instead of sending it."""
    sent = {"tasks": [], "revoked": []}
    monkeypatch.setattr(
        Task, "apply_async", lambda task, args, task_id: sent["tasks"].append((task.name, args, task_id))
    )
    monkeypatch.setattr(app.extensions["celery"].control, "revoke", sent["revoked"].append)
    return sent


def task_id(app, job_id, attempt):
    """Return the Celery task id the app gives an attempt of a job."""
    with app.app_context():
        return state.task_id(job_id, attempt)


def run_task(app, job_id, attempt=1):
    """Run a job's Celery task body here, as a worker would."""
    with app.app_context():
        kind = db.session.get(Job, job_id).kind
        db.session.remove()
    state.KINDS[kind].task(job_id, attempt)


def job_row(app, job_id):
    """Return a job's stored state as the protocol shows it."""
    with app.app_context():
        state = db.session.get(Job, job_id).to_json()
        db.session.remove()
        return state


def test_start_stores_queues_and_follows_the_job(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    ack = call(client, "start", {"kind": "sleep", "params": {"seconds": 0.5, "steps": 2}}, namespace=NS)
    assert ack["ok"] is True
    job = ack["job"]
    assert job["status"] == "queued" and job["progress"] == 0 and job["owner"] == "alice" and job["room"] is None
    assert set(job) >= {
        "id",
        "kind",
        "status",
        "progress",
        "result",
        "error",
        "room",
        "owner",
        "created_at",
        "updated_at",
    }
    assert queue["tasks"] == [("roomcast.jobs.sleep", (job["id"], 1), task_id(app, job["id"], 1))]


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "mine-bitcoin", "params": {}},
        {"kind": "sleep", "params": {"seconds": 1}},
        {"kind": "sleep", "params": {"seconds": -1, "steps": 1}},
        {"kind": "sleep", "params": {"seconds": 601, "steps": 1}},
        {"kind": "sleep", "params": {"seconds": 1, "steps": 0}},
        {"kind": "sleep", "params": {"seconds": 1, "steps": 1001}},
        {"kind": "sleep", "params": {"seconds": "1", "steps": 1}},
        {"kind": "sleep", "params": {"seconds": True, "steps": 1}},
        {"kind": "sleep", "params": {"seconds": 1, "steps": 1.5}},
        {"kind": "sleep", "params": [1, 2]},
        {"kind": "export", "params": {"room": "general", "format": "xml"}},
        {"kind": "export", "params": {"room": "bad room", "format": "csv"}},
        {"kind": 7, "params": {}},
        {"params": {}},
    ],
)
def test_unknown_kinds_and_bad_params_are_invalid(connect, alice, queue, payload):
    ack = call(connect(alice, namespace=NS), "start", payload, namespace=NS)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid"
    assert queue["tasks"] == []


def test_exporting_or_announcing_into_a_room_one_cannot_read_is_refused(client, connect, alice, bob, queue):
    headers = bearer(alice["token"])
    client.post("/api/rooms", json={"name": "secret", "private": True}, headers=headers)
    bobs = connect(bob, namespace=NS)
    export = call(bobs, "start", {"kind": "export", "params": {"room": "secret", "format": "csv"}}, namespace=NS)
    assert export["error"]["code"] == "not_found"
    announce = call(
        bobs, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}, "room": "secret"}, namespace=NS
    )
    assert announce["error"]["code"] == "not_found"
    nowhere = call(bobs, "start", {"kind": "export", "params": {"room": "nowhere", "format": "csv"}}, namespace=NS)
    assert nowhere["error"]["code"] == "not_found"
    assert queue["tasks"] == []


def test_only_the_owner_may_watch_or_cancel(connect, alice, bob, queue):
    job = call(
        connect(alice, namespace=NS), "start", {"kind": "sleep", "params": {"seconds": 1, "steps": 1}}, namespace=NS
    )["job"]
    bobs = connect(bob, namespace=NS)
    for event in ("watch", "cancel"):
        assert call(bobs, event, {"job_id": job["id"]}, namespace=NS)["error"] == {
            "code": "not_found",
            "message": f"no job {job['id']}",
        }
        assert call(bobs, event, {"job_id": 999_999}, namespace=NS)["error"]["code"] == "not_found"
        assert call(bobs, event, {"job_id": "1"}, namespace=NS)["error"]["code"] == "invalid"
    assert queue["revoked"] == []
    watched = call(connect(alice, namespace=NS), "watch", {"job_id": job["id"]}, namespace=NS)
    assert watched["ok"] and watched["job"]["status"] == "queued"


def test_a_sleep_job_reports_every_step_in_order_then_done(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0.2, "steps": 4}}, namespace=NS)["job"]
    run_task(app, job["id"])

    events = [(event["name"], event_args(event)) for event in client.get_received(NS)]
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress == [0, 25, 50, 75, 100]
    # Each event carries the job's version after the change it reports: 2 (running) onwards, no holes.
    assert [data["version"] for name, data in events] == list(range(2, 2 + len(events)))
    sent_at = [datetime.fromisoformat(data["at"].removesuffix("Z")) for name, data in events if name == "progress"]
    assert sent_at == sorted(sent_at) and sent_at[-1] - sent_at[0] >= timedelta(seconds=0.15)  # the 0.2 s job
    assert events[-1] == (
        "done",
        {
            "job_id": job["id"],
            "version": 7,
            "status": "succeeded",
            "result": {"seconds": 0.2, "steps": 4},
            "error": None,
        },
    )
    stored = job_row(app, job["id"])
    assert stored["status"] == "succeeded" and stored["progress"] == 100


def test_a_job_with_a_room_posts_its_outcome_there_as_the_bot(app, connect, alice, bob, queue):
    chat = connect(bob, namespace="/chat")
    chat.emit("join", {"room": "general"}, callback=True, namespace="/chat")
    chat.get_received("/chat")
    client = connect(alice, namespace=NS)
    job = call(
        client, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}, "room": "general"}, namespace=NS
    )["job"]
    run_task(app, job["id"])
    run_task(app, job["id"])  # a duplicate delivery changes nothing

    messages = received(chat, "message", "/chat")
    assert len(messages) == 1
    assert (
        messages[0]["author"] == "bot" and f"#{job['id']}" in messages[0]["text"] and "finished" in messages[0]["text"]
    )
    history = chat.emit("history", {"room": "general"}, callback=True, namespace="/chat")["messages"]
    assert [message["id"] for message in history] == [messages[0]["id"]]


def post_many(app, room_name, count):
    """Store count messages from alice in a room; return them as the protocol shows them."""
    with app.app_context():
        room = db.session.scalar(db.select(Room).filter_by(name=room_name))
        author = db.session.scalar(db.select(User).filter_by(username="alice"))
        for n in range(count):
            text = f'line {n}, "quoted"\nsecond line'
            db.session.add(Message(room=room, author=author, text=text, client_id=f"c{n}", seq=room.last_seq + n + 1))
        room.last_seq += count
        db.session.commit()
        messages = db.session.scalars(db.select(Message).filter_by(room_id=room.id).order_by(Message.id)).all()
        shown = [message.to_json() for message in messages]
        db.session.remove()
        return shown


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_holds_exactly_the_rooms_messages_and_only_its_owner_downloads_it(
    app, client, connect, alice, bob, queue, fmt
):
    expected = post_many(app, "general", 1234)
    owner = connect(alice, namespace=NS)
    job = call(owner, "start", {"kind": "export", "params": {"room": "general", "format": fmt}}, namespace=NS)["job"]
    run_task(app, job["id"])

    progress = [data["progress"] for data in received(owner, "progress", namespace=NS)]
    assert progress == sorted(progress) and progress[-1] == 100 and len(progress) >= 4
    result = job_row(app, job["id"])["result"]
    assert result["rows"] == 1234 and result["url"] == f"/api/jobs/{job['id']}/file"

    denied = client.get(result["url"], headers=bearer(bob["token"]))
    assert denied.status_code == 404
    with client.get(result["url"], headers=bearer(alice["token"])) as answer:
        assert answer.status_code == 200 and answer.headers["Content-Disposition"].startswith("attachment")
        body = answer.get_data(as_text=True)
    if fmt == "json":
        rows = json.loads(body)
    else:
        rows = [
            {**row, "id": int(row["id"]), "seq": int(row["seq"]), "edit_seq": int(row["edit_seq"])}
            | {"edited_at": row["edited_at"] or None, "deleted": row["deleted"] == "True"}
            for row in csv.DictReader(io.StringIO(body))
        ]
    assert rows == expected


def test_an_export_of_an_empty_room_is_an_empty_file(app, connect, alice, queue):
    job = call(
        connect(alice, namespace=NS),
        "start",
        {"kind": "export", "params": {"room": "general", "format": "json"}},
        namespace=NS,
    )["job"]
    run_task(app, job["id"])
    with app.app_context():
        assert json.loads(state.export_file(job["id"], "json").read_text()) == []


@pytest.fixture
def failing_kind():
    """Register a job kind whose body raises."""

    @job_task("explode")
    def explode(run):
        run.progress(10, "about to fail")
        raise ValueError("the disk is full")

    yield
    state.KINDS.pop("explode")


def test_a_task_that_raises_ends_failed_with_its_error_and_a_log_line(app, connect, alice, queue, failing_kind, caplog):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "explode", "params": {}}, namespace=NS)["job"]
    run_task(app, job["id"])
    done = received(client, "done", namespace=NS)
    assert done == [
        {"job_id": job["id"], "version": 4, "status": "failed", "result": None, "error": "ValueError: the disk is full"}
    ]
    assert job_row(app, job["id"])["status"] == "failed"
    assert "Traceback" in caplog.text and "the disk is full" in caplog.text


def test_cancelling_a_queued_job_ends_it_at_once(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 60, "steps": 1}}, namespace=NS)["job"]
    ack = call(client, "cancel", {"job_id": job["id"]}, namespace=NS)
    assert ack["ok"] and ack["job"]["status"] == "cancelled"
    assert queue["revoked"] == [task_id(app, job["id"], 1)]
    assert received(client, "done", namespace=NS)[-1]["status"] == "cancelled"
    run_task(app, job["id"])  # the revoked task arrives anyway: it does nothing
    assert job_row(app, job["id"])["status"] == "cancelled"
    assert call(client, "cancel", {"job_id": job["id"]}, namespace=NS)["job"]["status"] == "cancelled"


def test_cancelling_a_running_job_stops_it_at_its_next_checkpoint(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 60, "steps": 1}}, namespace=NS)["job"]
    with app.app_context():
        assert worker.claim_attempt(job["id"], 1, fresh_seconds=4)
        run = JobRun(db.session.get(Job, job["id"]), 1)
        run.heartbeat_every = 0
        run.checkpoint()  # not cancelled yet
        db.session.remove()
    assert call(client, "cancel", {"job_id": job["id"]}, namespace=NS)["job"]["status"] == "running"
    with app.app_context():
        with pytest.raises(JobCancelled):
            run.checkpoint()
        db.session.remove()


def test_a_rerun_resumes_without_moving_the_bar_back(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0.1, "steps": 4}}, namespace=NS)["job"]
    with app.app_context():  # attempt 1 reported 50 % and died a while ago
        db.session.execute(
            db.update(Job)
            .filter_by(id=job["id"])
            .values(status="running", progress=50, heartbeat_at=utcnow() - timedelta(seconds=60))
        )
        db.session.commit()
    run_task(app, job["id"])
    assert [data["progress"] for data in received(client, "progress", namespace=NS)] == [50, 75, 100]


def test_a_superseded_attempt_does_nothing(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}}, namespace=NS)["job"]
    make_stale(app, job["id"], attempt=2)
    client.get_received(NS)
    run_task(app, job["id"], attempt=1)
    assert client.get_received(NS) == [] and job_row(app, job["id"])["status"] == "running"


def test_a_task_put_back_after_its_process_died_runs_once_the_heartbeat_stops(app, connect, alice, queue):
    app.config["JOB_HEARTBEAT_SECONDS"] = 0.1
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}}, namespace=NS)["job"]
    with app.app_context():
        assert worker.claim_attempt(job["id"], 1, fresh_seconds=1)  # a process took it, then died
        assert not worker.claim_attempt(job["id"], 1, fresh_seconds=1)  # its heartbeat is still fresh
        db.session.remove()
    run_task(app, job["id"], attempt=1)  # the same task, back in the queue
    assert job_row(app, job["id"])["status"] == "succeeded"


def make_stale(app, job_id, **values):
    """Pretend the job's worker vanished a minute ago."""
    with app.app_context():
        stale = {"status": "running", "heartbeat_at": utcnow() - timedelta(seconds=60), **values}
        db.session.execute(db.update(Job).filter_by(id=job_id).values(**stale))
        db.session.commit()
        db.session.remove()


def sweep(app):
    with app.app_context():
        sweeper.sweep_stale_jobs()
        db.session.remove()


def test_the_sweeper_requeues_a_vanished_workers_job_then_fails_it(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}}, namespace=NS)["job"]
    app.config["JOB_MAX_ATTEMPTS"] = 2
    make_stale(app, job["id"])
    sweep(app)
    assert job_row(app, job["id"])["status"] == "queued"
    assert queue["tasks"][-1] == ("roomcast.jobs.sleep", (job["id"], 2), task_id(app, job["id"], 2))

    make_stale(app, job["id"])
    sweep(app)
    state = job_row(app, job["id"])
    assert state["status"] == "failed" and "stopped responding" in state["error"]
    assert received(client, "done", namespace=NS)[-1]["status"] == "failed"
    run_task(app, job["id"], attempt=1)  # the broker redelivers the first attempt at last: ignored
    assert job_row(app, job["id"])["status"] == "failed"


def test_the_sweeper_ends_a_vanished_job_that_was_being_cancelled(app, connect, alice, queue):
    client = connect(alice, namespace=NS)
    job = call(client, "start", {"kind": "sleep", "params": {"seconds": 0, "steps": 1}}, namespace=NS)["job"]
    make_stale(app, job["id"], cancel_requested=True)
    sweep(app)
    assert job_row(app, job["id"])["status"] == "cancelled"


def test_http_jobs_are_the_same_jobs(client, connect, alice, bob, queue):
    headers = bearer(alice["token"])
    answer = client.post("/api/jobs", json={"kind": "sleep", "params": {"seconds": 1, "steps": 1}}, headers=headers)
    assert answer.status_code == 202
    job = answer.get_json()["job"]
    assert answer.headers["Location"] == f"/api/jobs/{job['id']}"
    assert client.get(answer.headers["Location"], headers=headers).get_json() == {"job": job}
    assert [listed["id"] for listed in client.get("/api/jobs", headers=headers).get_json()] == [job["id"]]
    other = client.get(f"/api/jobs/{job['id']}", headers=bearer(bob["token"]))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/jobs/{job['id']}/file", headers=headers).status_code == 404
    bad = client.post("/api/jobs", json={"kind": "sleep", "params": {"seconds": 1}}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid"
    watched = call(connect(alice, namespace=NS), "watch", {"job_id": job["id"]}, namespace=NS)
    assert watched["job"]["id"] == job["id"]


def test_a_job_started_while_the_queue_is_down_is_queued_when_it_is_back(monkeypatch, app, connect, alice, queue):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis")

    client = connect(alice, namespace=NS)
    with monkeypatch.context() as broken:
        broken.setattr(Task, "apply_async", broker_down)
        ack = call(client, "start", {"kind": "sleep", "params": {"seconds": 1, "steps": 1}}, namespace=NS)
        assert ack["ok"] and ack["job"]["status"] == "queued" and queue["tasks"] == []
        with app.app_context():
            sweeper.sweep_stale_jobs()  # still down: nothing queued, nothing lost
            db.session.remove()
    assert queue["tasks"] == []
    with app.app_context():
        sweeper.sweep_stale_jobs()
        assert [job.dispatch_pending for job in db.session.scalars(db.select(Job))] == [False]
        db.session.remove()
    assert [args for _, args, _ in queue["tasks"]] == [(ack["job"]["id"], 1)]


def test_metrics_count_jobs_by_kind_and_status(client, connect, alice, queue):
    call(connect(alice, namespace=NS), "start", {"kind": "sleep", "params": {"seconds": 1, "steps": 1}}, namespace=NS)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'roomcast_jobs{kind="sleep",status="queued"} 1.0' in text


def test_the_tasks_module_registers_both_kinds():
    assert {"sleep", "export"} <= set(state.KINDS) and tasks.sleep.name == "roomcast.jobs.sleep"


def test_csv_cells_a_spreadsheet_would_run_are_escaped(app, client, connect, alice, queue):
    owner = connect(alice, namespace=NS)
    chat = connect(alice, namespace="/chat")
    texts = ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx", "plain = text"]
    for text in texts:
        assert chat.emit("send", {"room": "general", "text": text}, callback=True, namespace="/chat")["ok"]
    job = call(owner, "start", {"kind": "export", "params": {"room": "general", "format": "csv"}}, namespace=NS)["job"]
    run_task(app, job["id"])
    with client.get(f"/api/jobs/{job['id']}/file", headers=bearer(alice["token"])) as answer:
        cells = [row["text"] for row in csv.DictReader(io.StringIO(answer.get_data(as_text=True)))]
    assert cells == ["'=1+1", "'+SUM(A1)", "'-2", "'@cmd", "'\tx", "'\rx", "plain = text"]
