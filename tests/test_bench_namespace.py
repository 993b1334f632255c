"""The /bench namespace that make bench drives (bench/namespace.py): a BaseSocket like any other, not in the product."""

import pytest

from bench.namespace import BenchSocket
from extensions import socketio

pytestmark = pytest.mark.unit


@pytest.fixture
def bench(app, alice):
    """Return a test client of /bench, registered on the app as bench/roomcast_wsgi.py does."""
    socketio.on_namespace(BenchSocket("/bench"))
    client = socketio.test_client(app, namespace="/bench", auth={"token": alice["token"]})
    yield client
    if client.is_connected("/bench"):
        client.disconnect("/bench")


def test_join_then_receive_what_is_emitted_to_the_room(bench):
    assert bench.emit("join", {"room": "fan"}, namespace="/bench", callback=True) == {"ok": True, "room": "fan"}
    socketio.emit("tick", {"seq": 1}, to="room:fan", namespace="/bench")
    assert {"name": "tick", "args": [{"seq": 1}], "namespace": "/bench"} in bench.get_received("/bench")


def test_echo_answers_with_what_was_sent_and_checks_it(bench):
    echo = bench.emit("echo", {"sent": 1.5, "data": "x"}, namespace="/bench", callback=True)
    assert echo == {"ok": True, "sent": 1.5, "data": "x"}
    bad = bench.emit("echo", {"sent": "now"}, namespace="/bench", callback=True)
    assert bad["error"]["code"] == "invalid"


def test_the_product_does_not_serve_bench(app, alice):
    client = socketio.test_client(app, namespace="/bench", auth={"token": alice["token"]})
    assert not client.is_connected("/bench")
