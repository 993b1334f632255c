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

Room channels (docs/scaling.md): an emit to a chat room or a job's room goes on a
channel of that room's own, which a process subscribes to only while one of its
sockets is in the room; everything else stays on the one shared channel. A process
then no longer receives, and filters, every event of the cluster. A socket's entry
into such a room waits until Redis confirms the subscription, so a room is followed
before its catch-up is read, as docs/protocol.md promises.

The Admin UI (admin_ui.py): its reports to the admin namespace go nowhere while no
admin is connected to any process, and its actions (join, leave, disconnect) reach
the sockets of every process.
"""

import logging
import threading
import time

import socketio
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from core.metrics import DELIVERY_SECONDS, LISTENER_SUBSCRIBED, PUBLISH_FAILURES, RESYNCS

log = logging.getLogger(__name__)
RESYNC_EVENT = "resync"
DISCONNECT_ROOM_EVENT = "roomcast:disconnect-room"  # never sent to a client
ADMIN_WATCH_EVENT = "roomcast:admin-watch"  # never sent to a client either
ADMIN_ACTION_EVENT = "roomcast:admin-action"  # nor this one
ADMIN_ACTIONS = ("join", "leave", "disconnect")
DELIVERY_LABELS = 100  # distinct (namespace, event) pairs roomcast_delivery_seconds names, per process


class Subscription:
    """One room channel on the listener's connection: wanted or not, commands unconfirmed, last confirmed state."""

    __slots__ = ("wanted", "pending", "subscribed")

    def __init__(self, wanted, pending):
        self.wanted, self.pending, self.subscribed = wanted, pending, False

    def following(self):
        """Tell whether Redis has confirmed the latest SUBSCRIBE, with nothing sent after it."""
        return self.wanted and self.pending == 0 and self.subscribed


