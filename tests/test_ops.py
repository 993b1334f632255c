"""Health checks and metrics."""

import pytest

from app import create_app
from devtools.embedded_redis import free_port
from tests.helpers import config_for

pytestmark = pytest.mark.unit


def test_healthz_answers_while_the_process_serves(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_the_database_and_redis(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["failed"] == [] and body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_names_redis_when_it_is_down(database_url, instance_path):
    app = create_app(config_for(database_url, f"redis://127.0.0.1:{free_port()}/0", instance_path))
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["failed"] == ["redis"] and "Connection" in body["checks"]["redis"]["error"]


def test_readyz_names_the_database_when_it_is_down(tmp_path, redis_url):
    app = create_app(config_for(f"sqlite:///{tmp_path}/missing/folder/db.sqlite", redis_url, tmp_path))
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["failed"] == ["database"]


def test_metrics_count_connections_events_and_requests(client, connect, make_user):
    alice = make_user("alice")
    socket = connect(alice)
    socket.emit("join", {"room": "general"}, callback=True, namespace="/chat")
    socket.emit("join", {"room": 5}, callback=True, namespace="/chat")
    client.get("/healthz")

    page = client.get("/metrics")
    assert page.status_code == 200 and page.mimetype == "text/plain"
    text = page.get_data(as_text=True)
    assert 'roomcast_connected_clients{namespace="/chat"}' in text
    assert 'roomcast_socket_events_total{event="join",namespace="/chat",outcome="ok"}' in text
    assert 'roomcast_socket_events_total{event="join",namespace="/chat",outcome="invalid"}' in text
    assert 'roomcast_http_requests_total{method="GET",status="200"}' in text
