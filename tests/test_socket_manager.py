"""The client managers: each client's rooms indexed, and a Redis channel that says when it had a gap."""

import json
import time

import pytest
import redis
import socketio

from devtools.embedded_redis import EmbeddedRedis
from resources.socket.manager import IndexedManager, ResyncingRedisManager
from tests.helpers import wait_until


def connect_clients(manager, count, namespace="/chat"):
    """Enter `count` clients as python-socketio does (the None room, their own room), plus a shared room."""
    for n in range(count):
        sid = f"s{n}"
        for room in (None, sid, "room:general"):
            manager.basic_enter_room(sid, namespace, room, eio_sid=f"e{n}")


@pytest.mark.unit
def test_rooms_are_tracked_through_join_leave_and_disconnect():
    manager = IndexedManager()
    connect_clients(manager, 2)
    manager.basic_enter_room("s0", "/chat", "room:x")
    assert sorted(manager.get_rooms("s0", "/chat")) == ["room:general", "room:x", "s0"]
    manager.basic_leave_room("s0", "/chat", "room:x")
    assert sorted(manager.get_rooms("s0", "/chat")) == ["room:general", "s0"]

    manager.basic_disconnect("s0", "/chat")
    assert manager.get_rooms("s0", "/chat") == []
    assert all("s0" not in members for members in manager.rooms["/chat"].values())
    assert dict(manager.rooms["/chat"]["room:general"]) == {"s1": "e1"}  # the other client stays


def disconnect_all_seconds(manager, count):
    """Time disconnecting `count` connected clients one by one."""
    connect_clients(manager, count)
    started = time.perf_counter()
    for n in range(count):
        manager.basic_disconnect(f"s{n}", "/chat")
    return time.perf_counter() - started


@pytest.mark.unit
def test_a_mass_disconnect_costs_each_client_its_own_rooms():
    ours = disconnect_all_seconds(IndexedManager(), 3000)
    theirs = disconnect_all_seconds(socketio.Manager(), 3000)  # tests every room for every client
    assert ours * 20 < theirs, f"indexed {ours:.3f} s, python-socketio's {theirs:.3f} s"


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which it may stop and start again on the same port."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


class RecordingRedisManager(ResyncingRedisManager):
    """Record the events emitted, instead of sending them (this server has no clients), and those received."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.emitted = []
        self.received = []

    def _handle_emit(self, message):
        if message.get("host_id") != self.host_id:
            self.received.append((message["event"], message["room"]))
        super()._handle_emit(message)

    def emit(self, event, data, namespace=None, room=None, **kwargs):
        self.emitted.append((event, data, namespace, "local" if kwargs.get("ignore_queue") else "all"))
        if not kwargs.get("ignore_queue"):
            super().emit(event, data, namespace=namespace, room=room, **kwargs)


def listening_server(url):
    """A Socket.IO server whose manager listens on url; return its manager once subscribed."""
    manager = RecordingRedisManager(
        url, "test-channel", resync_namespaces=("/chat", "/jobs"), room_channel_kinds=("room:",)
    )
    socketio.Server(client_manager=manager, async_mode="threading")
    assert manager.wait_subscribed(10), "the listener did not subscribe"
    return manager


@pytest.mark.integration
def test_the_listener_resubscribes_within_seconds_and_tells_its_clients_to_resync(own_redis):
    manager = listening_server(own_redis.url)
    assert manager.emitted == []  # the first subscription is no gap

    own_redis.stop(keep_port=True)
    wait_until(lambda: not manager.subscribed, "the listener to notice Redis went away", interval=0.02)
    time.sleep(3)  # longer than python-socketio's first back-off steps (1 s, 2 s)
    own_redis.start()
    restarted = time.monotonic()
    wait_until(lambda: manager.subscribed, "the listener to subscribe again", interval=0.02)
    assert time.monotonic() - restarted < 2.5, "the listener should retry about every second"
    wait_until(lambda: len(manager.emitted) == 2, "a resync to each namespace", interval=0.02)
    assert manager.emitted == [
        ("resync", {"reason": "listener"}, "/chat", "local"),
        ("resync", {"reason": "listener"}, "/jobs", "local"),
    ]


@pytest.mark.integration
def test_publishes_that_failed_are_followed_by_a_resync_for_everyone(own_redis):
    emitter = RecordingRedisManager(own_redis.url, "test-channel", ("/chat",), write_only=True)
    socketio.Server(client_manager=emitter, async_mode="threading")
    own_redis.stop(keep_port=True)
    emitter.emit("message", {"n": 1}, namespace="/chat", room="room:x")  # lost: nobody can receive it
    assert emitter.publish_failing

    own_redis.start()
    subscriber = redis.Redis.from_url(own_redis.url).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe("test-channel")
    emitter.emit("message", {"n": 2}, namespace="/chat", room="room:x")
    published = []
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.5)
        if message:
            published.append(json.loads(message["data"]))
    subscriber.close()
    assert [(item["event"], item["data"], item["room"]) for item in published] == [
        ("message", [{"n": 2}], "room:x"),
        ("resync", [{"reason": "publish"}], None),  # to every client of the namespace, on every process
    ]
    assert not emitter.publish_failing


def connected_socket(manager, sid, namespace="/chat"):
    """Connect a socket to the manager's server as python-socketio does; return its sid."""
    sid = manager.pre_connect(sid, namespace)
    manager.connect(sid, namespace)
    return sid


