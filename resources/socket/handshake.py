"""Engine.IO requests and Socket.IO connects answered as the protocol says.

This module owns two fixes to python-engineio and python-socketio, each measured with
the official socket.io-protocol test suite and pinned by tests/test_conformance.py:

- strict_engineio_requests: a request without `transport`, with a method other than
  GET, POST or OPTIONS, or a poll of a session whose ping went unanswered, is answered
  400 (python-engineio took the first for polling, answered the second 405, and let the
  third take the queued PING).
- connect_packet_first: a namespace's CONNECT reaches the client before anything its
  connect handler emits (python-socketio sends CONNECT after the handler returns), and an
  unknown namespace is refused with connect_error {"message": "Invalid namespace"}, not
  the bare string "Unable to connect".

The HTTP side (Connection: close announced) is in gunicorn_worker.py, the noop that ends a
pending poll on a client's close in outbox.py.
"""

import logging
import urllib.parse

from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger(__name__)
ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
# What may wait for one connecting namespace (its broadcasts, while a slow connect handler
# runs: a login hashing a password); past it the client is disconnected once connected,
# rather than held at any size (it catches up when it connects again).
MAX_HELD_BYTES = 1_000_000


def strict_engineio_requests(eio):
    """Answer 400 to Engine.IO requests the protocol refuses, and to polls of a session whose ping went unanswered."""
    # python-engineio takes a request without `transport` for polling (engineio/server.py
    # handle_request: query.get('transport', ['polling'])), answers methods other than
    # GET/POST/OPTIONS 405, and lets a poll that comes after the ping timeout take the
    # queued PING (only its service task, every ping_timeout, closes such sessions).
    # The protocol (and the Node server) says 400 to all three.
    handle_request = eio.handle_request

    def refuse(start_response, message):
        response = eio._bad_request(message)
        start_response(response["status"], response["headers"])
        return [response["response"]]

    def handle_strictly(environ, start_response):
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        method = environ.get("REQUEST_METHOD", "")
        if method not in ALLOWED_METHODS:
            return refuse(start_response, "Bad request method")
        if method != "OPTIONS" and "transport" not in query:
            return refuse(start_response, "Transport unknown")
        client = eio.sockets.get(query.get("sid", [None])[0])
        if client is not None and not (client.upgraded or client.closing or client.closed):
            client.check_ping_timeout()  # closes it if its ping went unanswered: engineio then answers 400
        return handle_request(environ, start_response)

    eio.handle_request = handle_strictly  # socketio.Server.handle_request calls self.eio.handle_request


def packet_namespace(encoded_packet):
    """Return the namespace of an encoded Socket.IO packet: '2/chat,[...]' -> '/chat', '2["x"]' -> '/'."""
    rest = encoded_packet[1:]
    dash = rest.find("-")
    if dash > 0 and rest[:dash].isdigit():  # binary attachment count
        rest = rest[dash + 1 :]
    if not rest.startswith("/"):
        return "/"
    return rest.split(",", 1)[0].split("?", 1)[0]


class Held:
    """The packets sent to one namespace of a client while its connect handler runs, up to MAX_HELD_BYTES."""

    def __init__(self):
        self.packets, self.size, self.overflowed = [], 0, False

    def hold(self, pkt):
        """Keep a packet for after CONNECT; past the bound, keep nothing more."""
        self.size += len(pkt.data) + 1 if isinstance(pkt.data, str | bytes) else 1
        if self.size > MAX_HELD_BYTES:
            self.packets, self.overflowed = [], True
        if not self.overflowed:
            self.packets.append(pkt)


def connect_packet_first(server):
    """Send a namespace's CONNECT before what its connect handler emits; refuse unknown namespaces with {"message"}.

    Wraps server._handle_connect and server.eio.send_packet: call it before anything
    keeps a reference to either (python-socketio and Engine.IO look both up at each call).
    """
    # python-socketio sends CONNECT after the connect handler returns (server.py
    # _handle_connect, always_connect=False), so what the handler emits (or a room
    # broadcast meanwhile) reaches the client first. always_connect=True would send
    # CONNECT first, but a refusal would then be a DISCONNECT instead of connect_error
    # (docs/protocol.md promises connect_error {"message": code}). Here what is sent to
    # the connecting namespace waits until the handler is done: it follows CONNECT, or
    # is dropped with the refusal. An unknown namespace is refused with
    # {"message": "Invalid namespace"}, as socket.io does, not python-socketio's bare
    # string "Unable to connect", in which socket.io-client finds no error.message.
    handle_connect = server._handle_connect
    send_packet = server.eio.send_packet  # every Socket.IO packet leaves through it
    connecting = {}  # eio_sid -> {namespace: packets held while its connect handler runs}
    last_namespace = {}  # eio_sid (while connecting) -> namespace of its last text packet; attachments follow it

    def known(namespace):
        return (
            namespace in server.handlers
            or namespace in server.namespace_handlers
            or server.namespaces == "*"
            or namespace in server.namespaces
        )

    def handle_connect_in_order(eio_sid, namespace, data):
        namespace = namespace or "/"
        if not known(namespace):
            refusal = {"message": "Invalid namespace"}
            server._send_packet(eio_sid, server.packet_class(packet.CONNECT_ERROR, data=refusal, namespace=namespace))
            return None
        holds = connecting.setdefault(eio_sid, {})
        if namespace in holds:  # a second CONNECT while the first is handled: python-socketio refuses it
            return handle_connect(eio_sid, namespace, data)
        held = holds[namespace] = Held()
        try:
            handle_connect(eio_sid, namespace, data)
        except Exception:
            # python-socketio answers nothing to a connect whose handler raised (not a refusal)
            # and keeps the client half-connected, in the namespace's broadcasts: refuse it.
            sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None:
                server.manager.disconnect(sid, namespace, ignore_queue=True)
            refusal = server.packet_class(packet.CONNECT_ERROR, data={"message": "internal"}, namespace=namespace)
            server._send_packet(eio_sid, refusal)
            raise  # logged, with its cause, by drop_bad_packets
        finally:
            del holds[namespace]
            if not holds:
                del connecting[eio_sid]
                last_namespace.pop(eio_sid, None)
        sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not server.manager.is_connected(sid, namespace):
            return None  # refused: what it was sent goes with the refusal
        if held.overflowed:
            log.warning("disconnected %s from %s: over %s bytes were sent to it while it connected",
                        sid, namespace, MAX_HELD_BYTES)  # fmt: skip
            server.disconnect(sid, namespace=namespace)
            return None
        for pkt in held.packets:
            send_packet(eio_sid, pkt)
        return None

    def send_packet_in_order(eio_sid, pkt):
        holds = connecting.get(eio_sid)
        if not holds or pkt.packet_type != eio_packet.MESSAGE:
            return send_packet(eio_sid, pkt)
        if isinstance(pkt.data, str):
            namespace = last_namespace[eio_sid] = packet_namespace(pkt.data)
            connect_reply = pkt.data[:1] in (str(packet.CONNECT), str(packet.CONNECT_ERROR))  # they go first
        else:  # a binary attachment, of the packet before it
            namespace, connect_reply = last_namespace.get(eio_sid), False
        held = holds.get(namespace)
        if held is None or connect_reply:
            return send_packet(eio_sid, pkt)
        held.hold(pkt)
        return None

    server._handle_connect = handle_connect_in_order
    server.eio.send_packet = send_packet_in_order
