"""Ending logins: logout ends the session everywhere, tokens can be revoked, and sockets follow."""

import pytest

from extensions import socketio
from tests.helpers import bearer

pytestmark = pytest.mark.unit


def test_a_session_cookie_copied_before_logout_no_longer_works(app, alice):
    browser = app.test_client()
    assert browser.post("/login", data={"username": "alice", "password": alice["password"]}).status_code == 302
    cookie = browser.get_cookie("session").value
    assert browser.get("/api/rooms").status_code == 200

    copy = app.test_client()
    copy.set_cookie("session", cookie)
    assert copy.get("/api/rooms").status_code == 200
    browser.post("/logout")
    assert copy.get("/api/rooms").status_code == 401


def test_a_revoked_token_stops_working_and_its_sockets_are_disconnected(app, client, alice, connect):
    other_token = client.post("/api/tokens", json={"username": "alice", "password": alice["password"]}).json["token"]
    chat, jobs = connect(alice), connect(alice, namespace="/jobs")
    other = connect({"token": other_token})

    assert client.delete("/api/tokens", headers=bearer(alice["token"])).status_code == 204
    assert client.get("/api/rooms", headers=bearer(alice["token"])).status_code == 401
    assert not chat.is_connected("/chat") and not jobs.is_connected("/jobs")
    assert not connect(alice).is_connected("/chat")
    assert other.is_connected("/chat")  # another token of the same user is not touched
    assert client.get("/api/rooms", headers=bearer(other_token)).status_code == 200
    assert client.delete("/api/tokens", headers=bearer(alice["token"])).status_code == 401


def test_log_out_everywhere_ends_every_session_token_and_socket(app, client, alice, bob, connect):
    browser = app.test_client()
    browser.post("/login", data={"username": "alice", "password": alice["password"]})
    tabs = [connect(alice), connect(None, flask_test_client=browser)]
    bobs = connect(bob)

    assert client.delete("/api/sessions", headers=bearer(alice["token"])).status_code == 204
    assert not any(tab.is_connected("/chat") for tab in tabs)
    assert browser.get("/api/rooms").status_code == 401
    assert client.get("/api/rooms", headers=bearer(alice["token"])).status_code == 401
    assert bobs.is_connected("/chat")
    fresh = client.post("/api/tokens", json={"username": "alice", "password": alice["password"]}).json["token"]
    assert client.get("/api/rooms", headers=bearer(fresh)).status_code == 200  # logging in again works


def test_a_disabled_user_is_disconnected_and_cannot_log_in(app, client, alice, connect):
    tab = connect(alice)
    result = app.test_cli_runner().invoke(args=["users", "disable", "alice"])
    assert result.exit_code == 0, result.output
    assert not tab.is_connected("/chat")
    login = client.post("/api/tokens", json={"username": "alice", "password": alice["password"]})
    assert login.status_code == 401


def test_a_deleted_user_is_disconnected_and_leaves_no_presence(app, client, alice, bob, connect):
    alices, bobs = connect(alice), connect(bob)
    for tab in (alices, bobs):
        assert tab.emit("join", {"room": "general"}, callback=True, namespace="/chat")["ok"]
    sent = alices.emit("send", {"room": "general", "text": "bye"}, callback=True, namespace="/chat")["message"]
    bobs.get_received("/chat")

    result = app.test_cli_runner().invoke(args=["users", "delete", "alice"])
    assert result.exit_code == 0, result.output
    assert not alices.is_connected("/chat")
    presence = [e["args"][0] for e in bobs.get_received("/chat") if e["name"] == "presence"]
    assert presence == [{"room": "general", "user": "alice", "status": "offline"}]
    ack = bobs.emit("join", {"room": "general", "since_seq": 0}, callback=True, namespace="/chat")
    assert ack["online"] == ["bob"] and "alice" not in ack["members"]
    assert ack["messages"][0]["id"] == sent["id"] and ack["messages"][0]["author"].startswith("deleted-")
    assert client.post("/api/users", json={"username": "alice", "password": "new password!"}).status_code == 201
    assert socketio.server is not None
