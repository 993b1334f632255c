"""What several test modules share: the tests' configuration, Socket.IO test-client calls, HTTP API helpers."""

import os
import re
import time
import uuid

import requests

from config import TestingConfig
from tests.clients import session_from

# Integration stacks notice a vanished worker within seconds, not the default half minute.
FAST_JOB_RECOVERY = {"JOB_HEARTBEAT_SECONDS": "0.5", "JOB_STALE_SECONDS": "5", "JOB_SWEEP_SECONDS": "0.5"}


def config_for(database_url, redis_url, instance_path):
    """Build a TestingConfig on the given database, Redis and instance folder, with private Redis keys."""
    config = TestingConfig(instance_path)
    config.SQLALCHEMY_DATABASE_URI = database_url
    config.REDIS_URL = redis_url
    config.REDIS_KEY_PREFIX = prefix = f"roomcast-test-{uuid.uuid4().hex[:8]}:"
    config.SOCKETIO_CHANNEL = prefix + "socketio"
    config.CELERY = {**config.CELERY, "broker_url": redis_url, "task_default_queue": prefix + "jobs"}
    config.EXPORT_DIR = os.path.join(instance_path, "exports", prefix.rstrip(":"))
    return config


def wait_until(condition, what, timeout=10, interval=0.1):
    """Poll condition until it returns something true, and return that; fail after timeout saying what."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return result


def call(client, event, payload, namespace="/chat"):
    """Emit from a Socket.IO test client with an ack and return the ack."""
    return client.emit(event, payload, callback=True, namespace=namespace)


def event_args(event):
    """Return an event's payload (the test client lists args of emits made in a handler)."""
    return event["args"][0] if isinstance(event["args"], list) else event["args"]


def received(client, name, namespace="/chat"):
    """Return the payloads of the events of that name a Socket.IO test client received."""
    return [event_args(event) for event in client.get_received(namespace) if event["name"] == name]


def bearer(token):
    """Return the Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def create_room(url, token, prefix="r", source_address=None, timeout=10):
    """Create a fresh public room over HTTP, so messages from other tests never land in it; return its name.

    source_address: the loopback address to post from (tests.clients.session_from), if not the default.
    """
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    session = session_from(source_address) if source_address else requests.Session()
    with session:
        answer = session.post(f"{url}/api/rooms", json={"name": name}, headers=bearer(token), timeout=timeout)
    assert answer.status_code == 201, answer.text
    return name


def csrf_token(html):
    """Pull the CSRF token out of a page (a form field or the meta tag)."""
    match = re.search(r'(?:name="csrf_token"[^>]*value|name="csrf-token"[^>]*content)="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def flood(sender, room, count, until=None, deadline_seconds=120, pause=0.0, text="x" * 4000):
    """Send count messages, one after another (pause seconds apart); ask until() every 50 sends.

    Return the seqs sent and the seconds it took until() to be true (None if it never was).
    """
    seqs, started, reached = [], time.monotonic(), None
    for n in range(count):
        ack = sender.call("send", {"room": room, "text": text, "client_id": f"f{n}"}, timeout=30)
        assert ack["ok"], ack
        seqs.append(ack["message"]["seq"])
        if until is not None and reached is None and n % 50 == 49 and until():
            reached = time.monotonic() - started
        assert time.monotonic() - started < deadline_seconds, f"{n + 1} sends took over {deadline_seconds} s"
        time.sleep(pause)
    return seqs, reached
