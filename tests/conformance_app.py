"""Roomcast's app with the socket.io-protocol test suite's reference handlers: gunicorn ... tests.conformance_app:app.

It is wsgi.app (create_app exactly as production, with every Socket.IO fix), plus
what the Node reference server of the official suite (socketio/socket.io-protocol,
test-suite/) has:

    "/"       : on connect emit("auth", auth); "message" -> emit("message-back", *args);
                "message-with-ack" -> ack(*args)
    "/custom" : on connect emit("auth", auth)

and, for tests/test_conformance.py only, "/refusing": its connect handler emits, then refuses.

The ping interval is short so that timeouts come quickly: CONFORMANCE_PING_INTERVAL and
CONFORMANCE_PING_TIMEOUT seconds (default 1 and 2, loose enough for a loaded machine; the
official suite expects 0.3 and 0.2, and a maxPayload of 1e6).
"""

import os

from engineio import packet as eio_packet
from flask_socketio import ConnectionRefusedError, emit

import wsgi
from extensions import socketio

PING_INTERVAL = float(os.environ.get("CONFORMANCE_PING_INTERVAL", "1"))
PING_TIMEOUT = float(os.environ.get("CONFORMANCE_PING_TIMEOUT", "2"))

app = wsgi.app
eio = socketio.server.eio
eio.ping_interval = PING_INTERVAL
eio.ping_timeout = PING_TIMEOUT
eio.max_http_buffer_size = 1_000_000


def advertise_exact_ping_interval(eio):
    """Have the OPEN packet say the sub-second pingInterval in ms; engineio truncates it to whole seconds.

    engineio/server.py writes int(ping_interval + grace) * 1000: 0 for 0.3 s. Roomcast's
    interval is whole seconds (25), which that expression gets right.
    """
    handle_connect = eio.handlers["connect"]

    def connect(eio_sid, environ):
        client = eio.sockets.get(eio_sid)
        # engineio queues OPEN, then fires "connect", then starts sending: it is still queued here.
        for pkt in list(getattr(getattr(client, "queue", None), "queue", ())):
            if pkt is not None and pkt.packet_type == eio_packet.OPEN and isinstance(pkt.data, dict):
                pkt.data["pingInterval"] = int((eio.ping_interval + eio.ping_interval_grace_period) * 1000)
        return handle_connect(eio_sid, environ)

    eio.on("connect", connect)


advertise_exact_ping_interval(eio)


@socketio.on("connect")
def main_connect(auth):
    emit("auth", auth or {})


@socketio.on("message")
def main_message(*args):
    emit("message-back", args)  # a tuple: one argument each (emit(event, *args) would take args[1] as `to`)


@socketio.on("message-with-ack")
def main_message_with_ack(*args):
    return args  # a tuple: python-socketio acks with each element as an argument


@socketio.on("connect", namespace="/custom")
def custom_connect(auth):
    emit("auth", auth or {})


@socketio.on("connect", namespace="/raising")
def raising_connect(auth):
    def broadcast_later():
        socketio.sleep(0.3)
        socketio.emit("late", {}, namespace="/raising")  # must not reach the refused client

    socketio.start_background_task(broadcast_later)
    raise RuntimeError("a connect handler that fails (the database is away, say)")


@socketio.on("connect", namespace="/refusing")
def refusing_connect(auth):
    emit("auth", auth or {})  # dropped with the refusal
    raise ConnectionRefusedError("nope")
