"""The /chat namespace through Flask-SocketIO's test client."""

import gc

import pytest
import redis

from extensions import db, socketio
from models import Message
from resources.socket.packets import AnsweringPacket
from services import presence
from tests.helpers import bearer, call, received

pytestmark = pytest.mark.unit

NS = "/chat"


def test_connect_requires_a_valid_token_or_session(connect, alice, client):
    assert connect(alice).is_connected(NS)
    assert not connect(None).is_connected(NS)
    assert not connect({"token": "forged"}).is_connected(NS)
    client.post("/login", data={"username": "alice", "password": alice["password"]})
    assert connect(None, flask_test_client=client).is_connected(NS)


def test_send_is_stored_then_broadcast_to_the_room_sender_included(app, connect, alice, bob):
    a, b = connect(alice), connect(bob)
    call(a, "join", {"room": "general"})
    call(b, "join", {"room": "general"})
    a.get_received(NS), b.get_received(NS)

    ack = call(a, "send", {"room": "general", "text": "<b>hi</b>", "client_id": "k1"})
    assert ack["ok"] is True
    message = ack["message"]
    assert message["text"] == "<b>hi</b>" and message["author"] == "alice" and message["client_id"] == "k1"
    assert received(a, "message") == [message] and received(b, "message") == [message]
    with app.app_context():
        assert db.session.get(Message, message["id"]).text == "<b>hi</b>"


def test_a_retried_client_id_is_stored_once(connect, alice):
    a = connect(alice)
    first = call(a, "send", {"room": "general", "text": "once", "client_id": "same"})
    again = call(a, "send", {"room": "general", "text": "once", "client_id": "same"})
    assert first["message"] == again["message"]
    assert len(call(a, "history", {"room": "general"})["messages"]) == 1


def test_join_returns_members_online_and_the_messages_after_since(connect, alice, bob):
    a, b = connect(alice), connect(bob)
    ids = [call(a, "send", {"room": "general", "text": f"m{n}"})["message"]["id"] for n in range(5)]
    ack = call(b, "join", {"room": "general", "since": ids[1]})
    assert ack["ok"] and ack["room"] == "general"
    assert [m["id"] for m in ack["messages"]] == ids[2:]
    assert ack["online"] == ["bob"] and "bob" in ack["members"]
    assert [m["id"] for m in call(b, "join", {"room": "general"})["messages"]] == ids


def test_join_without_since_returns_the_last_50_oldest_first(connect, alice):
    a = connect(alice)
    ids = [call(a, "send", {"room": "general", "text": f"m{n}"})["message"]["id"] for n in range(55)]
    assert [m["id"] for m in call(a, "join", {"room": "general"})["messages"]] == ids[-50:]


def test_history_pages_backwards_at_most_100(app, connect, alice):
    a = connect(alice)
    ids = [call(a, "send", {"room": "general", "text": f"m{n}"})["message"]["id"] for n in range(120)]
    assert [m["id"] for m in call(a, "history", {"room": "general", "limit": 500})["messages"]] == ids[-100:]
    page = call(a, "history", {"room": "general", "before": ids[10], "limit": 5})["messages"]
    assert [m["id"] for m in page] == ids[5:10]


def test_join_and_history_catch_up_by_seq(connect, alice, bob):
    a, b = connect(alice), connect(bob)
    sent = [call(a, "send", {"room": "general", "text": f"m{n}"})["message"] for n in range(5)]
    assert [message["seq"] for message in sent] == [1, 2, 3, 4, 5]

    ack = call(b, "join", {"room": "general", "since_seq": 2})
    assert [m["seq"] for m in ack["messages"]] == [3, 4, 5] and ack["last_seq"] == 5
    page = call(b, "history", {"room": "general", "since_seq": 1, "limit": 2})
    assert [m["seq"] for m in page["messages"]] == [2, 3] and page["last_seq"] == 5
    assert call(b, "join", {"room": "general", "since": 1, "since_seq": 1})["error"]["code"] == "invalid"
    assert call(b, "history", {"room": "general", "before": 9, "since_seq": 1})["error"]["code"] == "invalid"


