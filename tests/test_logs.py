"""Structured logs (core/logs.py): JSON lines with their context, one grep of a job id across web and worker."""

import io
import json
import logging
import logging.config

import pytest
import requests

from core.logs import log_context, logging_config
from tests.clients import SocketClient, follow_to_the_end, register
from tests.realstack import running_stack

SECRET_TEXT = "the text of a message is never logged"
PASSWORD = "correct horse"  # what tests.clients.register gives


def json_lines(text):
    """Return the JSON objects among a process's output lines (other lines are not ours)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def captured():
    """Configure logging as a process would, into a buffer; restore pytest's logging after."""
    saved = logging.root.handlers[:], logging.root.level
    buffer = io.StringIO()

    def configure(log_format):
        config = logging_config(log_format, "INFO")
        config["handlers"]["stderr"]["stream"] = buffer
        logging.config.dictConfig(config)
        return buffer

    yield configure
    logging.root.handlers[:], _ = saved
    logging.root.setLevel(saved[1])


@pytest.mark.unit
def test_a_json_line_carries_its_context_and_a_text_line_shows_it(captured):
    buffer = captured("json")
    with log_context(sid="abc", user=7, room=None), log_context(job_id=3):
        logging.getLogger("roomcast.test").info("job %s", "queued", extra={"attempt": 2})
    logging.getLogger("roomcast.test").info("outside")
    inside, outside = json_lines(buffer.getvalue())
    assert inside["message"] == "job queued" and inside["level"] == "INFO" and inside["logger"] == "roomcast.test"
    assert (inside["sid"], inside["user"], inside["job_id"], inside["attempt"]) == ("abc", 7, 3, 2)
    assert "room" not in inside and "time" in inside and "pid" in inside
    assert "sid" not in outside  # the context ended with its block

    buffer = captured("text")
    with log_context(job_id=3, attempt=1):
        logging.getLogger("roomcast.test").warning("stale")
    assert buffer.getvalue().rstrip().endswith("WARNING roomcast.test: stale [job_id=3 attempt=1]")


@pytest.mark.unit
def test_a_bad_log_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config("xml")


@pytest.mark.unit
def test_each_http_answer_names_its_request_id(client):
    given = client.get("/healthz", headers={"X-Request-ID": "edge-42.a_b"})
    assert given.headers["X-Request-ID"] == "edge-42.a_b"  # a proxy's id, kept
    for bad in ("", "has space", "x" * 65, "<script>"):
        answer = client.get("/healthz", headers={"X-Request-ID": bad})
        assert answer.headers["X-Request-ID"] != bad and len(answer.headers["X-Request-ID"]) == 32


@pytest.mark.integration
def test_one_grep_of_a_job_id_follows_it_through_web_and_worker(tmp_root, redis_url):
    with running_stack(tmp_root, redis_url, "json-logs", LOG_FORMAT="json") as stack:
        web, worker = stack.start_web(), stack.start_worker()
        token = register(stack.url, "alice")
        chat = SocketClient(stack.url, token, "websocket").connect()
        jobs = SocketClient(stack.url, token, "websocket", namespace="/jobs").connect()
        try:
            assert chat.call("join", {"room": "general"})["ok"]
            sent = chat.call("send", {"room": "general", "text": SECRET_TEXT})["message"]
            start = {"kind": "sleep", "params": {"seconds": 0.2, "steps": 2}, "room": "general"}
            job = jobs.call("start", start)["job"]
            _, done = follow_to_the_end(jobs, job["id"])
            assert done["status"] == "succeeded"
            answer = requests.get(f"{stack.url}/healthz", headers={"X-Request-ID": "probe-1"}, timeout=10)
            assert answer.headers["X-Request-ID"] == "probe-1"
        finally:
            chat.close()
            jobs.close()
    web_log, worker_log = web.output(), worker.output()  # the stack has stopped: every line is written

    # One grep, as an operator would type it, finds the job's whole life in both logs.
    needle = f'"job_id": {job["id"]}'
    in_web = [json.loads(line) for line in web_log.splitlines() if needle in line]
    in_worker = [json.loads(line) for line in worker_log.splitlines() if needle in line]
    assert [line["message"] for line in in_web][:2] == ["job created", "job queued"], in_web
    assert {line["user"] for line in in_web[:2]} == {job_owner_id(web_log)}
    worker_messages = [line["message"] for line in in_worker]
    assert worker_messages[0] == "job running" and "job succeeded" in worker_messages, in_worker
    assert all(line["attempt"] == 1 for line in in_worker)

    web_lines = json_lines(web_log)
    stored = [line for line in web_lines if line["message"] == "message stored"]
    assert [(line["room"], line["seq"], line["message_id"]) for line in stored] == [("general", 1, sent["id"])]
    access = [line["message"] for line in web_lines if "/healthz" in line["message"]]
    assert any("request_id=probe-1" in line for line in access), access  # gunicorn's access line
    for secret in (SECRET_TEXT, PASSWORD, token):
        assert secret not in web_log and secret not in worker_log


def job_owner_id(web_log):
    """Return the user id the web log gives alice's connection."""
    return next(line["user"] for line in json_lines(web_log) if line["message"] == "connected")
