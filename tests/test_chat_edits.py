"""Edits, deletions, read markers, parting a room and new rooms announced, through Flask-SocketIO's test client."""

from datetime import timedelta

import pytest

from extensions import db
from models import Message, utcnow
from tests.helpers import bearer, call, received

pytestmark = pytest.mark.unit


def joined(connect, user, room="general"):
    """Return a /chat client that has joined the room, its received events cleared."""
    client = connect(user)
    assert call(client, "join", {"room": room})["ok"]
    client.get_received("/chat")
    return client


def send(client, text, room="general"):
    """Send a message and return it as acked."""
    return call(client, "send", {"room": room, "text": text})["message"]


def test_an_edit_is_stored_and_broadcast_with_the_rooms_next_edit_seq(connect, alice, bob):
    a, b = joined(connect, alice), joined(connect, bob)
    first, second = send(a, "helo"), send(a, "two")
    b.get_received("/chat")

    edited = call(a, "edit", {"room": "general", "id": first["id"], "text": "hello"})["message"]
    assert edited["text"] == "hello" and edited["edit_seq"] == 1 and edited["edited_at"] is not None
    assert (edited["id"], edited["seq"], edited["deleted"]) == (first["id"], first["seq"], False)
    assert received(b, "edited") == [edited]

    deleted = call(a, "delete", {"room": "general", "id": second["id"]})["message"]
    assert deleted["deleted"] is True and deleted["text"] == "" and deleted["edit_seq"] == 2
    assert received(b, "edited") == [deleted]
    history = call(b, "history", {"room": "general"})
    assert history["messages"] == [edited, deleted] and history["last_edit_seq"] == 2


def test_only_the_author_changes_a_message_and_only_within_the_window(app, connect, alice, bob):
    a, b = joined(connect, alice), joined(connect, bob)
    message = send(a, "mine")
    refused = call(b, "edit", {"room": "general", "id": message["id"], "text": "yours"})
    assert refused["error"]["code"] == "forbidden"
    assert call(b, "delete", {"room": "general", "id": message["id"]})["error"]["code"] == "forbidden"
    missing = call(a, "edit", {"room": "general", "id": message["id"] + 1000, "text": "x"})
    assert missing["error"]["code"] == "not_found"

    app.config["EDIT_WINDOW_SECONDS"] = 60
    with app.app_context():
        db.session.get(Message, message["id"]).created_at = utcnow() - timedelta(seconds=61)
        db.session.commit()
    late = call(a, "edit", {"room": "general", "id": message["id"], "text": "too late"})
    assert late["error"]["code"] == "forbidden" and "60 s" in late["error"]["message"]
    app.config["EDIT_WINDOW_SECONDS"] = 0  # no limit
    assert call(a, "edit", {"room": "general", "id": message["id"], "text": "fine"})["ok"]


def test_a_refused_change_takes_no_edit_seq_and_a_deleted_message_cannot_be_changed(connect, alice, bob):
    a, b = joined(connect, alice), joined(connect, bob)
    message = send(a, "text")
    call(b, "edit", {"room": "general", "id": message["id"], "text": "not mine"})
    assert call(a, "delete", {"room": "general", "id": message["id"]})["message"]["edit_seq"] == 1
    again = call(a, "edit", {"room": "general", "id": message["id"], "text": "back"})
    assert again["error"]["code"] == "not_found"
    assert call(a, "history", {"room": "general", "edits_since": 0})["last_edit_seq"] == 1


def test_a_message_in_another_room_is_not_found(connect, client, alice):
    client.post("/api/rooms", json={"name": "other"}, headers=bearer(alice["token"]))
    a = joined(connect, alice)
    message = send(a, "in general")
    answer = call(a, "edit", {"room": "other", "id": message["id"], "text": "moved"})
    assert answer["error"]["code"] == "not_found"


def test_a_join_and_history_with_edits_since_return_each_changed_message_as_it_is_now(app, connect, alice, bob):
    a = joined(connect, alice)
    messages = [send(a, f"m{n}") for n in range(4)]
    call(a, "edit", {"room": "general", "id": messages[0]["id"], "text": "m0 once"})
    call(a, "edit", {"room": "general", "id": messages[1]["id"], "text": "m1"})
    call(a, "edit", {"room": "general", "id": messages[0]["id"], "text": "m0 twice"})
    call(a, "delete", {"room": "general", "id": messages[2]["id"]})

    ack = call(connect(bob), "join", {"room": "general", "since_seq": 4, "edits_since": 1})
    assert ack["messages"] == [] and ack["last_edit_seq"] == 4
    assert [(m["id"], m["edit_seq"], m["text"]) for m in ack["edits"]] == [
        (messages[1]["id"], 2, "m1"),
        (messages[0]["id"], 3, "m0 twice"),
        (messages[2]["id"], 4, ""),
    ]
    assert "more_edits" not in ack
    page = call(a, "history", {"room": "general", "edits_since": 2, "limit": 1})
    assert page["messages"] == [] and [m["edit_seq"] for m in page["edits"]] == [3] and page["last_edit_seq"] == 4

    app.config["JOIN_CATCHUP_LIMIT"] = 2
    capped = call(connect(bob), "join", {"room": "general", "since_seq": 4, "edits_since": 0})
    assert [m["edit_seq"] for m in capped["edits"]] == [2, 3] and capped["more_edits"] is True
    plain = call(connect(bob), "join", {"room": "general"})
    assert "edits" not in plain and plain["last_edit_seq"] == 4


