"""The /api endpoints through the Flask test client."""

import pytest

from extensions import db
from models import Room, User
from services.chat import post_message
from tests.helpers import bearer, csrf_token

pytestmark = pytest.mark.unit


def assert_error(response, status, code):
    """Check a JSON error answer: {"error": {"code", "message"}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]


def test_register_then_exchange_credentials_for_a_token(client):
    created = client.post("/api/users", json={"username": "alice", "password": "correct horse"})
    assert created.status_code == 201
    assert created.get_json() == {"id": created.get_json()["id"], "username": "alice"}

    answer = client.post("/api/tokens", json={"username": "alice", "password": "correct horse"})
    assert answer.status_code == 200
    assert answer.get_json()["expires_in"] > 0
    rooms = client.get("/api/rooms", headers=bearer(answer.get_json()["token"]))
    assert rooms.status_code == 200


def test_a_taken_username_is_409(client, make_user):
    make_user("alice")
    answer = client.post("/api/users", json={"username": "alice", "password": "another one"})
    assert_error(answer, 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "al", "password": "correct horse"},
        {"username": "a" * 33, "password": "correct horse"},
        {"username": "bad name", "password": "correct horse"},
        {"username": "alice", "password": "short"},
        {"username": "alice"},
        {"username": 5, "password": "correct horse"},
        ["alice", "correct horse"],
        "alice",
    ],
)
def test_invalid_registrations_are_400(client, body):
    assert_error(client.post("/api/users", json=body), 400, "invalid")


def test_a_body_that_is_not_json_is_400(client):
    answer = client.post("/api/users", data="username=alice", content_type="text/plain")
    assert_error(answer, 400, "invalid")


@pytest.mark.parametrize("password", ["wrong password", ""])
def test_wrong_credentials_are_401(client, make_user, password):
    make_user("alice")
    assert_error(client.post("/api/tokens", json={"username": "alice", "password": password}), 401, "unauthorized")
    assert_error(client.post("/api/tokens", json={"username": "nobody", "password": "x"}), 401, "unauthorized")


@pytest.mark.parametrize("header", [None, "Bearer forged", "Basic YWxpY2U6eA==", "Bearer "])
def test_api_calls_need_a_valid_token_or_session(client, header):
    headers = {"Authorization": header} if header else {}
    assert_error(client.get("/api/rooms", headers=headers), 401, "unauthorized")


def test_rooms_lists_public_rooms_and_my_private_ones(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    created = client.post("/api/rooms", json={"name": "secret", "private": True}, headers=bearer(alice["token"]))
    assert created.status_code == 201
    assert created.get_json() == {"name": "secret", "private": True, "members": ["alice"]}
    client.post("/api/rooms", json={"name": "lobby"}, headers=bearer(bob["token"]))

    names = [room["name"] for room in client.get("/api/rooms", headers=bearer(alice["token"])).get_json()]
    assert names == ["general", "lobby", "secret"]
    names = [room["name"] for room in client.get("/api/rooms", headers=bearer(bob["token"])).get_json()]
    assert names == ["general", "lobby"]


def test_creating_a_room_that_exists_is_409(client, make_user):
    alice = make_user("alice")
    assert_error(client.post("/api/rooms", json={"name": "general"}, headers=bearer(alice["token"])), 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 65},
        {"name": "no spaces"},
        {"name": "ok", "private": "yes"},
        {"name": "ok", "members": "bob"},
        {"name": "ok", "members": ["nobody"]},
        {"name": "ok", "members": [{"nested": ["junk"]}]},
    ],
)
def test_invalid_rooms_are_400(client, make_user, body):
    assert_error(client.post("/api/rooms", json=body, headers=bearer(make_user("alice")["token"])), 400, "invalid")


def post_messages(app, room_name, author, count):
    """Store count messages in a room and return their ids."""
    with app.app_context():
        room = db.session.scalar(db.select(Room).filter_by(name=room_name))
        user = db.session.scalar(db.select(User).filter_by(username=author))
        ids = [post_message(room, user, f"message {n}").id for n in range(count)]
        db.session.remove()
        return ids


def test_messages_page_after_since_and_latest_by_default(app, client, make_user):
    alice = make_user("alice")
    ids = post_messages(app, "general", "alice", 5)

    latest = client.get("/api/rooms/general/messages?limit=2", headers=bearer(alice["token"])).get_json()
    assert [message["id"] for message in latest] == ids[-2:]
    after = client.get(f"/api/rooms/general/messages?since={ids[1]}", headers=bearer(alice["token"])).get_json()
    assert [message["id"] for message in after] == ids[2:]
    assert set(after[0]) == {
        "id",
        "seq",
        "room",
        "author",
        "text",
        "created_at",
        "client_id",
        "edit_seq",
        "edited_at",
        "deleted",
    }
    assert after[0]["created_at"].endswith("Z")


def test_messages_are_numbered_per_room_and_paged_by_seq(app, client, make_user):
    alice = make_user("alice")
    client.post("/api/rooms", json={"name": "other"}, headers=bearer(alice["token"]))
    post_messages(app, "general", "alice", 3)
    post_messages(app, "other", "alice", 2)
    post_messages(app, "general", "alice", 2)

    general = client.get("/api/rooms/general/messages?since_seq=0", headers=bearer(alice["token"])).get_json()
    assert [message["seq"] for message in general] == [1, 2, 3, 4, 5]
    assert [message["id"] for message in general] == sorted(message["id"] for message in general)
    other = client.get("/api/rooms/other/messages?since_seq=0", headers=bearer(alice["token"])).get_json()
    assert [message["seq"] for message in other] == [1, 2]
    page = client.get("/api/rooms/general/messages?since_seq=2&limit=2", headers=bearer(alice["token"])).get_json()
    assert [message["seq"] for message in page] == [3, 4]


@pytest.mark.parametrize(
    "query",
    ["since=-1", "since=abc", "limit=0", "limit=1001", "since=" + "9" * 40, "since_seq=x", "since=1&since_seq=1"],
)
def test_bad_paging_parameters_are_400(client, make_user, query):
    alice = make_user("alice")
    assert_error(client.get(f"/api/rooms/general/messages?{query}", headers=bearer(alice["token"])), 400, "invalid")


def test_a_private_room_answers_non_members_as_a_missing_room_does(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    client.post("/api/rooms", json={"name": "secret", "private": True}, headers=bearer(alice["token"]))
    assert client.get("/api/rooms/secret/messages", headers=bearer(alice["token"])).status_code == 200
    hidden = client.get("/api/rooms/secret/messages", headers=bearer(bob["token"]))
    missing = client.get("/api/rooms/nowhere/messages", headers=bearer(bob["token"]))
    assert_error(hidden, 404, "not_found")
    assert hidden.get_json()["error"]["message"] == "no room called secret"
    assert missing.get_json()["error"]["message"] == "no room called nowhere"
    for junk in ("a%00b", "%ED%A0%80", "x" * 65):  # never sent to the database
        assert_error(client.get(f"/api/rooms/{junk}/messages", headers=bearer(bob["token"])), 404, "not_found")


def test_unknown_api_paths_and_methods_answer_json(client):
    assert_error(client.get("/api/nothing"), 404, "not_found")
    assert client.delete("/api/rooms").status_code == 405
    assert "error" in client.delete("/api/rooms").get_json()


def test_session_writes_need_the_csrf_token(app, client, make_user):
    make_user("alice")
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token(page)
    client.post("/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})

    assert client.get("/api/rooms").status_code == 200  # reads need no token
    assert client.post("/api/rooms", json={"name": "forged"}).status_code == 400
    index = client.get("/").get_data(as_text=True)
    answer = client.post("/api/rooms", json={"name": "mine"}, headers={"X-CSRFToken": csrf_token(index)})
    assert answer.status_code == 201


def test_an_oversized_body_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    answer = client.post("/api/users", json={"username": "alice", "password": "x" * 2000})
    assert_error(answer, 413, "too_large")


def test_non_ascii_digits_are_400_not_500(client, make_user):
    alice = make_user("alice")
    assert_error(client.get("/api/rooms/general/messages?since=²", headers=bearer(alice["token"])), 400, "invalid")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ali\x00ce", "password": "correct horse"},
        {"username": "ali\ud800ce", "password": "correct horse"},
        {"username": "alice", "password": "correct\x00horse"},
    ],
)
def test_text_no_database_can_store_is_400_not_500(client, body):
    for path in ("/api/users", "/api/tokens"):
        assert_error(client.post(path, json=body), 400, "invalid")


def test_json_nested_past_the_recursion_limit_is_400(client):
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/tokens", data=deep, content_type="application/json")
    assert_error(response, 400, "invalid")
