"""/chat against the real stack: gunicorn + GeventWebSocketWorker + Redis, over both transports."""

import itertools
import uuid

import pytest
import requests
import socketio

from tests.clients import SocketClient, register
from tests.helpers import bearer, create_room

pytestmark = pytest.mark.integration

TRANSPORTS = ["websocket", "polling"]
names = (f"u{uuid.uuid4().hex[:6]}{n}" for n in itertools.count())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_users_exchange_messages(stack, open_client, transport):
    alice = open_client(register(stack.url, next(names)), transport)
    bob = open_client(register(stack.url, next(names)), transport)
    assert alice.call("join", {"room": "general"})["ok"]
    assert bob.call("join", {"room": "general"})["ok"]

    sent = alice.call("send", {"room": "general", "text": "hello bob", "client_id": "c1"})
    assert sent["ok"] and sent["message"]["text"] == "hello bob"
    received = bob.wait_for("message", lambda m: m["id"] == sent["message"]["id"])
    assert received == sent["message"]
    # The sender gets the broadcast too; clients drop it by id.
    assert alice.wait_for("message", lambda m: m["id"] == sent["message"]["id"]) == sent["message"]

    reply = bob.call("send", {"room": "general", "text": "hi alice"})
    assert (
        alice.wait_for("message", lambda m: m["id"] == reply["message"]["id"])["author"] == reply["message"]["author"]
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnect_with_since_receives_what_it_missed(stack, open_client, transport):
    alice_token, bob_token = register(stack.url, next(names)), register(stack.url, next(names))
    room = create_room(stack.url, alice_token)
    alice = open_client(alice_token, transport)
    last_seen = alice.call("send", {"room": room, "text": "before"})["message"]["id"]
    alice.close()

    bob = open_client(bob_token, transport)
    bob.call("join", {"room": room})
    missed = [bob.call("send", {"room": room, "text": f"missed {n}"})["message"] for n in range(3)]

    alice = open_client(alice_token, transport)
    ack = alice.call("join", {"room": room, "since": last_seen})
    assert ack["messages"] == missed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnect_across_a_web_server_restart_loses_nothing(stack, open_client, transport):
    alice_token, bob_token = register(stack.url, next(names)), register(stack.url, next(names))
    room = create_room(stack.url, alice_token)
    alice = open_client(alice_token, transport)
    alice.call("join", {"room": room})
    last_id = alice.call("send", {"room": room, "text": "before restart"})["message"]["id"]

    stack.web.stop()
    stack.start_web()
    bob = open_client(bob_token, transport)
    bob.call("join", {"room": room})
    missed = [bob.call("send", {"room": room, "text": f"after restart {n}"})["message"] for n in range(3)]

    alice = open_client(alice_token, transport)
    assert alice.call("join", {"room": room, "since": last_id})["messages"] == missed


def test_unauthenticated_connect_is_refused(stack):
    for token in (None, "not-a-token"):
        client = SocketClient(stack.url, token, "websocket")
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        assert client.wait_for("connect_error") == {"message": "unauthorized"}


def test_disallowed_origin_is_refused(stack):
    token = register(stack.url, next(names))
    client = SocketClient(stack.url, token, "polling", headers={"Origin": "https://evil.example"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    response = requests.get(
        f"{stack.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert response.status_code == 400
    same_origin = requests.get(
        f"{stack.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": stack.url}, timeout=10
    )
    assert same_origin.status_code == 200


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_non_member_cannot_join_or_read_a_private_room(stack, open_client, transport):
    room = f"p{uuid.uuid4().hex[:8]}"
    owner, stranger = register(stack.url, next(names)), register(stack.url, next(names))
    response = requests.post(
        f"{stack.url}/api/rooms",
        json={"name": room, "private": True},
        headers=bearer(owner),
        timeout=10,
    )
    assert response.status_code == 201
    client = open_client(stranger, transport)
    for event, payload in [
        ("join", {"room": room}),
        ("history", {"room": room}),
        ("send", {"room": room, "text": "x"}),
    ]:
        ack = client.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    response = requests.get(f"{stack.url}/api/rooms/{room}/messages", headers=bearer(stranger), timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    listed = requests.get(f"{stack.url}/api/rooms", headers=bearer(stranger), timeout=10).json()
    assert room not in {entry["name"] for entry in listed}


JUNK = [
    None,
    "text",
    42,
    [1, 2],
    {"room": 5},
    {"room": None, "text": "x"},
    {"room": "general", "text": ""},
    {"room": "general", "text": "x" * 4001},
    {"room": "general", "text": "x" * 200_000},
    {"room": "x" * 65},
    {"room": "../../etc"},
    {"room": "general", "text": {"nested": [[[{"deep": "junk"}]]]}},
    {"room": "general", "since": "12"},
    {"room": "general", "since": -1},
    {"room": "general", "since": True},
    {"room": "general", "typing": "yes"},
    {"room": "general", "limit": 10**30},
]
EVENTS = ["join", "leave", "send", "typing", "history", "no_such_event"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_payloads_get_error_acks_and_the_connection_stays_up(stack, open_client, transport):
    client = open_client(register(stack.url, next(names)), transport)
    for event in EVENTS:
        for payload in JUNK:
            ack = client.call(event, payload)
            if ack["ok"]:  # a few junk payloads are valid for some events (e.g. leave of room "x"*65 is not)
                assert event in ("join", "leave", "history") and isinstance(payload, dict), (event, payload)
                continue
            assert ack["error"]["code"] in ("invalid", "too_large", "forbidden", "not_found"), (event, payload, ack)
    # Non-JSON Socket.IO packets, sent raw on the Engine.IO connection.
    for raw in ["2/chat,{not json", '2/chat,["send"', "2/chat,12", "9/chat,[]", "2/chat,[1,2]"]:
        client.sio.eio.send(raw)
    assert client.call("join", {"room": "general"})["ok"]
    assert requests.get(f"{stack.url}/healthz", timeout=10).status_code == 200