def test_history_takes_one_cursor_at_most(connect, alice):
    a = joined(connect, alice)
    for cursors in ({"before": 5, "edits_since": 0}, {"since_seq": 1, "edits_since": 0}):
        assert call(a, "history", {"room": "general", **cursors})["error"]["code"] == "invalid"


def test_the_read_marker_moves_forward_only_and_reaches_the_users_other_tabs(connect, client, make_user, alice, bob):
    b, b_other_tab = joined(connect, bob), joined(connect, bob)
    a = joined(connect, alice)
    for n in range(5):
        send(a, f"m{n}")
    assert call(b, "join", {"room": "general"})["read_seq"] == 0  # bob came in before anything was said
    late = connect(make_user("carol"))
    assert call(late, "join", {"room": "general"})["read_seq"] == 5  # what came before joining counts as read
    b.get_received("/chat"), b_other_tab.get_received("/chat")

    assert call(b, "read", {"room": "general", "seq": 3})["read_seq"] == 3
    assert received(b_other_tab, "read") == [{"room": "general", "read_seq": 3}]
    assert received(b, "read") == []
    assert call(b, "read", {"room": "general", "seq": 1})["read_seq"] == 3  # never back
    assert call(b, "read", {"room": "general", "seq": 99})["read_seq"] == 5  # never past the newest

    rooms = {room["name"]: room for room in client.get("/api/rooms", headers=bearer(bob["token"])).get_json()}
    assert rooms["general"] | {"members": None} == {
        "name": "general",
        "private": False,
        "members": None,
        "member": True,
        "last_seq": 5,
        "read_seq": 5,
        "unread": 0,
    }


def test_unread_counts_others_messages_after_the_marker_that_are_not_deleted(connect, client, alice, bob):
    b = joined(connect, bob)
    a = joined(connect, alice)
    sent = [send(a, f"m{n}") for n in range(4)]
    send(b, "bob's own does not count")
    call(a, "delete", {"room": "general", "id": sent[3]["id"]})
    call(b, "read", {"room": "general", "seq": 1})

    rooms = client.get("/api/rooms", headers=bearer(bob["token"])).get_json()
    assert [(room["name"], room["unread"], room["read_seq"]) for room in rooms] == [("general", 2, 1)]


def test_a_read_marker_needs_a_member_and_a_readable_room(connect, client, alice, bob):
    client.post("/api/rooms", json={"name": "lobby"}, headers=bearer(alice["token"]))
    client.post("/api/rooms", json={"name": "secret", "private": True}, headers=bearer(alice["token"]))
    b = connect(bob)
    assert call(b, "read", {"room": "lobby", "seq": 0})["error"]["code"] == "forbidden"
    assert call(b, "read", {"room": "secret", "seq": 0})["error"]["code"] == "not_found"
    lobby = {room["name"]: room for room in client.get("/api/rooms", headers=bearer(bob["token"])).get_json()}["lobby"]
    assert (lobby["member"], lobby["unread"]) == (False, 0)


def test_parting_a_public_room_ends_the_membership_and_tells_the_other_tabs(connect, client, alice, bob):
    client.post("/api/rooms", json={"name": "lobby"}, headers=bearer(alice["token"]))
    client.post("/api/rooms", json={"name": "secret", "private": True}, headers=bearer(bob["token"]))
    a = joined(connect, alice)
    b_other_tab = connect(bob)
    b = joined(connect, bob, "lobby")
    call(a, "join", {"room": "lobby"})
    a.get_received("/chat")

    assert received(b_other_tab, "member") == [{"room": "lobby"}]  # b joined lobby, a member from then on
    assert call(b, "part", {"room": "lobby"}) == {"ok": True}
    assert received(b_other_tab, "parted") == [{"room": "lobby"}]
    assert received(a, "presence") == [{"room": "lobby", "user": "bob", "status": "left"}]
    send(a, "after bob left", room="lobby")
    assert received(b, "message") == []
    lobby = {room["name"]: room for room in client.get("/api/rooms", headers=bearer(bob["token"])).get_json()}["lobby"]
    assert lobby["member"] is False and "bob" not in lobby["members"]

    for room in ("general", "secret"):
        assert call(b, "part", {"room": room})["error"]["code"] == "forbidden"


def test_a_new_room_is_announced_to_those_who_may_see_it(connect, client, make_user, alice, bob):
    carol = make_user("carol")
    a, b, c = connect(alice), connect(bob), connect(carol)
    created = client.post("/api/rooms", json={"name": "lobby"}, headers=bearer(alice["token"])).get_json()
    for each in (a, b, c):
        assert received(each, "room") == [created]

    body = {"name": "secret", "private": True, "members": ["bob"]}
    secret = client.post("/api/rooms", json=body, headers=bearer(alice["token"])).get_json()
    assert received(a, "room") == [secret] and received(b, "room") == [secret]
    assert received(c, "room") == []
