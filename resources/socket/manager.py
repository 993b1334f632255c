"""The Socket.IO client managers: python-socketio's, with rooms indexed and a Redis channel without silent gaps.

Rooms: python-socketio finds a client's rooms by testing every room of the
namespace, and every client has a room of its own: a disconnect costs time in
proportion to all connected clients, so N clients dropping at once cost N x N.
With 20,000 clients that blocked a worker past gunicorn's timeout, which then
killed it and every connection with it. Here a disconnect costs the client's own rooms.

Redis: python-socketio's RedisManager subscribes lazily and unconfirmed, backs off
up to a minute after an error and drops a publish that fails twice, with nothing
to tell the clients. Here a worker subscribes before it serves, retries within a
second, and when its channel had a gap (the listener was down, or publishes
failed) it sends `resync` so clients catch up from the database (docs/protocol.md).
"""

import logging
import threading
import time

import socketio

from core.metrics import LISTENER_SUBSCRIBED, PUBLISH_FAILURES, RESYNCS

log = logging.getLogger(__name__)
RESYNC_EVENT = "resync"
DISCONNECT_ROOM_EVENT = "roomcast:disconnect-room"  # never sent to a client


class RoomIndex:
    """Keep (namespace, sid) -> room names beside the manager's own rooms."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sid_rooms = {}

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.sid_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        rooms = self.sid_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid, namespace, **kwargs):
        # What python-socketio's basic_disconnect does, with the rooms from the index.
        for room in self.sid_rooms.pop((namespace, sid), ()):
            super().basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        """Return the rooms a client is in (not the None room of all clients)."""
        return [room for room in self.sid_rooms.get((namespace, sid), ()) if room is not None]

    def disconnect_room(self, room):
        """Disconnect every client in the room, in every namespace (on every process, for Redis)."""
        self.disconnect_local_room(room)

    def disconnect_local_room(self, room):
        """Disconnect this process's clients in the room, in every namespace."""
        for namespace in list(self.get_namespaces()):
            for sid, _ in list(self.get_participants(namespace, room)):
                self.server.disconnect(sid, namespace=namespace, ignore_queue=True)


class IndexedManager(RoomIndex, socketio.Manager):
    """The in-process manager, for a single process without a message queue (tests)."""

    subscribed = True  # nothing to listen to

    def wait_subscribed(self, timeout):
        """Return True: an in-process manager has no channel to wait for."""
        return True


