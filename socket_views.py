"""Register the Socket.IO namespaces on the socketio extension."""

from resources.socket.bench import BenchSocket
from resources.socket.chat import ChatSocket
from resources.socket.jobs import JobsSocket


def register_namespaces(socketio, bench=False):
    """Attach one instance of each namespace class (and /bench if asked); call right after socketio.init_app."""
    socketio.on_namespace(ChatSocket("/chat"))
    socketio.on_namespace(JobsSocket("/jobs"))
    if bench:
        socketio.on_namespace(BenchSocket("/bench"))


def close_all_connections(socketio):
    """Close every client's Engine.IO connection; clients reconnect (elsewhere) and catch up with since."""
    eio = socketio.server.eio
    for sid, client in list(eio.sockets.items()):
        # Not eio.disconnect(): it waits for each client to take its close packet,
        # and a long-polling client that does not poll again would stall the rest.
        client.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        eio.sockets.pop(sid, None)
