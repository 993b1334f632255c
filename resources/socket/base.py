"""BaseSocket: what every namespace needs, so a subclass writes only on_<event> methods."""

import json
import logging
from functools import partial
from time import monotonic

from flask import current_app, request, session
from flask_login import current_user

# python-socketio's ConnectionRefusedError, not the builtin: only it refuses a connect.
from flask_socketio import ConnectionRefusedError, Namespace, join_room
from redis.exceptions import RedisError

from core.errors import ProtocolError
from core.logs import bind, unbind
from core.metrics import CONNECTED_CLIENTS, SOCKET_EVENTS
from core.validation import validate
from extensions import db
from models import User
from resources.socket.contexts import handle_event
from services import accounts, chat, throttle
from services.channels import login_room, user_room

log = logging.getLogger(__name__)
LIFECYCLE_EVENTS = ("connect", "disconnect")


def payload(**schema):
    """Declare the payload fields (name=Field) an on_<event> handler takes as keyword arguments."""

    def declare(handler):
        handler.payload_schema = schema
        return handler

    return declare


def error_ack(code, message):
    """Build the protocol's failure ack."""
    return {"ok": False, "error": {"code": code, "message": message}}


class TokenBucket:
    """Allow `rate` events a second on average and bursts of up to `burst`."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), monotonic()

    def take(self):
        """Spend one token if there is one; tell whether there was."""
        now = monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class BaseSocket(Namespace):
    """Authenticate connections, validate payloads, answer acks, rate-limit, release the DB session."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.user_ids = {}  # sid -> user id, for this process's connections
        self.buckets = {}  # sid -> TokenBucket
        # The labelled children of this namespace's metrics, looked up once (labels() costs as much as inc()).
        self.event_counters = {}  # (event, outcome) -> SOCKET_EVENTS child; both bounded (handlers, error codes)
        self.connected_gauge = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            handler = getattr(cls, name)
            if name.startswith("on_") and name[3:] not in LIFECYCLE_EVENTS:
                if not hasattr(handler, "payload_schema"):
                    raise TypeError(f"{cls.__name__}.{name} needs a @payload(...) declaration")

    @property
    def user(self):
        """Return the User of the connection whose event is being handled (unauthorized if it is gone)."""
        user = db.session.get(User, self.user_ids[request.sid])
        if user is None or user.disabled:  # its sockets are being disconnected
            raise ProtocolError("unauthorized", "this account no longer exists")
        return user

    def readable_room(self, name):
        """Return the chat room `name` if the caller may read it; not_found otherwise, whether it exists or not."""
        return chat.readable_room(name, self.user)

    def join_readable_room(self, name, channel):
        """Join the Socket.IO room channel(name) only if the caller may read the chat room `name`; return that room."""
        room = self.readable_room(name)
        join_room(channel(name))
        return room

    def on_connect(self, auth):
        """Accept a session cookie or auth={"token"}; refuse anything else as unauthorized."""
        unchecked = None  # a login whose revocation is still to be checked
        if isinstance(auth, dict) and "token" in auth:
            login = accounts.token_login(auth["token"])
            unchecked = login and login[1]
        elif auth is None and current_user.is_authenticated:  # the user loader checked revocation
            login = current_user.id, session.get("lid")
        else:
            login = None
        if login is None:
            raise ConnectionRefusedError("unauthorized")
        user_id, login_id = login
        config = current_app.config
        # The revocation check and the connection count in one Redis round trip.
        if not accounts.admit_socket(user_id, unchecked, request.sid, config["CONNECTIONS_PER_USER"]):
            raise ConnectionRefusedError("unauthorized")
        # So that logging out (here, everywhere) or losing the account disconnects it.
        join_room(user_room(user_id))
        if login_id:
            join_room(login_room(login_id))
        self.user_ids[request.sid] = user_id
        self.buckets[request.sid] = TokenBucket(config["SOCKET_RATE_PER_SECOND"], config["SOCKET_RATE_BURST"])
        self.connected_clients().inc()
        log.info("connected", extra={"user": user_id})

    def on_disconnect(self, reason=None):
        """Forget the connection; subclasses extend this and call super()."""
        user_id = self.user_ids.pop(request.sid, None)
        if user_id is not None:
            log.info("disconnected", extra={"user": user_id, "reason": reason})
            throttle.release_connection(user_id, request.sid)
            self.buckets.pop(request.sid, None)
            self.connected_clients().dec()

    def trigger_event(self, event, *args):
        """Route an event to its on_<event> method through the guards every event gets."""
        if event in LIFECYCLE_EVENTS and self._sent_by_client(event, args):
            self.count_event(event, "invalid")
            return error_ack("invalid", f"{event} is a reserved event name")
        if event in LIFECYCLE_EVENTS:
            handler = partial(self._run_lifecycle, getattr(self, f"on_{event}"))
        else:
            handler = getattr(self, f"on_{event}", None) if isinstance(event, str) else None
            if handler is None:
                self.count_event("unknown", "invalid")
                return error_ack("invalid", "unknown event")
            handler = partial(self._run_event, event, handler)
        # What flask_socketio.Namespace does (the app and request contexts and the connection's
        # session around the handler), with a request context built once per connection.
        sid = args[0] if args else None
        # log_context's bind and unbind, without its generator: a third of its cost, at every event.
        token = bind(sid=sid, user=self.user_ids.get(sid), namespace=self.namespace)
        try:
            return handle_event(self.socketio, handler, event, self.namespace, *args)
        finally:
            unbind(token)

    def count_event(self, event, outcome):
        """Count one event in roomcast_socket_events_total."""
        counter = self.event_counters.get((event, outcome))
        if counter is None:
            counter = self.event_counters[event, outcome] = SOCKET_EVENTS.labels(self.namespace, event, outcome)
        counter.inc()

    def connected_clients(self):
        """Return this namespace's child of roomcast_connected_clients."""
        if self.connected_gauge is None:  # made in the worker, at first use: a metric's child is per process
            self.connected_gauge = CONNECTED_CLIENTS.labels(self.namespace)
        return self.connected_gauge

    def _sent_by_client(self, event, args):
        """Tell a client's event named connect/disconnect from the server's own lifecycle call."""
        sid = args[0] if args else None
        if event == "connect":  # the real one comes before the connection is known
            return sid in self.user_ids
        # python-socketio marks a connection as disconnecting before its real disconnect call.
        return self.server.manager.is_connected(sid, self.namespace)

    def _run_lifecycle(self, handler, *args):
        try:
            return handler(*args)
        except ConnectionRefusedError:
            raise
        except ProtocolError as error:  # a connect over a limit
            raise ConnectionRefusedError(error.code) from None
        except RedisError as error:
            log.warning("%s %s: Redis is unavailable (%s)", self.namespace, handler.__name__, error)
            if handler.__name__ == "on_connect":
                raise ConnectionRefusedError("unavailable") from None
        except Exception:
            log.exception("%s %s failed", self.namespace, handler.__name__)
            if handler.__name__ == "on_connect":
                raise ConnectionRefusedError("internal") from None
        finally:
            db.session.remove()

    def _run_event(self, event, handler, *args):
        try:
            ack = {"ok": True, **(self._call(handler, args) or {})}
            outcome = "ok"
        except ProtocolError as error:
            db.session.rollback()
            ack, outcome = {"ok": False, **error.to_json()}, error.code
        except RedisError as error:
            db.session.rollback()
            log.warning("%s %s: Redis is unavailable (%s)", self.namespace, event, error)
            ack, outcome = error_ack("unavailable", "the server is briefly unavailable; try again"), "unavailable"
        except Exception:
            log.exception("%s %s failed for sid %s", self.namespace, event, request.sid)
            ack, outcome = error_ack("internal", "the server failed to handle this event"), "internal"
        finally:
            db.session.remove()
        self.count_event(event, outcome)
        return ack

    def _call(self, handler, args):
        bucket = self.buckets.get(request.sid)
        if bucket is None:
            raise ProtocolError("unauthorized", "this connection is not authenticated")
        if not bucket.take():
            raise ProtocolError("rate_limited", "too many events; slow down", retry_after=1)
        limit = current_app.config["USER_EVENTS_PER_10S"]
        throttle.hit_shared("events", self.user_ids[request.sid], limit, 10, "events from your connections")
        if len(args) != 1:
            raise ProtocolError("invalid", "send exactly one payload object")
        if payload_size(args[0]) > current_app.config["SOCKET_MAX_EVENT_BYTES"]:
            raise ProtocolError("too_large", "the payload is too large")
        return handler(**validate(args[0], handler.payload_schema))


def payload_size(data):
    """Return the size of the payload as compact JSON, in bytes."""
    try:
        return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        raise ProtocolError("invalid", "the payload must be JSON") from None
