"""Wire Socket.IO onto the app: the namespaces, a packet decoder that answers any input, cheap event contexts."""

import logging

from flask.sessions import SecureCookieSessionInterface
from socketio import packet

from errors import ProtocolError
from resources.socket.bench import BenchSocket
from resources.socket.chat import ChatSocket
from resources.socket.jobs import JobsSocket

log = logging.getLogger(__name__)

# The namespaces whose clients catch up from the database when told to resync.
RESYNC_NAMESPACES = ("/chat", "/jobs")


def register_namespaces(socketio, bench=False):
    """Attach one instance of each namespace class (and /bench if asked); call right after socketio.init_app."""
    socketio.on_namespace(ChatSocket("/chat"))
    socketio.on_namespace(JobsSocket("/jobs"))
    if bench:
        socketio.on_namespace(BenchSocket("/bench"))


class AnsweringPacket(packet.Packet):
    """python-socketio's packet, decoded so that every event reaches a namespace that can answer it."""

    def decode(self, encoded_packet):
        if not isinstance(encoded_packet, str):  # a binary frame: the protocol is JSON only
            raise ValueError("binary frames are not part of the protocol")
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, RecursionError):  # bad JSON, or nested past Python's recursion limit
            if self.packet_type not in (packet.EVENT, packet.BINARY_EVENT):
                raise
            self.data, attachments = None, 0
        if self.packet_type == packet.BINARY_ACK:
            raise ValueError("binary packets are not part of the protocol")
        if self.packet_type == packet.BINARY_EVENT:
            # Answered as an event without a name, and no attachment is waited for (or
            # kept): python-socketio would hold every binary frame the packet announces.
            self.packet_type, self.data, attachments = packet.EVENT, None, 0
        if self.packet_type == packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            # No event name ([], {...}, [1], undecodable): python-socketio would fail on it
            # without an answer; the namespace answers an event called "" as unknown.
            self.data = [""]
        return attachments


def drop_bad_packets(server):
    """Drop a packet python-socketio cannot handle with one log line, not a traceback."""
    handle = server._handle_eio_message

    def handle_or_drop(eio_sid, data):
        try:
            handle(eio_sid, data)
        except Exception as error:  # a client's malformed packet (unknown type, stray attachment...)
            log.warning("dropped a malformed Socket.IO packet from %s: %s: %s", eio_sid, type(error).__name__, error)

    server.eio.on("message", handle_or_drop)


def close_all_connections(socketio):
    """Close every client's Engine.IO connection; clients reconnect (elsewhere) and catch up with since."""
    eio = socketio.server.eio
    for sid, client in list(eio.sockets.items()):
        # Not eio.disconnect(): it waits for each client to take its close packet,
        # and a long-polling client that does not poll again would stall the rest.
        client.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        eio.sockets.pop(sid, None)


class EventSessionInterface(SecureCookieSessionInterface):
    """Cookie sessions; a Socket.IO event reuses its connection's session instead of decoding the cookie again."""

    def open_session(self, app, request):
        # Flask-SocketIO keeps a copy of the session per connection (made at its
        # first event) and puts it in place of this one right after.
        saved = request.environ.get("saved_session")
        return saved if saved is not None else super().open_session(app, request)


def socket_io_path():
    """The Socket.IO path as a Flask route: the Socket.IO middleware answers it, so this never runs."""
    raise ProtocolError("not_found", "Socket.IO is served at /socket.io/ by the Socket.IO server")


def prepare_event_contexts(app):
    """Make the request context Flask-SocketIO pushes around every event cheap to build."""
    app.session_interface = EventSessionInterface()
    # Each event's context matches its connection's URL (a WebSocket one, or the polling
    # request it began with); with no route for it, every event raised and kept a routing
    # exception, whose traceback makes a reference cycle of the whole context: garbage
    # only the cycle collector frees, in pauses that grow with the number of clients.
    for websocket in (False, True):
        app.add_url_rule(
            "/socket.io/", f"socket_io_{websocket}", socket_io_path, websocket=websocket, strict_slashes=False
        )
