"""The Flask request context Flask-SocketIO pushes around every event, made cheap to build."""

from flask.sessions import SecureCookieSessionInterface

from core.errors import ProtocolError


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