class RoomIndex:
    """Keep (namespace, sid) -> room names beside the manager's own rooms; send Admin UI reports only when watched."""

    # An admin's presence, told to every process, lasts this long unless told again (admin_ui.py repeats it).
    ADMIN_WATCH_SECONDS = 30

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sid_rooms = {}
        self.admin_namespace = None  # the Admin UI's namespace once admin_ui.py has instrumented the server
        self.admin_watched_until = 0.0
        self.on_admin_arrived = None  # called with an admin's sid when one connects to another process

    def emit(self, event, data, namespace=None, *args, **kwargs):
        # python-socketio's instrument() reports every connect, event, room change and
        # ping of every client as an emit to the admin namespace: on Redis, a publish
        # each, read by every process. While no admin is connected anywhere, they go nowhere.
        if namespace is not None and namespace == self.admin_namespace and not self.admin_watched():
            return None
        return super().emit(event, data, namespace, *args, **kwargs)

    def admin_watched(self):
        """Tell whether an admin was connected to some process lately."""
        return time.monotonic() < self.admin_watched_until

    def admin_watching(self, admin_sid=None):
        """Note that an admin is connected (admin_sid: one has just connected here): report to the Admin UI."""
        self.admin_watched_until = time.monotonic() + self.ADMIN_WATCH_SECONDS

    def admin_watched_elsewhere(self, admin_sid=None):
        """Note that an admin is connected to another process; tell a newcomer of this process's sockets."""
        self.admin_watched_until = time.monotonic() + self.ADMIN_WATCH_SECONDS
        if admin_sid and self.on_admin_arrived is not None:
            self.server.start_background_task(self.on_admin_arrived, admin_sid)

    def admin_act(self, action, namespace, room_filter, room=None):
        """Carry out an admin's action on the sockets of a namespace in room_filter (None: all), on every process."""
        self.admin_act_locally(action, namespace, room_filter, room)

    def admin_act_locally(self, action, namespace, room_filter, room=None):
        """Carry out an admin's action (ADMIN_ACTIONS) on this process's sockets of a namespace in room_filter."""
        for sid, _ in list(self.get_participants(namespace, room_filter)):
            if action == "join":
                self.server.enter_room(sid, room, namespace=namespace)
            elif action == "leave":
                self.server.leave_room(sid, room, namespace=namespace)
            elif action == "disconnect":
                self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

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
            # self's, not super()'s: the Admin UI's instrument() wraps it to report room_left
            # (its UI keeps a disconnected socket in its rooms until told).
            self.basic_leave_room(sid, namespace, room)
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
    FOLLOW_TIMEOUT_SECONDS = 5  # for Redis to confirm a room channel's subscription; then the entry fails

    def __init__(self, url, channel, resync_namespaces=(), write_only=False, room_channel_kinds=()):
        # Timeouts: a Redis that hangs must fail a publish (and so an emit) in
        # seconds, not hold the greenlet that emits.
        options = {"socket_timeout": 5, "socket_connect_timeout": 5}
        super().__init__(url, channel=channel, write_only=write_only, redis_options=options)
        self.resync_namespaces = tuple(resync_namespaces)
        self.room_channel_kinds = tuple(room_channel_kinds)  # room name prefixes ("room:") with channels of their own
        self.room_sockets = {}  # room with a channel of its own -> this process's sockets in it, any namespace
        self.subscriptions = {}  # room channel -> Subscription, on the listener's current connection
        self.listening = None  # the listener's PubSub while it is connected
        self.listener_ident = None
        # Guards the two dicts, and the listener's connection for the commands other greenlets send on it.
        self.subscriptions_changed = threading.Condition()
        # threading's Event: gevent's once the worker is monkey-patched, a real one elsewhere.
        self.subscribed_event = threading.Event()
        self.publisher = None
        self.publish_failing = False
        self.delivery_label_set = set()

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

    def has_own_channel(self, room):
        """Tell whether emits to the room travel on a channel of the room's own."""
        return isinstance(room, str) and room.startswith(self.room_channel_kinds) if self.room_channel_kinds else False

    def room_channel(self, room):
        """Return the Redis channel of a room that has one."""
        return f"{self.channel}#{room}"

    def _publish(self, data):
        channel = self.channel
        if isinstance(data, dict) and data.get("method") == "emit":
            room = data.get("room")
            if self.has_own_channel(room) and data.get("event") not in (ADMIN_WATCH_EVENT, ADMIN_ACTION_EVENT):
                channel = self.room_channel(room)
            elif isinstance(room, str) and self.is_sid_room(data.get("namespace"), room):
                return  # to one of this process's sockets: delivered here already, and nowhere else
        try:
            if self.publisher is None:
                self.publisher = self._get_redis_module().Redis.from_url(self.redis_url, **self.redis_options)
            if isinstance(data, dict):
                data["published_at"] = time.time()  # for roomcast_delivery_seconds, where it is delivered
            self.publisher.publish(channel, self.json.dumps(data))
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

    def enter_room(self, sid, namespace, room, eio_sid=None):
        """Put a socket in a room; for a room with a channel of its own, return once this process follows it."""
        here = self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)
        result = super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        # The listener carries out other processes' requests: it cannot wait for its own confirmations.
        if here and self.has_own_channel(room) and threading.get_ident() != self.listener_ident:
            self.wait_following(room)
        return result

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        entering = self.has_own_channel(room) and sid not in self.rooms.get(namespace, {}).get(room, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if entering:
            self.count_room_socket(room, 1)

    def basic_leave_room(self, sid, namespace, room):
        leaving = self.has_own_channel(room) and sid in self.rooms.get(namespace, {}).get(room, {})
        super().basic_leave_room(sid, namespace, room)
        if leaving:
            self.count_room_socket(room, -1)

    def count_room_socket(self, room, change):
        """Count a socket in or out of a room; subscribe to its channel at the first, unsubscribe at the last."""
        with self.subscriptions_changed:
            before = self.room_sockets.get(room, 0)
            after = before + change
            if after > 0:
                self.room_sockets[room] = after
            else:
                self.room_sockets.pop(room, None)
            if (before > 0) != (after > 0):
                self.send_subscription(room, wanted=after > 0)

    def send_subscription(self, room, wanted):
        """SUBSCRIBE or UNSUBSCRIBE a room's channel on the listener's connection (with subscriptions_changed held)."""
        channel = self.room_channel(room)
        subscription = self.subscriptions.setdefault(channel, Subscription(wanted, 0))
        subscription.wanted = wanted
        connection = self.listening.connection if self.listening is not None else None
        if connection is None:
            return  # the listener subscribes every wanted channel when it connects
        subscription.pending += 1
        try:
            # Not pubsub.subscribe(): its retries would reconnect under the listener, which reads this connection.
            connection.send_command("SUBSCRIBE" if wanted else "UNSUBSCRIBE", channel)
        except Exception as error:  # the listener fails on the same connection, and subscribes anew
            log.warning("cannot %s %s (%s)", "subscribe to" if wanted else "unsubscribe from", channel, error)

    def confirmed(self, channel, subscribed):
        """Note Redis's confirmation of a SUBSCRIBE or an UNSUBSCRIBE of a room channel."""
        with self.subscriptions_changed:
            subscription = self.subscriptions.get(channel)
            if subscription is None:
                return
            subscription.pending = max(0, subscription.pending - 1)
            subscription.subscribed = subscribed
            if not subscription.wanted and subscription.pending == 0:
                del self.subscriptions[channel]
            self.subscriptions_changed.notify_all()

    def wait_following(self, room):
        """Wait until Redis confirms this process's subscription to the room's channel; raise if it does not."""
        channel = self.room_channel(room)
        with self.subscriptions_changed:
            following = self.subscriptions_changed.wait_for(
                lambda: channel in self.subscriptions and self.subscriptions[channel].following(),
                self.FOLLOW_TIMEOUT_SECONDS,
            )
        if not following:
            raise RedisConnectionError(f"Redis did not confirm the subscription to {room}'s channel")

    def disconnect_room(self, room):
        """Disconnect every client in the room, on every process."""
        # python-socketio's channel carries no such request: it travels as an emit
        # of an event name of ours, which _handle_emit acts on instead of sending.
        self.emit(DISCONNECT_ROOM_EVENT, None, namespace="/", room=room)

    def admin_watching(self, admin_sid=None):
        """Note that an admin is connected here, and tell every other process (they report to it too)."""
        super().admin_watching(admin_sid)
        self.emit(ADMIN_WATCH_EVENT, {"sid": admin_sid}, namespace="/", room=ADMIN_WATCH_EVENT)

    def admin_act(self, action, namespace, room_filter, room=None):
        """Carry out an admin's action on the sockets of a namespace in room_filter, on every process."""
        data = {"action": action, "namespace": namespace, "room_filter": room_filter, "room": room}
        self.emit(ADMIN_ACTION_EVENT, data, namespace="/", room=ADMIN_ACTION_EVENT)

    def _handle_emit(self, message):
        event = message.get("event")
        if event == DISCONNECT_ROOM_EVENT:
            self.disconnect_local_room(message.get("room"))
        elif event in (ADMIN_WATCH_EVENT, ADMIN_ACTION_EVENT):
            data = message.get("data")  # what was emitted, or [it] when it came through the server's emit
            data = data[0] if isinstance(data, list) and data else data
            data = data if isinstance(data, dict) else {}
            if event == ADMIN_ACTION_EVENT:
                action, namespace = data.get("action"), data.get("namespace")
                self.admin_act_locally(action, namespace, data.get("room_filter"), data.get("room"))
            elif message.get("host_id") != self.host_id:  # this process noted it already
                self.admin_watched_elsewhere(data.get("sid"))
        else:
            super()._handle_emit(message)
            published_at = message.get("published_at")
            if isinstance(published_at, float):
                DELIVERY_SECONDS.labels(*self.delivery_labels(message)).observe(max(0.0, time.time() - published_at))

    def delivery_labels(self, message):
        """Return (namespace, event) for roomcast_delivery_seconds; past DELIVERY_LABELS, ("other", "other")."""
        # Event names are the server's own, but a full-mode Admin UI may emit any: a bound
        # keeps the series (kept per process in the metrics files) from growing without end.
        labels = (str(message.get("namespace") or "/"), str(message.get("event")))
        if labels not in self.delivery_label_set:
            if len(self.delivery_label_set) >= DELIVERY_LABELS:
                return "other", "other"
            self.delivery_label_set.add(labels)
        return labels

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
        # yields the channels' messages until the connection fails.
        self.listener_ident = threading.get_ident()
        failures = 0
        # No retries under us: a failed read ends the pass, and the next one subscribes everything anew.
        options = {**self.redis_options, "retry": Retry(NoBackoff(), 0)}
        while True:
            pubsub = None
            try:
                pubsub = self._get_redis_module().Redis.from_url(self.redis_url, **options).pubsub()
                with self.subscriptions_changed:
                    rooms = [self.room_channel(room) for room in self.room_sockets]
                    self.subscriptions = {channel: Subscription(True, 1) for channel in rooms}
                    # The shared channel last: once it is confirmed, the rooms' channels are too.
                    pubsub.subscribe(*rooms, self.channel)
                    self.listening = pubsub
                for message in self._messages(pubsub, resubscribed=failures > 0):
                    failures = 0
                    if message["type"] == "message":
                        yield message["data"]
            except Exception as error:
                if self.subscribed or failures == 0:
                    log.error("lost the Redis channel (%s); retrying", error)
                with self.subscriptions_changed:
                    self.listening = None
                    for subscription in self.subscriptions.values():
                        subscription.subscribed = False
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
            if message["type"] not in ("subscribe", "unsubscribe"):
                yield message
                continue
            channel = message["channel"].decode()
            if channel != self.channel:
                self.confirmed(channel, message["type"] == "subscribe")
            elif message["type"] == "subscribe":
                self._set_subscribed(True)
                if resubscribed:
                    log.warning("subscribed to the Redis channel again; telling this process's clients to resync")
                    self.resync_local("listener")

    def _set_subscribed(self, subscribed):
        if subscribed:
            self.subscribed_event.set()
        else:
            self.subscribed_event.clear()
        LISTENER_SUBSCRIBED.set(1 if subscribed else 0)


def client_manager(message_queue, channel, resync_namespaces=(), room_channel_kinds=()):
    """Return the manager for a Socket.IO server: on Redis when a message queue is set."""
    if message_queue:
        return ResyncingRedisManager(message_queue, channel, resync_namespaces, room_channel_kinds=room_channel_kinds)
    return IndexedManager()


def emitter_manager(message_queue, channel, resync_namespaces=(), room_channel_kinds=()):
    """Return a write-only manager for processes that only emit (Celery workers)."""
    return ResyncingRedisManager(
        message_queue, channel, resync_namespaces, write_only=True, room_channel_kinds=room_channel_kinds
    )
