"""The browser pages: CSRF-protected register, login and logout forms."""

import pytest

from app import create_app
from tests.helpers import config_for, csrf_token

pytestmark = pytest.mark.unit


@pytest.fixture
def csrf_app(app):
    """Turn CSRF protection back on, as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def form_post(client, path, **fields):
    """Submit a form the way a browser does: fetch it, then post it with its token."""
    fields["csrf_token"] = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data=fields)


def test_the_chat_page_needs_a_login(client):
    answer = client.get("/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_register_logs_in_and_serves_the_chat_page(csrf_app, client):
    answer = form_post(client, "/register", username="alice", password="correct horse", confirm="correct horse")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "alice" in page


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"username": "al", "password": "correct horse", "confirm": "correct horse"}, "3 to 32"),
        ({"username": "alice", "password": "short", "confirm": "short"}, "8 to 128 characters"),
        ({"username": "alice", "password": "correct horse", "confirm": "other horse"}, "Passwords differ"),
    ],
)
def test_register_explains_what_is_wrong(csrf_app, client, fields, complaint):
    answer = form_post(client, "/register", **fields)
    assert answer.status_code == 400 and complaint in answer.get_data(as_text=True)


def test_register_refuses_a_taken_name(csrf_app, client, make_user):
    make_user("alice")
    answer = form_post(client, "/register", username="alice", password="correct horse", confirm="correct horse")
    assert answer.status_code == 400 and "taken" in answer.get_data(as_text=True)


def test_forms_without_the_csrf_token_are_refused(csrf_app, client, make_user):
    make_user("alice")
    answer = client.post("/login", data={"username": "alice", "password": "correct horse"})
    assert answer.status_code == 400
    assert client.get("/").status_code == 302


def test_login_then_logout(csrf_app, client, make_user):
    make_user("alice")
    assert form_post(client, "/login", username="alice", password="wrong").status_code == 400
    answer = form_post(client, "/login", username="alice", password="correct horse")
    assert answer.status_code == 302
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_the_socket_io_client_is_served_from_npm(client):
    with client.get("/vendor/socket.io/socket.io.esm.min.js") as answer:
        assert answer.status_code == 200 and b"Socket" in answer.data


@pytest.mark.parametrize("websocket_only, transports", [("0", ["polling", "websocket"]), ("1", ["websocket"])])
def test_the_page_and_clients_follow_the_transport_setting(
    monkeypatch, database_url, redis_url, instance_path, make_user, websocket_only, transports
):
    monkeypatch.setenv("WEBSOCKET_ONLY", websocket_only)
    client = create_app(config_for(database_url, redis_url, instance_path)).test_client()
    assert client.get("/api/socketio").get_json() == {"path": "/socket.io", "transports": transports}
    make_user("alice")
    client.post("/login", data={"username": "alice", "password": "correct horse"})
    assert f'data-transports="{",".join(transports)}"' in client.get("/").get_data(as_text=True)
    handshake = client.get("/socket.io/?EIO=4&transport=polling")
    assert handshake.status_code == (200 if "polling" in transports else 400)


def test_every_response_carries_the_security_headers(client):
    for path in ("/login", "/api/socketio", "/healthz", "/api/nothing"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"


def test_every_page_names_an_icon_that_is_served(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'rel="icon" href="/static/favicon.svg"' in page
    for path in ("/static/favicon.svg", "/favicon.ico"):
        with client.get(path) as answer:
            assert answer.status_code == 200 and answer.mimetype == "image/svg+xml", path