class ResyncingRedisManager(RoomIndex, socketio.RedisManager):
    """The Redis manager every web process (and, write-only, every Celery worker) shares."""

    RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0)  # then every second while Redis is away
    PING_AFTER_SECONDS = 5  # of silence on the channel
    DEAD_AFTER_SECONDS = 15  # of silence, ping unanswered: the connection is gone

    def __init__(self, url, channel, resync_namespaces=(), write_only=False):
        # Timeouts: a Redis that hangs must fail a publish (and so an emit) in
        # seconds, not hold the greenlet that emits.
        options = {"socket_timeout": 5, "socket_connect_timeout": 5}
        super().__init__(url, channel=channel, write_only=write_only, redis_options=options)
        self.resync_namespaces = tuple(resync_namespaces)
        # threading's Event: gevent's once the worker is monkey-patched, a real one elsewhere.
        self.subscribed_event = threading.Event()
        self.publisher = None
        self.publish_failing = False

    @property
    def subscribed(self):
        """Tell whether the listener is subscribed to the channel right now."""
        return self.subscribed_event.is_set()

    def wait_subscribed(self, timeout):
        """Start the listener if the server has not yet, and wait until it is subscribed; tell whether it is."""
        if not self.server.manager_initialized:
            self.server.manager_initialized = True
            self.initialize()
        return self.subscribed_event.wait(timeout)

    def _publish(self, data):
        try:
            if self.publisher is None:
                self.publisher = self._get_redis_module().Redis.from_url(self.redis_url, **self.redis_options)
            self.publisher.publish(self.channel, self.json.dumps(data))
        except Exception as error:
            PUBLISH_FAILURES.inc()
            if not self.publish_failing:  # once per outage, not once per message
                self.publish_failing = True
                log.error("cannot publish to Redis (%s); receivers will resync when it is back", error)
            return
        if self.publish_failing:
            self.publish_failing = False
            log.warning("publishing to Redis again; telling every client to resync")
            self.resync_everyone("publish")

    def disconnect_room(self, room):
        """Disconnect every client in the room, on every process."""
        # python-socketio's channel carries no such request: it travels as an emit
        # of an event name of ours, which _handle_emit acts on instead of sending.
        self.emit(DISCONNECT_ROOM_EVENT, None, namespace="/", room=room)

    def _handle_emit(self, message):
        if message.get("event") == DISCONNECT_ROOM_EVENT:
            self.disconnect_local_room(message.get("room"))
        else:
            super()._handle_emit(message)

    def resync_everyone(self, reason):
        """Tell every client of every process to catch up (some of our publishes were lost)."""
        RESYNCS.labels("all").inc()
        for namespace in self.resync_namespaces:
            self.emit(RESYNC_EVENT, {"reason": reason}, namespace=namespace)

    def resync_local(self, reason):
        """Tell this process's clients to catch up (our listener missed what was published meanwhile)."""
        RESYNCS.labels("local").inc()
        for namespace in self.resync_namespaces:
            self.emit(RESYNC_EVENT, {"reason": reason}, namespace=namespace, ignore_queue=True)

    def _listen(self):
        # Replaces RedisManager's: each pass subscribes on a fresh connection and
        # yields the channel's messages until the connection fails.
        channel = self.channel.encode()
        failures = 0
        while True:
            pubsub = None
            try:
                pubsub = self._get_redis_module().Redis.from_url(self.redis_url, **self.redis_options).pubsub()
                pubsub.subscribe(self.channel)
                for message in self._messages(pubsub, resubscribed=failures > 0):
                    failures = 0
                    if message["type"] == "message" and message["channel"] == channel:
                        yield message["data"]
            except Exception as error:
                if self.subscribed or failures == 0:
                    log.error("lost the Redis channel (%s); retrying", error)
                self._set_subscribed(False)
                time.sleep(self.RETRY_SECONDS[min(failures, len(self.RETRY_SECONDS) - 1)])
                failures += 1
            finally:
                if pubsub is not None:
                    pubsub.close()

    def _messages(self, pubsub, resubscribed):
        """Yield what arrives on the pubsub connection; mark the subscription; ping when it is quiet."""
        heard = pinged = time.monotonic()
        while True:
            message = pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is None:
                if now - heard > self.DEAD_AFTER_SECONDS:
                    raise ConnectionError(f"no answer from Redis for {self.DEAD_AFTER_SECONDS} s")
                if now - heard > self.PING_AFTER_SECONDS and now - pinged > self.PING_AFTER_SECONDS:
                    pubsub.ping()
                    pinged = now
                continue
            heard = now
            if message["type"] == "subscribe":
                self._set_subscribed(True)
                if resubscribed:
                    log.warning("subscribed to the Redis channel again; telling this process's clients to resync")
                    self.resync_local("listener")
                continue
            yield message

    def _set_subscribed(self, subscribed):
        if subscribed:
            self.subscribed_event.set()
        else:
            self.subscribed_event.clear()
        LISTENER_SUBSCRIBED.set(1 if subscribed else 0)


def client_manager(message_queue, channel, resync_namespaces=()):
    """Return the manager for a Socket.IO server: on Redis when a message queue is set."""
    if message_queue:
        return ResyncingRedisManager(message_queue, channel, resync_namespaces)
    return IndexedManager()


def emitter_manager(message_queue, channel, resync_namespaces=()):
    """Return a write-only manager for processes that only emit (Celery workers)."""
    return ResyncingRedisManager(message_queue, channel, resync_namespaces, write_only=True)
