"""Socket.IO on the app: the server's options and internals (resources/socket/), then the namespaces."""

from extensions import socketio
from resources.socket import admin_ui
from resources.socket.chat import ChatSocket
from resources.socket.contexts import prepare_event_contexts
from resources.socket.handshake import connect_packet_first, strict_engineio_requests
from resources.socket.jobs import JobsSocket
from resources.socket.manager import client_manager
from resources.socket.outbox import bound_outboxes
from resources.socket.packets import AnsweringPacket, drop_bad_packets
from services.channels import CHAT, JOBS, RESYNC_NAMESPACES, ROOM_CHANNEL_KINDS


def init_socketio(app):
    """Configure the Socket.IO server for the app, then register the namespaces on it."""
    socketio.init_app(
        app,
        async_mode="gevent",
        client_manager=client_manager(
            app.config["SOCKETIO_MESSAGE_QUEUE"], app.config["SOCKETIO_CHANNEL"], RESYNC_NAMESPACES, ROOM_CHANNEL_KINDS
        ),
        cors_allowed_origins=app.config["CORS_ALLOWED_ORIGINS"],
        transports=app.config["SOCKETIO_TRANSPORTS"],
        max_http_buffer_size=app.config["SOCKETIO_MAX_HTTP_BUFFER_SIZE"],
        # One client's events run one after another, in the order it sent them:
        # two quick sends are stored in that order. Different clients still run at once.
        async_handlers=False,
        serializer=AnsweringPacket,
    )
    # First: instrument() replaces the Engine.IO connect/disconnect handlers, so what wraps them comes after.
    admin_ui.instrument(app, socketio)
    drop_bad_packets(socketio.server)
    # Before anything that keeps a reference to eio.send_packet or server._handle_connect (none does yet).
    connect_packet_first(socketio.server)
    strict_engineio_requests(socketio.server.eio)
    bound_outboxes(socketio.server, app.config["SOCKET_MAX_PENDING_BYTES"])
    prepare_event_contexts(app)
    # init_app builds a new Socket.IO server, so namespaces are registered after it.
    register_namespaces(socketio)


def register_namespaces(socketio):
    """Attach one instance of each namespace class; a new feature is one more line here."""
    socketio.on_namespace(ChatSocket(CHAT))
    socketio.on_namespace(JobsSocket(JOBS))