def subscribers(url, room):
    """Return how many connections Redis has subscribed to the room's channel."""
    return redis.Redis.from_url(url).pubsub_numsub(f"test-channel#{room}")[0][1]


@pytest.mark.integration
def test_a_room_channel_is_followed_exactly_while_the_process_has_sockets_in_the_room(own_redis):
    manager = listening_server(own_redis.url)
    emitter = RecordingRedisManager(own_redis.url, "test-channel", write_only=True, room_channel_kinds=("room:",))
    first, second = connected_socket(manager, "e1"), connected_socket(manager, "e2")
    assert subscribers(own_redis.url, "room:a") == 0

    manager.enter_room(first, "/chat", "room:a")
    assert subscribers(own_redis.url, "room:a") == 1  # confirmed by Redis before enter_room returned
    manager.enter_room(second, "/chat", "room:a")
    emitter.emit("message", {"n": 1}, namespace="/chat", room="room:a")
    emitter.emit("message", {"n": 2}, namespace="/chat", room="room:b")  # no socket here: not received
    emitter.emit("presence", {"n": 3}, namespace="/chat", room="user:1")  # not a room kind: the shared channel
    wait_until(lambda: len(manager.received) == 2, "two events received")
    assert manager.received == [("message", "room:a"), ("presence", "user:1")]

    manager.leave_room(first, "/chat", "room:a")
    assert subscribers(own_redis.url, "room:a") == 1  # the second socket is still there
    manager.basic_disconnect(second, "/chat")
    wait_until(lambda: subscribers(own_redis.url, "room:a") == 0, "the channel to be unsubscribed")


@pytest.mark.integration
def test_an_entry_right_after_the_last_leave_waits_for_its_own_subscription(own_redis):
    manager = listening_server(own_redis.url)
    sid = connected_socket(manager, "e1")
    for _ in range(50):  # UNSUBSCRIBE then SUBSCRIBE in flight: the entry waits for the second confirmation
        manager.enter_room(sid, "/chat", "room:a")
        assert subscribers(own_redis.url, "room:a") == 1
        manager.leave_room(sid, "/chat", "room:a")

    def forgotten():  # nothing is kept for a channel no socket wants, once its UNSUBSCRIBE is confirmed
        return subscribers(own_redis.url, "room:a") == 0 and manager.subscriptions == {}

    wait_until(forgotten, "the channel to be unsubscribed and forgotten")


@pytest.mark.integration
def test_room_channels_are_followed_again_after_redis_restarts_and_an_entry_fails_while_it_is_away(own_redis):
    manager = listening_server(own_redis.url)
    manager.FOLLOW_TIMEOUT_SECONDS = 0.5
    sid = connected_socket(manager, "e1")
    manager.enter_room(sid, "/chat", "room:a")

    own_redis.stop(keep_port=True)
    wait_until(lambda: not manager.subscribed, "the listener to notice Redis went away", interval=0.02)
    with pytest.raises(redis.exceptions.ConnectionError):
        manager.enter_room(sid, "/chat", "room:b")  # unavailable: the join fails, and the client retries
    own_redis.start()
    wait_until(lambda: manager.subscribed, "the listener to subscribe again", interval=0.02)
    assert subscribers(own_redis.url, "room:a") == 1 and subscribers(own_redis.url, "room:b") == 1
    assert ("resync", {"reason": "listener"}, "/chat", "local") in manager.emitted
    manager.enter_room(sid, "/chat", "room:b")  # the failed entry left it in the room: followed now