def test_join_of_an_empty_room_says_where_it_stands(connect, alice):
    ack = call(connect(alice), "join", {"room": "general", "since_seq": 0})
    assert ack["messages"] == [] and ack["last_seq"] == 0


def test_a_join_that_fails_leaves_the_client_out_of_the_room(connect, alice, bob, monkeypatch):
    a, b = connect(alice), connect(bob)

    def redis_is_down(*args):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(presence, "enter", redis_is_down)
    assert call(b, "join", {"room": "general"})["error"]["code"] == "unavailable"
    call(a, "send", {"room": "general", "text": "while bob's join failed"})
    assert received(b, "message") == []  # not in the room without its catch-up

    monkeypatch.undo()
    ack = call(b, "join", {"room": "general", "since_seq": 0})  # the retry catches up
    assert [m["text"] for m in ack["messages"]] == ["while bob's join failed"]


def test_presence_counts_tabs_of_one_user(connect, alice, bob):
    watcher = connect(bob)
    call(watcher, "join", {"room": "general"})
    tab1, tab2 = connect(alice), connect(alice)
    watcher.get_received(NS)
    call(tab1, "join", {"room": "general"})
    call(tab2, "join", {"room": "general"})
    assert received(watcher, "presence") == [{"room": "general", "user": "alice", "status": "joined"}]
    call(tab1, "leave", {"room": "general"})
    assert received(watcher, "presence") == []
    tab2.disconnect(NS)
    assert received(watcher, "presence") == [{"room": "general", "user": "alice", "status": "offline"}]
    tab3 = connect(alice)
    assert call(tab3, "join", {"room": "general"})["online"] == ["alice", "bob"]
    assert received(watcher, "presence") == [{"room": "general", "user": "alice", "status": "online"}]
    call(tab3, "leave", {"room": "general"})
    assert received(watcher, "presence") == [{"room": "general", "user": "alice", "status": "left"}]


def test_typing_reaches_the_others_only(connect, alice, bob):
    a, b = connect(alice), connect(bob)
    assert call(a, "typing", {"room": "general", "typing": True})["error"]["code"] == "forbidden"
    call(a, "join", {"room": "general"})
    call(b, "join", {"room": "general"})
    a.get_received(NS), b.get_received(NS)
    assert call(a, "typing", {"room": "general", "typing": True}) == {"ok": True}
    assert received(b, "typing") == [{"room": "general", "user": "alice", "typing": True}]
    assert received(a, "typing") == []


