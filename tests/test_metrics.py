"""Delivery and job metrics in /metrics: Redis publish-to-delivery latency, job queue wait and run time, the queue."""

import time
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from devtools.embedded_redis import free_port
from extensions import db
from models import Job, User, utcnow
from services.jobs.worker import claim_attempt
from tests.clients import SocketClient, follow_to_the_end, register
from tests.helpers import config_for
from tests.realstack import running_stack


def samples(text):
    """Return {(sample name, sorted labels): value} from a metrics page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.unit
def test_job_timing_and_the_queue_length_are_read_at_scrape_time(app, client, alice):
    with app.app_context():
        owner = db.session.get(User, alice["id"])
        for queued, ran in ((0.2, 3.0), (40.0, None)):
            db.session.add(Job(kind="sleep", params={}, owner=owner, queue_seconds=queued, run_seconds=ran))
        db.session.commit()
        queue = app.config["CELERY"]["task_default_queue"]
        app.extensions["redis_store"].client.rpush(queue, "a task", "another")
        db.session.remove()
    found = samples(client.get("/metrics").get_data(as_text=True))
    kind = (("kind", "sleep"),)
    assert found[("roomcast_job_queue_seconds_count", kind)] == 2
    assert found[("roomcast_job_queue_seconds_sum", kind)] == pytest.approx(40.2)
    assert found[("roomcast_job_queue_seconds_bucket", (("kind", "sleep"), ("le", "0.25")))] == 1
    assert found[("roomcast_job_queue_seconds_bucket", (("kind", "sleep"), ("le", "60.0")))] == 2
    assert found[("roomcast_job_run_seconds_count", kind)] == 1  # the other never ran
    assert found[("roomcast_job_run_seconds_bucket", (("kind", "sleep"), ("le", "2.5")))] == 0
    assert found[("roomcast_celery_queue_length", ())] == 2


@pytest.mark.unit
def test_metrics_are_served_while_the_broker_is_away(database_url, instance_path):
    app = create_app(config_for(database_url, f"redis://127.0.0.1:{free_port()}/0", instance_path))
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 200  # what says what is wrong is still there
    found = samples(answer.get_data(as_text=True))
    assert ("roomcast_publish_failures_total", ()) in found
    assert not any(name == "roomcast_celery_queue_length" for name, _ in found)


@pytest.mark.unit
def test_job_waits_are_kept_when_a_running_job_is_taken_over(app, alice):
    with app.app_context():
        job = Job(kind="sleep", params={}, owner=db.session.get(User, alice["id"]), queued_at=utcnow())
        db.session.add(job)
        db.session.commit()
        assert claim_attempt(job.id, 1, fresh_seconds=0, queued_at=job.queued_at - timedelta(seconds=2))
        db.session.refresh(job)
        waited = job.queue_seconds
        # Its runner died: the task comes back for the same attempt, the job still running.
        assert claim_attempt(job.id, 1, fresh_seconds=0, queued_at=job.queued_at - timedelta(seconds=600))
        db.session.refresh(job)
        assert 2 <= waited < 60 and job.queue_seconds == waited
        db.session.remove()


@pytest.mark.integration
def test_a_message_and_a_job_show_in_the_delivery_and_job_metrics(tmp_root, redis_url):
    with running_stack(tmp_root, redis_url, "metrics") as stack:
        stack.start_web()
        other = f"http://127.0.0.1:{free_port()}"  # delivers what the first publishes, through Redis
        stack.start_web(port=int(other.rsplit(":", 1)[1]))
        stack.start_worker()
        token = register(stack.url, "alice")
        sender = SocketClient(stack.url, token, "websocket").connect()
        chat = SocketClient(other, token, "websocket").connect()
        jobs = SocketClient(other, token, "websocket", namespace="/jobs").connect()  # the worker publishes
        try:
            assert chat.call("join", {"room": "general"})["ok"]  # the other process now follows general
            sender.call("send", {"room": "general", "text": "hi"})
            chat.wait_for("message")
            job = jobs.call("start", {"kind": "sleep", "params": {"seconds": 0.2, "steps": 2}})["job"]
            assert follow_to_the_end(jobs, job["id"])[1]["status"] == "succeeded"
            deadline, found = time.monotonic() + 10, {}
            while time.monotonic() < deadline:  # the last events are observed as they are delivered
                found = samples(requests.get(f"{other}/metrics", timeout=5).text)
                if found.get(("roomcast_delivery_seconds_count", (("event", "done"), ("namespace", "/jobs")))):
                    break
                time.sleep(0.1)
        finally:
            for client in (sender, chat, jobs):
                client.close()
    message = (("event", "message"), ("namespace", "/chat"))
    assert found[("roomcast_delivery_seconds_count", message)] == 1
    assert 0 < found[("roomcast_delivery_seconds_sum", message)] < 5
    assert found[("roomcast_delivery_seconds_count", (("event", "progress"), ("namespace", "/jobs")))] >= 2
    assert found[("roomcast_job_queue_seconds_count", (("kind", "sleep"),))] == 1  # any process says the same
    assert 0.1 < found[("roomcast_job_run_seconds_sum", (("kind", "sleep"),))] < 30
    assert found[("roomcast_celery_queue_length", ())] == 0
    assert [value for (name, _), value in found.items() if name == "roomcast_listener_subscribed"] == [1]
