"""Socket.IO protocol conformance: what the official socket.io-protocol suite checks, and Roomcast once got wrong.

Against the real gunicorn (gunicorn.conf.py, GeventWebSocketWorker) serving
tests.conformance_app:app: Roomcast's app with the suite's reference handlers
("/" and "/custom" emit "auth" on connect) and a "/refusing" namespace.
"""

import json
import socket
import threading
import time

import pytest
import requests
import websocket

from tests.realstack import running_stack

pytestmark = pytest.mark.integration

PING_INTERVAL, PING_TIMEOUT = 1, 2  # seconds: short, and loose enough for a loaded machine
SLACK = 5  # seconds a loaded machine may add to any answer


@pytest.fixture(scope="module")
def server(tmp_root, redis_url):
    """Return the port of a gunicorn serving tests.conformance_app:app."""
    ping = {"CONFORMANCE_PING_INTERVAL": str(PING_INTERVAL), "CONFORMANCE_PING_TIMEOUT": str(PING_TIMEOUT)}
    with running_stack(tmp_root, redis_url, "conformance", **ping) as stack:
        stack.start_web(app="tests.conformance_app:app")
        yield stack.port


def complete_responses(data):
    """Return the heads (lower-cased) of the complete HTTP responses at the start of data."""
    heads = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        length = int(fields.get(b"Content-Length", fields.get(b"content-length", b"0")))
        if len(rest) < length:
            break
        heads.append(head.lower())
        data = rest[length:]
    return heads


def raw_exchange(port, data, responses):
    """Send raw bytes on one connection; read `responses` responses, then whether the server closes it.

    Return (heads of the responses read, closed).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=SLACK) as sock:
        sock.sendall(data)
        out = b""
        while len(complete_responses(out)) < responses:
            chunk = sock.recv(65536)
            if not chunk:
                return complete_responses(out), True
            out += chunk
        sock.settimeout(1)  # the server keeps an idle connection KEEPALIVE (5) seconds
        try:
            closed = sock.recv(65536) == b""
        except TimeoutError:
            closed = False
        return complete_responses(out), closed


def engineio(port, method="GET", query="EIO=4&transport=polling", body=None):
    """Make an Engine.IO HTTP request; return (status, body)."""
    answer = requests.request(method, f"http://127.0.0.1:{port}/socket.io/?{query}", data=body, timeout=SLACK * 2)
    return answer.status_code, answer.text


def polling_session(port):
    """Open an Engine.IO polling session; return its sid."""
    status, body = engineio(port)
    assert status == 200 and body.startswith("0{"), body
    return json.loads(body[1:])["sid"]


def ws_connect(port):
    """Open an Engine.IO WebSocket session; return the connection, its OPEN packet read."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", timeout=SLACK)
    assert ws.recv().startswith("0{")
    return ws


def recv_non_ping(ws):
    """Return the next frame that is no ping, answering pings."""
    while (frame := ws.recv()) == "2":
        ws.send("3")
    return frame


def frames_within(ws, seconds):
    """Return the frames other than pings received within `seconds` (answering pings)."""
    frames, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        if frame == "2":
            ws.send("3")
        else:
            frames.append(frame)
    return frames


# HTTP: gevent's pywsgi closed the connection after a Connection: close request without saying so.


@pytest.mark.parametrize("path", ["/healthz", "/socket.io/?EIO=4&transport=polling"])
def test_connection_close_request_gets_connection_close_response(server, path):
    first = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    second = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    heads, closed = raw_exchange(server, first + second, responses=1)
    assert closed
    assert len(heads) == 1  # the second request is not served...
    assert heads[0].startswith(b"http/1.1 200") and b"\r\nconnection: close" in heads[0]  # ...and the client was told


