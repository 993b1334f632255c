"""The throttles every process shares: logins, registrations, events, messages, connections, jobs."""

import pytest

from app import create_app
from core.errors import ProtocolError
from devtools.embedded_redis import free_port
from extensions import db, redis_store
from models import User
from services import throttle
from services.accounts import issue_token, revoke, token_login
from tests.helpers import bearer, call, config_for

pytestmark = pytest.mark.unit

LIMITS = {
    "LOGIN_ATTEMPTS_PER_USERNAME": 3,
    "LOGIN_ATTEMPTS_PER_ADDRESS": 5,
    "REGISTRATIONS_PER_ADDRESS_PER_HOUR": 2,
    "USER_EVENTS_PER_10S": 8,
    "USER_MESSAGES_PER_10S": 4,
    "CONNECTIONS_PER_USER": 2,
    "JOBS_PER_USER": 2,
    "ROOMS_PER_USER_PER_HOUR": 2,
}


@pytest.fixture(name="app")
def limited_app(app, database_url, redis_url):
    """The test app, with small limits."""
    for name, value in LIMITS.items():
        app.config[name] = value
    return app


def assert_limited(response):
    """Check a 429 rate_limited answer with its Retry-After."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def login(client, username, password="wrong password", address="10.0.0.1"):
    """Ask for a token from a given client address."""
    body = {"username": username, "password": password}
    return client.post("/api/tokens", json=body, environ_base={"REMOTE_ADDR": address})


def test_login_attempts_are_limited_per_username_and_cleared_by_success(client, alice):
    for _ in range(2):
        assert login(client, "alice").status_code == 401
    assert login(client, "alice", alice["password"]).status_code == 200  # success clears the count
    for _ in range(3):
        assert login(client, "alice", address="10.0.0.2").status_code == 401
    assert_limited(login(client, "alice", alice["password"], address="10.0.0.3"))  # even the right one, for now
    assert login(client, "nobody", address="10.0.0.3").status_code == 401  # other names are not held up


def test_login_attempts_are_limited_per_address(client):
    for n in range(5):
        assert login(client, f"name{n}", address="10.0.0.9").status_code == 401
    assert_limited(login(client, "another", address="10.0.0.9"))
    assert login(client, "another", address="10.0.0.10").status_code == 401


def test_the_login_page_is_limited_too(client, alice):
    for _ in range(3):
        client.post("/login", data={"username": "alice", "password": "nope"})
    answer = client.post("/login", data={"username": "alice", "password": alice["password"]})
    assert answer.status_code == 429 and "Retry-After" in answer.headers
    assert b"try again in" in answer.data


def test_registrations_are_limited_per_address(client):
    def register(name, address="10.0.1.1"):
        body = {"username": name, "password": "correct horse"}
        return client.post("/api/users", json=body, environ_base={"REMOTE_ADDR": address})

    assert [register(name).status_code for name in ("reg1", "reg2")] == [201, 201]
    assert_limited(register("reg3"))
    assert register("reg3", address="10.0.1.2").status_code == 201


def test_rooms_created_are_limited_per_user(client, alice, bob):
    def create(name, user=alice):
        return client.post("/api/rooms", json={"name": name}, headers=bearer(user["token"]))

    assert [create(name).status_code for name in ("made1", "made2")] == [201, 201]
    assert_limited(create("made3"))
    assert create("made3", user=bob).status_code == 201  # per user


def test_messages_are_limited_per_user_across_their_connections(connect, alice, bob):
    tabs = [connect(alice), connect(alice)]
    acks = [call(tabs[n % 2], "send", {"room": "general", "text": f"m{n}"}) for n in range(6)]
    assert [ack["ok"] for ack in acks] == [True] * 4 + [False] * 2
    assert acks[-1]["error"]["code"] == "rate_limited" and acks[-1]["error"]["retry_after"] >= 1
    assert call(connect(bob), "send", {"room": "general", "text": "bob is not held up"})["ok"]


def test_events_are_limited_per_user_across_their_connections(connect, alice):
    tabs = [connect(alice), connect(alice)]
    acks = [call(tabs[n % 2], "history", {"room": "general"}) for n in range(10)]
    assert [ack["ok"] for ack in acks] == [True] * 8 + [False] * 2


def test_connections_are_limited_per_user_and_freed_on_disconnect(connect, alice):
    first, second = connect(alice), connect(alice)
    assert first.is_connected("/chat") and second.is_connected("/chat")
    third = connect(alice)
    assert not third.is_connected("/chat")
    second.disconnect("/chat")
    assert connect(alice).is_connected("/chat")


def test_unfinished_jobs_are_limited_per_user(connect, alice, monkeypatch):
    from services.jobs import state

    monkeypatch.setattr(state, "dispatch", lambda job: None)  # stay queued: no broker needed
    client = connect(alice, namespace="/jobs")
    start = {"kind": "sleep", "params": {"seconds": 1, "steps": 1}}
    acks = [call(client, "start", start, namespace="/jobs") for _ in range(3)]
    assert [ack["ok"] for ack in acks] == [True, True, False]
    assert acks[-1]["error"]["code"] == "rate_limited"
    call(client, "cancel", {"job_id": acks[0]["job"]["id"]}, namespace="/jobs")
    assert call(client, "start", start, namespace="/jobs")["ok"]


def test_throttles_are_off_while_redis_is_away(database_url, instance_path):
    config = config_for(database_url, f"redis://127.0.0.1:{free_port()}/0", instance_path)
    config.__dict__.update(LIMITS)
    client = create_app(config).test_client()
    for _ in range(5):  # past the per-username limit: not counted, so never refused
        assert login(client, "nobody").status_code == 401


def test_connects_of_a_revoked_token_are_refused_and_not_counted(app, connect, alice):
    with app.app_context():
        revoke(token_login(alice["token"])[1], 60)
        fresh, _ = issue_token(db.session.get(User, alice["id"]))
    assert not any(connect(alice).is_connected("/chat") for _ in range(3))
    assert all(connect({**alice, "token": fresh}).is_connected("/chat") for _ in range(2))  # the limit is 2


def test_shared_hits_keep_the_limit_across_processes_with_a_round_trip_per_share(app, monkeypatch):
    calls = []
    monkeypatch.setattr(throttle, "_shares", {})
    evaluate = redis_store.client.eval
    monkeypatch.setattr(redis_store.client, "eval", lambda *args: calls.append(args) or evaluate(*args))
    for _ in range(40):  # limit 64: shares of 2 hits
        throttle.hit_shared("probe", "alice", 64, 10)
    assert len(calls) == 20
    throttle._shares.clear()  # another process: the share left unspent here still counts
    throttle.hit_shared("probe", "alice", 64, 10)
    for _ in range(23):
        throttle.hit_shared("probe", "alice", 64, 10)
    with pytest.raises(ProtocolError) as refused:
        throttle.hit_shared("probe", "alice", 64, 10)
    assert refused.value.code == "rate_limited" and 1 <= refused.value.retry_after <= 10
    calls.clear()
    with pytest.raises(ProtocolError):  # a full window is refused without asking Redis again
        throttle.hit_shared("probe", "alice", 64, 10)
    assert calls == []
