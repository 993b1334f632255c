"""Slow consumers on the real stack: a client that stops reading is disconnected, counted, and costs bounded memory."""

import itertools
import json
import queue
import re
import socket
import threading
import time
import uuid

import pytest
import requests
import websocket

from tests.clients import SocketClient, StalledPolling, register
from tests.helpers import create_room, flood, wait_until
from tests.realstack import running_stack

pytestmark = pytest.mark.integration

MAX_PENDING_BYTES = 256 * 1024  # the stack's bound: small, so that a test floods only a few MB
TEXT = "x" * 4000  # the longest message text: the most traffic per send
FLOOD_MESSAGES = 2500  # about 10 MB of room traffic, several times what the stalled clients may hold
# The worker's RSS grows 4-5 MB over such a flood with or without stalled clients (caches and the
# allocator warming up); without a bound it kept about 2.3 bytes per byte of traffic: 23 MB here.
RSS_GROWTH_ALLOWED = FLOOD_MESSAGES * len(TEXT)  # less than the traffic itself
names = (f"s{uuid.uuid4().hex[:6]}{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def slow_stack(tmp_root, redis_url):
    """gunicorn with a small SOCKET_MAX_PENDING_BYTES, and senders that are never rate limited."""
    env = {
        "SOCKET_MAX_PENDING_BYTES": str(MAX_PENDING_BYTES),
        "SOCKET_RATE_PER_SECOND": "100000",
        "SOCKET_RATE_BURST": "100000",
        "JOIN_CATCHUP_LIMIT": "5000",  # a catch-up in one ack, far larger than the bound
    }
    with running_stack(tmp_root, redis_url, "slowconsumer", **env) as real:
        real.start_web()
        yield real
        print(f"--- web log\n{real.web.output()[-4000:]}")  # shown when a test failed


# --- clients that stop reading ---


class RawChatSocket:
    """A /chat client on a raw WebSocket with a tiny receive buffer, that reads only when told to.

    It answers pings without reading them: Engine.IO takes a PONG as the answer to
    its last PING, so a PONG a second keeps the client, read or not.
    """

    def __init__(self, base_url, token):
        url = base_url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        # A tiny receive buffer (set before connecting, so the TCP window is small too):
        # the client's kernel holds little of what the server sends, as on a slow link.
        options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
        self.ws = websocket.create_connection(url, timeout=10, sockopt=options)
        try:
            assert self.ws.recv().startswith("0{"), "no Engine.IO open packet"
            self.ws.send("40/chat," + json.dumps({"token": token}))
            assert self._receive_until("40/chat,").startswith("40/chat,{")
        except Exception:
            self.ws.close()
            raise
        self.stopped = threading.Event()
        self.refused = threading.Event()  # a PONG failed: the server reset the connection
        self.thread = threading.Thread(target=self._answer_pings, daemon=True)
        self.thread.start()

    def _receive_until(self, prefix, frames=50):
        """Read frames until one starts with prefix (within `frames` frames, each within the timeout)."""
        for _ in range(frames):
            frame = self.ws.recv()
            if isinstance(frame, str) and frame.startswith(prefix):
                return frame
        raise AssertionError(f"no {prefix!r} frame within {frames} frames")

    def _answer_pings(self):
        for _ in range(300):  # at most five minutes
            if self.stopped.wait(1.0):
                return
            try:
                self.ws.send("3")
            except (OSError, websocket.WebSocketException):
                self.refused.set()
                return

    def join(self, room):
        """Join a room, reading until its ack; return the ack."""
        self.ws.send("42/chat,1" + json.dumps(["join", {"room": room}]))
        (ack,) = json.loads(self._receive_until("43/chat,1").removeprefix("43/chat,1"))
        assert ack["ok"], ack
        return ack

    def join_reading_slowly(self, room, since_seq, bytes_per_second, until, timeout=60):
        """Join with since_seq, reading at bytes_per_second until until(ack, messages); return (ack, messages)."""
        self.ws.send("42/chat,2" + json.dumps(["join", {"room": room, "since_seq": since_seq}]))
        ack, messages, stream = None, [], bytearray()
        deadline = time.monotonic() + timeout
        self.ws.sock.settimeout(1.0)
        while not (ack and until(ack, messages)):
            assert time.monotonic() < deadline, f"not done within {timeout} s: ack {ack is not None}, {len(messages)}"
            try:
                chunk = self.ws.sock.recv(16384)
            except TimeoutError:
                continue
            assert chunk, "the server closed the connection"
            stream += chunk
            for text in take_text_frames(stream):
                if text.startswith("43/chat,2"):
                    (ack,) = json.loads(text.removeprefix("43/chat,2"))
                    assert ack["ok"], ack
                elif text.startswith('42/chat,["message",'):
                    messages.append(json.loads(text.removeprefix("42/chat,"))[1])
            time.sleep(len(chunk) / bytes_per_second)
        return ack, messages

    def close(self):
        """Stop answering pings and close the socket."""
        self.stopped.set()
        self.thread.join(timeout=5)
        self.ws.close()


def take_text_frames(stream):
    """Remove the complete frames at the start of stream (a server's: unmasked, unfragmented); return their texts."""
    texts = []
    while len(stream) >= 2:
        opcode, length = stream[0] & 0x0F, stream[1] & 0x7F
        start = 2 + {126: 2, 127: 8}.get(length, 0)
        if len(stream) < start:
            break
        if length >= 126:
            length = int.from_bytes(stream[2:start])
        if len(stream) < start + length:
            break
        if opcode == 0x1:
            texts.append(stream[start : start + length].decode())
        assert opcode != 0x8, "the server closed the connection"
        del stream[: start + length]
    return texts


# --- the server's side of it ---


def worker_rss(stack):
    """Return the resident memory of the stack's one gunicorn worker, in bytes."""
    (pid,) = stack.web.child_pids()
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def dropped_total(stack, transport):
    """Return roomcast_slow_clients_dropped_total for a transport, from /metrics."""
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    found = re.search(rf'^roomcast_slow_clients_dropped_total{{transport="{transport}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def received_seqs(client, room, expected, timeout=60):
    """Collect the seqs of the room's messages a client receives, until every expected seq came (or timeout)."""
    seqs, missing = set(), set(expected)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        try:
            event, data = client.events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if event == "message" and data.get("room") == room:
            seqs.add(data["seq"])
            missing.discard(data["seq"])
    return seqs


# --- the tests ---


def test_websocket_clients_that_stop_reading_are_dropped_and_memory_stays_bounded(slow_stack):
    token = register(slow_stack.url, next(names))
    room = create_room(slow_stack.url, token)
    normal = SocketClient(slow_stack.url, token, "websocket").connect()
    sender = SocketClient(slow_stack.url, token, "websocket").connect()
    stalled, back = [], None
    try:
        assert normal.call("join", {"room": room})["ok"]
        stalled = [RawChatSocket(slow_stack.url, token) for _ in range(3)]
        last_seq = [client.join(room)["last_seq"] for client in stalled][0]
        warm_up, _ = flood(sender, room, 50)
        assert received_seqs(normal, room, warm_up) == set(warm_up)
        rss_before = worker_rss(slow_stack)
        dropped_before = dropped_total(slow_stack, "websocket")

        # The three stop reading; the room goes on.
        seqs, seconds_to_drop = flood(
            sender, room, FLOOD_MESSAGES, until=lambda: dropped_total(slow_stack, "websocket") >= dropped_before + 3
        )
        rss_growth = worker_rss(slow_stack) - rss_before
        traffic = len(seqs) * len(TEXT)

        # All three were dropped during the flood (within its 10 MB and 120 s), and counted once each.
        assert seconds_to_drop is not None, "the stalled clients were not all dropped during the flood"
        assert dropped_total(slow_stack, "websocket") == dropped_before + 3
        # The server closed their connections though they read nothing (reading would let a blocked
        # writer finish): the kernel resets a closed connection, so their next PONG fails.
        wait_until(lambda: all(client.refused.is_set() for client in stalled), "the server to close their connections")
        # The worker did not keep the flood for them.
        assert rss_growth < RSS_GROWTH_ALLOWED, f"worker RSS grew {rss_growth / 1e6:.1f} MB on {traffic / 1e6:.1f} MB"
        # The client that reads got every message, and was never dropped.
        assert received_seqs(normal, room, seqs) == set(seqs)
        assert normal.sio.connected and sender.sio.connected

        # A dropped client comes back over a slow link and catches up from where it was, while
        # the room goes on: its join ack (about 10 MB) is far over the bound, and it reads it
        # slowly, yet it is not taken for a stalled client.
        back = RawChatSocket(slow_stack.url, token)
        live = []
        trickle = threading.Thread(target=lambda: live.extend(flood(sender, room, 20, pause=0.1)[0]), daemon=True)
        trickle.start()
        ack, messages = back.join_reading_slowly(
            room,
            since_seq=last_seq,
            bytes_per_second=4_000_000,
            # A message sent before the join was in place is in the ack instead (protocol.md).
            until=lambda ack, messages: (
                not trickle.is_alive() and set(live) <= {m["seq"] for m in ack["messages"] + messages}
            ),
        )
        trickle.join(timeout=30)
        assert len(live) == 20, "the messages sent during the catch-up were not all acknowledged"
        assert [m["seq"] for m in ack["messages"] if m["seq"] in set(seqs)] == seqs
        # The ack went out in parts as the client read; what was sent meanwhile waited behind it, in order.
        live_seqs = [m["seq"] for m in messages]
        assert live_seqs == sorted(set(live_seqs)), f"live messages out of order or twice: {live_seqs}"
        assert dropped_total(slow_stack, "websocket") == dropped_before + 3
        print(
            f"\nwebsocket: 3 stalled clients dropped {seconds_to_drop:.1f} s into a flood of "
            f"{traffic / 1e6:.1f} MB; worker RSS {rss_before / 1e6:.1f} MB, grew {rss_growth / 1e6:.1f} MB; "
            f"a slow reader caught up on a {len(json.dumps(ack)) / 1e6:.1f} MB ack, "
            f"with {len(live)} messages sent meanwhile"
        )
    finally:
        for client in [*stalled, back, normal, sender]:
            if client is not None:
                client.close()


def test_a_polling_client_that_stops_polling_is_dropped(slow_stack):
    token = register(slow_stack.url, next(names))
    room = create_room(slow_stack.url, token)
    normal = SocketClient(slow_stack.url, token, "polling").connect()
    sender = SocketClient(slow_stack.url, token, "websocket").connect()
    stalled = None
    try:
        assert normal.call("join", {"room": room})["ok"]
        stalled = StalledPolling(slow_stack.url, token, room)
        dropped_before = dropped_total(slow_stack, "polling")

        seqs, seconds_to_drop = flood(
            sender, room, 500, until=lambda: dropped_total(slow_stack, "polling") >= dropped_before + 1
        )
        assert seconds_to_drop is not None, "the client that stopped polling was not dropped"
        assert dropped_total(slow_stack, "polling") == dropped_before + 1
        # Its session is gone: its next request is refused, and its client would connect anew.
        wait_until(lambda: stalled.refused.is_set() or not stalled.session_known(), "its session to be gone")
        # A polling client that keeps polling got every message, and was never dropped.
        assert received_seqs(normal, room, seqs) == set(seqs)
        assert normal.sio.connected
        print(f"\npolling: the stalled client was dropped {seconds_to_drop:.1f} s into the flood")
    finally:
        for client in [stalled, normal, sender]:
            if client is not None:
                client.close()