def test_private_rooms_are_for_members(client, connect, alice, bob, make_user):
    headers = bearer(alice["token"])
    assert (
        client.post(
            "/api/rooms", json={"name": "secret", "private": True, "members": ["bob"]}, headers=headers
        ).status_code
        == 201
    )
    carol = connect(make_user("carol"))
    for event, payload in [
        ("join", {"room": "secret"}),
        ("send", {"room": "secret", "text": "hi"}),
        ("history", {"room": "secret"}),
    ]:
        assert call(carol, event, payload)["error"] == {"code": "not_found", "message": "no room called secret"}
    assert call(connect(bob), "join", {"room": "secret"})["ok"] is True
    assert call(carol, "join", {"room": "nowhere"})["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("send", None, "invalid"),
        ("send", [], "invalid"),
        ("send", {"room": "general"}, "invalid"),
        ("send", {"room": "general", "text": ""}, "invalid"),
        ("send", {"room": "general", "text": "x" * 4001}, "invalid"),
        ("send", {"room": "general", "text": "x" * 50_000}, "too_large"),
        ("send", {"room": "bad name", "text": "x"}, "invalid"),
        ("send", {"room": "general", "text": 5}, "invalid"),
        ("send", {"room": "general", "text": "x", "client_id": 7}, "invalid"),
        ("join", {"room": "general", "since": "1"}, "invalid"),
        ("join", {"room": "general", "since": True}, "invalid"),
        ("join", {"room": "general", "since": 2**60}, "invalid"),
        ("typing", {"room": "general", "typing": "yes"}, "invalid"),
        ("history", {"room": "general", "limit": 0}, "invalid"),
        ("nonsense", {}, "invalid"),
    ],
)
def test_bad_payloads_get_an_error_ack(connect, alice, event, payload, code):
    a = connect(alice)
    ack = call(a, event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code and ack["error"]["message"]
    assert a.is_connected(NS)


def test_events_beyond_the_rate_limit_are_refused(app, connect, alice):
    app.config.update(SOCKET_RATE_PER_SECOND=1, SOCKET_RATE_BURST=3)
    a = connect(alice)
    codes = [call(a, "history", {"room": "general"}).get("error", {}).get("code") for _ in range(5)]
    assert codes[:3] == [None, None, None] and codes[3:] == ["rate_limited", "rate_limited"]


def test_a_failing_handler_answers_internal_and_keeps_the_connection(connect, alice, monkeypatch, caplog):
    from services import chat

    def explode(*args):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(chat, "post_message", explode)
    a = connect(alice)
    ack = call(a, "send", {"room": "general", "text": "hi"})
    assert ack == {"ok": False, "error": {"code": "internal", "message": "the server failed to handle this event"}}
    assert "database on fire" in caplog.text
    assert call(a, "join", {"room": "general"})["ok"] is True


def test_a_namespace_handler_without_a_schema_is_refused_at_class_creation():
    from resources.socket.base import BaseSocket

    with pytest.raises(TypeError, match="needs a @payload"):

        class Careless(BaseSocket):
            def on_anything(self, **data):
                return {}


@pytest.mark.parametrize("event, payload", [("connect", {"token": "x"}), ("disconnect", "client disconnect")])
def test_clients_cannot_fire_the_lifecycle_events(connect, alice, event, payload):
    client = connect(alice)
    ack = client.emit(event, payload, callback=True, namespace=NS)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid"
    assert call(client, "join", {"room": "general"})["ok"] is True


def test_events_leave_no_garbage_for_the_cycle_collector(connect, alice):
    # Garbage in reference cycles waits for the cycle collector, whose full passes
    # stall every client of a worker for longer the more clients it holds.
    client = connect(alice, headers={"Upgrade": "websocket", "Connection": "Upgrade"})  # as over a WebSocket
    assert client.emit("join", {"room": "general"}, namespace="/chat", callback=True)["ok"]
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            client.emit("typing", {"room": "general", "typing": True}, namespace="/chat", callback=True)
        unreachable = gc.collect()
    finally:
        gc.enable()
    # werkzeug's URL matcher leaves a small recursive closure (8 objects) per request.
    assert unreachable <= 8 * 50, f"{unreachable} objects in reference cycles after 50 events"


@pytest.mark.parametrize("text", ["nul\x00here", "lone \ud800 surrogate"])
def test_text_no_database_can_store_is_invalid(connect, alice, text):
    ack = call(connect(alice), "send", {"room": "general", "text": text})
    assert ack["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    "encoded, name",
    [
        ("2/chat,7[]", ""),  # no event name
        ('2/chat,7{"room":"x"}', ""),  # an object, not a list
        ("2/chat,7[1,{}]", ""),  # a number for a name
        ("2/chat,7" + "[" * 50_000 + "]" * 50_000, ""),  # past the recursion limit
        ('2/chat,7["send",{"room":"general"}]', "send"),
        ('51-/chat,7["send",{"_placeholder":true,"num":0}]', ""),  # binary: not part of the protocol
    ],
)
def test_every_event_packet_decodes_to_an_event_a_namespace_can_answer(encoded, name):
    decoded = AnsweringPacket(encoded_packet=encoded)
    assert decoded.id == 7 and decoded.data[0] == name and decoded.attachment_count == 0


def test_a_packet_python_socketio_cannot_handle_is_dropped_with_one_log_line(app, caplog):
    server = socketio.server
    with caplog.at_level("WARNING"):
        server.eio.handlers["message"]("unknown-eio-sid", "9/chat,")  # no such packet type
    assert "dropped a malformed Socket.IO packet" in caplog.text and "Traceback" not in caplog.text
