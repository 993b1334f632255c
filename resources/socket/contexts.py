"""The Flask request context every Socket.IO event runs in, made cheap to build."""

from flask.ctx import RequestContext
from flask.sessions import SecureCookieSessionInterface
from flask_socketio import _ManagedSession
from werkzeug.exceptions import HTTPException

from core.errors import ProtocolError

MATCHED = "roomcast.matched"  # environ key: the connection's URL adapter and route, from its first event


class EventSessionInterface(SecureCookieSessionInterface):
    """Cookie sessions; a Socket.IO event reuses its connection's session instead of decoding the cookie again."""

    def open_session(self, app, request):
        # Flask-SocketIO keeps a copy of the session per connection (made at its
        # first event) and puts it in place of this one right after.
        saved = request.environ.get("saved_session")
        if saved is not None:
            return saved
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            # No cookie (a token's connect, an API call): the empty session Flask answers, without
            # first building its signing serializer (12 us, docs/benchmarks.md "Event and connect paths").
            return self.session_class()
        return super().open_session(app, request)


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


class EventContext(RequestContext):
    """The request context of one Socket.IO event: a new request on its connection's environ, matched once.

    Flask-SocketIO builds a full request context per event (SocketIO._handle_event): a URL adapter
    bound to the environ and a route match each time, the same for every event of a connection, and
    more than half of the context's cost (docs/benchmarks.md, "Event and connect paths"). Here they
    are made at the connection's first event and kept in its environ, like Flask-SocketIO's session
    copy; the request object is still new per event, with its own attributes.
    """

    def __init__(self, app, environ):  # what RequestContext.__init__ sets, less the adapter and the match
        self.app = app
        self.request = request = app.request_class(environ)
        request.json_module = app.json
        matched = environ.get(MATCHED)
        if matched is None:
            matched = environ[MATCHED] = match_once(app, request)
        self.url_adapter, request.url_rule, view_args, request.routing_exception = matched
        request.view_args = dict(view_args) if view_args is not None else None
        self.flashes = None
        self._session = environ.get("saved_session")  # None at the first event: push() opens the cookie's
        self._after_request_functions = []
        self._cv_tokens = []

    def match_request(self):
        """Matched at the connection's first event already."""


def match_once(app, request):
    """Return (URL adapter, rule, view args, routing exception) for a connection's environ."""
    adapter = rule = view_args = None
    try:
        adapter = app.create_url_adapter(request)
        rule, view_args = adapter.match(return_rule=True)
    except HTTPException as error:
        return adapter, None, None, error
    return adapter, rule, view_args, None


def handle_event(socketio, handler, event, namespace, sid, *args):
    """Call an event handler as Flask-SocketIO's SocketIO._handle_event does, in an EventContext."""
    if not socketio.manage_session or socketio.exception_handlers or socketio.default_exception_handler:
        return socketio._handle_event(handler, event, namespace, sid, *args)  # what EventContext does not cover
    environ = socketio.server.get_environ(sid, namespace=namespace)
    if not environ:  # a client python-socketio no longer knows: ignored, as Flask-SocketIO does
        return "", 400
    with EventContext(environ["flask.app"], environ) as context:
        if "saved_session" not in environ:
            # Each connection's events share a copy of the session it connected with (Flask-SocketIO's).
            environ["saved_session"] = _ManagedSession(context.session)
            context._session = environ["saved_session"]
        request = context.request
        request.sid, request.namespace, request.event = sid, namespace, {"message": event, "args": args}
        if event == "connect":
            return handler(args[1] if len(args) > 1 else None)  # args: environ, auth
        return handler(*args)
