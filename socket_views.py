"""Register the Socket.IO namespaces on the socketio extension."""

from resources.socket.chat import ChatSocket
from resources.socket.jobs import JobsSocket


def register_namespaces(socketio):
    """Attach one instance of each namespace class; call right after socketio.init_app."""
    socketio.on_namespace(ChatSocket("/chat"))
    socketio.on_namespace(JobsSocket("/jobs"))


def close_all_connections(socketio):
    """Close every client's Engine.IO connection; clients reconnect (elsewhere) and catch up with since."""
    socketio.server.eio.disconnect()