def test_keep_alive_request_is_kept_alive(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    heads, closed = raw_exchange(server, request * 2, responses=2)
    assert [head[:12] for head in heads] == [b"http/1.1 200"] * 2 and not closed
    assert not any(b"connection: close" in head for head in heads)


# Engine.IO: what the protocol refuses is answered 400.


@pytest.mark.parametrize(
    "method, query",
    [
        ("GET", "EIO=4"),  # no transport: engineio took it for polling and answered 200
        ("GET", "EIO=4&transport=abc"),
        ("GET", "EIO=3&transport=polling"),
        ("PUT", "EIO=4&transport=polling"),  # engineio: 405
        ("DELETE", "EIO=4&transport=polling"),
    ],
)
def test_bad_engineio_requests_are_400(server, method, query):
    assert engineio(server, method, query)[0] == 400


def test_poll_after_ping_timeout_is_400(server):
    sid = polling_session(server)
    assert engineio(server, query=f"EIO=4&transport=polling&sid={sid}") == (200, "2")  # the ping, left unanswered
    # Just past the timeout: engineio answered such a poll (with what came next) unless its
    # service task, which looks at each session once per PING_TIMEOUT, had closed the session.
    time.sleep(PING_TIMEOUT + 0.25)
    assert engineio(server, query=f"EIO=4&transport=polling&sid={sid}")[0] == 400


def test_close_packet_ends_pending_poll_with_noop(server):
    # The poll must be waiting when the close packet comes, and before the first ping
    # (PING_INTERVAL): a try that misses that window is tried again.
    for _ in range(3):
        sid = polling_session(server)
        result = {}
        query = f"EIO=4&transport=polling&sid={sid}"
        poll = threading.Thread(target=lambda q=query, r=result: r.update(get=engineio(server, query=q)))
        poll.start()
        time.sleep(min(0.3, PING_INTERVAL / 3))
        assert engineio(server, "POST", query, body=b"1")[0] == 200
        poll.join(SLACK * 3)
        got = result.get("get")
        if got is None or (got != (200, "2") and got[0] != 400):  # a ping, or the poll came after the close
            break
    assert result["get"] == (200, "6")  # engineio: (200, "")


# Socket.IO: CONNECT first; refusals as {"message": ...}.


@pytest.mark.parametrize("namespace", ["", "/custom"])
def test_connect_packet_precedes_handler_emits(server, namespace):
    ws = ws_connect(server)
    prefix = f"{namespace}," if namespace else ""
    ws.send(f'40{prefix}{{"token":"t"}}')
    assert recv_non_ping(ws).startswith(f"40{prefix}{{")
    assert recv_non_ping(ws) == f'42{prefix}["auth",{{"token":"t"}}]'
    ws.close()


def test_events_follow_connect(server):
    ws = ws_connect(server)
    ws.send("40")
    assert recv_non_ping(ws).startswith("40{")
    assert recv_non_ping(ws) == '42["auth",{}]'
    ws.send('421["message-with-ack",1,"2"]')
    assert recv_non_ping(ws) == '431[1,"2"]'
    ws.close()


def test_unknown_namespace_refusal_is_an_object(server):
    ws = ws_connect(server)
    ws.send("40/random,")
    assert recv_non_ping(ws) == '44/random,{"message":"Invalid namespace"}'
    ws.send("40")  # the session is still there for the namespaces that exist
    assert recv_non_ping(ws).startswith("40{")
    ws.close()


def test_a_connect_handler_that_fails_refuses_the_client_and_leaves_it_out(server):
    ws = ws_connect(server)
    ws.send("40/raising,")
    assert recv_non_ping(ws) == '44/raising,{"message":"internal"}'
    assert frames_within(ws, PING_INTERVAL + 1) == []  # not the namespace's broadcast of 0.3 s later
    ws.close()


def test_refused_connect_drops_its_emits(server):
    ws = ws_connect(server)
    ws.send("40/refusing,")
    assert recv_non_ping(ws) == '44/refusing,{"message":"nope"}'
    assert frames_within(ws, PING_INTERVAL + 1) == []  # no 42/refusing,["auth",...] after (or before) it
    ws.close()
