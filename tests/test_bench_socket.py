"""The /bench namespace that make bench drives: a BaseSocket like any other, off unless asked for."""

import pytest

from app import create_app
from extensions import socketio
from tests.conftest import config_for


@pytest.fixture
def bench(monkeypatch, app, database_url, redis_url, alice):
    """Return a test client of /bench on an app started with BENCH_NAMESPACE=1."""
    monkeypatch.setenv("BENCH_NAMESPACE", "1")
    bench_app = create_app(config_for(database_url, redis_url))
    client = socketio.test_client(bench_app, namespace="/bench", auth={"token": alice["token"]})
    yield client
    if client.is_connected("/bench"):
        client.disconnect("/bench")


def test_join_then_receive_what_is_emitted_to_the_room(bench):
    assert bench.emit("join", {"room": "fan"}, namespace="/bench", callback=True) == {"ok": True, "room": "fan"}
    socketio.emit("tick", {"seq": 1}, to="fan", namespace="/bench")
    assert {"name": "tick", "args": [{"seq": 1}], "namespace": "/bench"} in bench.get_received("/bench")


def test_echo_answers_with_what_was_sent_and_checks_it(bench):
    echo = bench.emit("echo", {"sent": 1.5, "data": "x"}, namespace="/bench", callback=True)
    assert echo == {"ok": True, "sent": 1.5, "data": "x"}
    bad = bench.emit("echo", {"sent": "now"}, namespace="/bench", callback=True)
    assert bad["error"]["code"] == "invalid"


def test_bench_is_not_served_unless_asked_for(app, alice):
    client = socketio.test_client(app, namespace="/bench", auth={"token": alice["token"]})
    assert not client.is_connected("/bench")
