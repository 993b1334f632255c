"""The cheaper event and connect paths (docs/benchmarks.md, "Event and connect paths") behave as before."""

import os

import pytest
from flask import g, request, session, url_for
from flask.ctx import RequestContext
from geventwebsocket.utf8validator import Utf8Validator
from geventwebsocket.websocket import Header

from extensions import socketio
from resources.socket.base import BaseSocket, payload
from resources.socket.contexts import EventContext
from resources.socket.gunicorn_worker import Utf8Check, unmask_payload
from resources.socket.outbox import websocket_frame

pytestmark = pytest.mark.unit
ORIGINAL_UNMASK = Header.unmask_payload  # before any worker replaced it

UTF8_CASES = [
    [b'42/chat,1["send",{"text":"hello"}]'],
    ["héllo wörld €𝄞".encode()],
    [b"\xc3", b"\xa9"],  # a character split across two frames
    [b"a\xf0\x9d", b"\x84\x9e b"],
    [b"\xff"],
    [b"ok", b"\xc3\x28"],  # an invalid continuation byte
    [b"\xed\xa0\x80"],  # a UTF-16 surrogate, encoded: not UTF-8
    [b"\xc0\xaf"],  # overlong
    [b"\xf4\x90\x80\x80"],  # past U+10FFFF
    [b""],
]


@pytest.mark.parametrize("frames", UTF8_CASES)
def test_the_utf8_check_agrees_with_gevent_websockets_own(frames):
    ours, theirs = Utf8Check(), Utf8Validator()
    for frame in frames:
        mine, reference = ours.validate(frame), theirs.validate(frame)
        assert mine[:2] == reference[:2]
        if not reference[0]:
            break
    ours.reset()
    assert ours.validate("é".encode())[0]


class ProbeSocket(BaseSocket):
    """Report what an event's handler sees of its request context."""

    @payload()
    def on_probe(self):
        """Answer with the request, route and session the handler runs with."""
        g.seen = g.get("seen", 0) + 1  # g is per event: an app context each
        self.requests.append(request._get_current_object())
        return {
            "sid": request.sid,
            "namespace": request.namespace,
            "event": request.event["message"],
            "endpoint": request.url_rule.endpoint,
            "session": type(session._get_current_object()).__name__,
            "lid": session.get("lid"),
            "g": g.seen,
            "url": url_for("pages.index", _external=True),
        }


def test_an_event_context_has_what_a_request_context_has(app):
    environ = app.test_request_context("/socket.io/?EIO=4&transport=websocket").request.environ
    assert set(vars(EventContext(app, environ))) == set(vars(RequestContext(app, environ)))


def test_every_event_gets_its_own_request_with_the_connections_route_and_session(app, client, alice):
    namespace = ProbeSocket("/probe")
    namespace.requests = []
    socketio.on_namespace(namespace)
    client.post("/login", data={"username": alice["username"], "password": alice["password"]})
    probe = socketio.test_client(app, namespace="/probe", flask_test_client=client)
    first, second = (probe.emit("probe", {}, namespace="/probe", callback=True) for _ in range(2))
    assert namespace.requests[0] is not namespace.requests[1]
    for seen in (first, second):
        assert seen["sid"] and seen["namespace"] == "/probe" and seen["event"] == "probe"
        assert seen["endpoint"] == "socket_io_False"  # the route contexts.py adds: no routing exception kept
        assert seen["session"] == "_ManagedSession" and seen["lid"]  # the login's session, copied at connect
        assert seen["g"] == 1
        assert seen["url"].startswith("http://")
    probe.disconnect("/probe")


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 70, 4000])
def test_unmasking_in_c_gives_gevent_websockets_bytes(size):
    header = Header(length=size)
    header.mask = os.urandom(4)
    payload = os.urandom(size)
    assert unmask_payload(header, payload) == bytes(ORIGINAL_UNMASK(header, payload))


@pytest.mark.parametrize("message", ["", "4hello", "4" + "é" * 70, "4" + "x" * 125, "4" + "x" * 70_000, b"\x00" * 126])
def test_a_frame_written_without_a_writer_is_the_frame_gevent_websocket_writes(message):
    payload = message.encode() if isinstance(message, str) else message
    opcode = 0x1 if isinstance(message, str) else 0x2
    assert websocket_frame(message) == Header.encode_header(True, opcode, b"", len(payload), 0) + payload
