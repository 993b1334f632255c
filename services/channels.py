"""The Socket.IO namespaces and rooms, each named once here, and the emit that reaches them from any process."""

from flask import current_app

from extensions import socketio

CHAT = "/chat"
JOBS = "/jobs"
ADMIN = "/admin"  # the Socket.IO Admin UI's, with ADMIN_UI=1 (resources/socket/admin_ui.py); admins only
RESYNC_NAMESPACES = (CHAT, JOBS)  # whose clients catch up from the database when told to resync
EMITTER = "roomcast_emitter"  # app.extensions key of a Celery worker's write-only SocketIO
# Rooms named with these prefixes (chat rooms, jobs' rooms) have a Redis channel of their own, which a process
# follows only while it has sockets there (resources/socket/manager.py, docs/scaling.md). The rest (a user's, a
# login's, a socket's own) are rarely emitted to and stay on the shared channel: following them would cost a
# subscription at every connect.
ROOM_CHANNEL_KINDS = ("room:", "job:")


def chat_room(name):
    """Return the Socket.IO room of a chat room (prefixed: apart from the per-sid rooms Socket.IO makes)."""
    return f"room:{name}"


def chat_room_name(room):
    """Return the chat room a Socket.IO room stands for, or None if it is not a chat room's."""
    return room.removeprefix("room:") if room.startswith("room:") else None


def job_room(job_id):
    """Return the Socket.IO room that follows a job."""
    return f"job:{job_id}"


def user_room(user_id):
    """Return the Socket.IO room of every socket of a user."""
    return f"user:{user_id}"


def login_room(login_id):
    """Return the Socket.IO room of the sockets opened by one login (a session or a token)."""
    return f"login:{login_id}"


def use_emitter(app, emitter):
    """Send emit() through `emitter`: a write-only SocketIO, in processes that serve no clients (Celery)."""
    app.extensions[EMITTER] = emitter


def emit(event, data, room, namespace):
    """Emit to a room on every process: through this process's server, or the emitter use_emitter set."""
    sender = current_app.extensions.get(EMITTER) or socketio
    sender.emit(event, data, to=room, namespace=namespace)
