"""The Socket.IO Admin UI (https://socket.io/docs/v4/admin-ui/) at /admin/, for Roomcast's admins only.

This module owns the Admin UI, server side and page, when ADMIN_UI=1 (off by default;
make run turns it on). The server side is python-socketio's instrument()
(socketio/admin.py): an /admin namespace whose clients are sent what happens to
every socket. Roomcast adds:

- who may connect: a Roomcast user with is_admin (`flask users grant-admin NAME`),
  by the UI's username/password form, or by the browser's Roomcast login;
- every web process reports: instrument() emits through the client manager, so its
  reports travel on Redis to the admins of every process; manager.py keeps them off
  Redis while no admin is connected, and has each process list its sockets to an
  admin who connects elsewhere (instrument() lists only its own process's);
- full mode (ADMIN_UI_FULL=1): join, leave and disconnect act on the sockets of every
  process (instrument()'s act on its own process's only), each logged with the admin's name;
- no credentials shown: the Cookie and Authorization headers and the token query
  parameters of each socket's handshake are hidden;
- refused connects reported as disconnects (instrument() would show them for ever);
- the UI itself, from the pinned npm package @socket.io/admin-ui (its ui/dist), with
  its two third-party stylesheets (Google Fonts, the icon font from jsDelivr)
  replaced by the pinned @mdi/font served from here, and pointed at this server
  (static/js/admin-ui.js); its theme's inline <style> allowed by hash in the CSP.
"""

import logging
import re
from datetime import UTC, datetime
from functools import cache

from engineio import socket as engineio_socket
from flask import Blueprint, Response, abort, current_app, g, request, send_from_directory, session, url_for
from flask_login import current_user
from markupsafe import escape
from redis.exceptions import RedisError
from socketio.exceptions import ConnectionRefusedError

from config import PROJECT_ROOT
from core.errors import ProtocolError
from services.accounts import authenticate
from services.channels import ADMIN, login_room, user_room

log = logging.getLogger(__name__)

ADMIN_UI_DIST = PROJECT_ROOT / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
MDI_FONT = PROJECT_ROOT / "node_modules" / "@mdi" / "font"
# What the UI's index.html loads from other sites, and what replaces it (None: nothing; Roboto falls back).
THIRD_PARTY_STYLESHEETS = {
    "https://fonts.googleapis.com/": None,
    "https://cdn.jsdelivr.net/npm/@mdi/font": "mdi/css/materialdesignicons.min.css",
}
# The UI's one inline style: the <style> Vuetify writes its theme into (empty at first, then
# the light or the dark theme). Allowed by hash, not 'unsafe-inline'; a new version of the
# package may need new ones (the browser's console names them; tests/test_admin_ui.py fails).
THEME_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # empty
    "'sha256-H0hALk5rjM4aGisbF9hx4t4yVUsKf0ZX1N28nouwAhI='",  # light theme
    "'sha256-UA8uVkzlAxGk09z6OrvqQkcbhXuelL/B23jotWQLt78='",  # dark theme
)
HIDDEN = "(hidden)"
HIDDEN_HEADERS = frozenset({"cookie", "authorization", "proxy_authorization"})  # as instrument() names them
HIDDEN_QUERY = frozenset({"token", "access_token"})
LOGIN_NEEDED = "log in with a Roomcast admin's username and password"
REFUSED = "invalid credentials"  # the UI shows this one as "Invalid credentials"
# instrument() patches these methods of Engine.IO's Socket class, for the whole process:
# kept as they were, to be put back before a second instrument() in one process (an app
# factory's tests), which would otherwise wrap its own wrappers and recurse for ever.
ENGINEIO_SOCKET_METHODS = {
    name: getattr(engineio_socket.Socket, name) for name in ("handle_post_request", "_websocket_handler", "_send_ping")
}

admin_ui = Blueprint("admin_ui", __name__)


def instrument(app, socketio):
    """Instrument the app's Socket.IO server for the Admin UI if ADMIN_UI is on; return the InstrumentedServer.

    Call it right after socketio.init_app and before anything else wraps the Engine.IO
    handlers: instrument() sets its own connect and disconnect handlers on Engine.IO,
    which call the Socket.IO server's directly, so a wrapper set before would be dropped.
    """
    config = app.config
    if not config["ADMIN_UI"]:
        return None
    server = socketio.server
    mode = config["ADMIN_UI_MODE"]
    read_only = not config["ADMIN_UI_FULL"]
    for name, method in ENGINEIO_SOCKET_METHODS.items():
        setattr(engineio_socket.Socket, name, method)
    instrumented = server.instrument(auth=admin_from_auth, mode=mode, read_only=read_only, namespace=ADMIN)
    manager = server.manager
    manager.admin_namespace = ADMIN
    instrumented.serialize_socket = without_credentials(manager, instrumented.serialize_socket)
    # instrument()'s handlers are the Socket.IO server's own, not Flask-SocketIO's: they
    # run with no app or request context, which the login check needs.
    admin_connect = server.handlers[ADMIN]["connect"]
    server.on("connect", connect_handler(app, server, admin_connect), namespace=ADMIN)
    if mode == "development":
        manager.emit = reporting_sends_when_watched(manager, manager.emit)
        manager.on_admin_arrived = lambda admin_sid: report_sockets(instrumented, admin_sid)
        server._trigger_event = reporting_refusals(instrumented, server._trigger_event)
        if not read_only:
            server.on("emit", logged_emit(server, server.handlers[ADMIN]["emit"]), namespace=ADMIN)
            for event, action in (("join", "join"), ("leave", "leave"), ("_disconnect", "disconnect")):
                server.on(event, acting_on_every_process(server, action), namespace=ADMIN)
    return instrumented


def admin_from_auth(client_auth):
    """instrument()'s auth check: let in an active admin, else refuse with a reason the UI shows.

    client_auth is the /admin connect's auth payload: the UI's login form sends
    {"username", "password"}; on a reload it sends {"sessionId": null} (a session of
    the Node.js server, which python-socketio does not have), and the browser's
    Roomcast login, if it has one, is used instead. Runs in connect_handler's request context.
    """
    username = client_auth.get("username") if isinstance(client_auth, dict) else None
    password = client_auth.get("password") if isinstance(client_auth, dict) else None
    if username or password:
        if not isinstance(username, str) or not isinstance(password, str) or len(username) > 64 or len(password) > 1024:
            raise ConnectionRefusedError(REFUSED)
        try:
            # The login form's check: throttled, slow for every name, hashing off the event loop.
            user = authenticate(username, password, request.remote_addr)
        except ProtocolError as error:  # rate_limited
            raise ConnectionRefusedError(error.message) from None
        except RedisError:
            raise ConnectionRefusedError("the server is briefly unavailable; try again") from None
        login_id = None
    elif current_user.is_authenticated and current_user.is_admin:
        user, login_id = current_user._get_current_object(), session.get("lid")
    else:  # the page's first connect, and a reload's, unless the browser is logged in as an admin
        raise ConnectionRefusedError(LOGIN_NEEDED)
    if user is None or not user.is_admin:
        log.warning(
            "refused an Admin UI login as %r from %s", username or getattr(user, "username", None), request.remote_addr
        )
        raise ConnectionRefusedError(REFUSED)
    g.admin = (user.id, user.username, login_id)
    return True


def connect_handler(app, server, admin_connect):
    """Wrap instrument()'s /admin connect handler in a request context; put the admin's socket in their rooms."""

    def connect(sid, environ, auth):
        with app.request_context(environ):
            try:
                admin_connect(sid, environ, auth)  # raises ConnectionRefusedError unless admin_from_auth let them in
            except ConnectionRefusedError:
                raise
            except Exception:  # the database or Redis failed: refuse, never leave the connect half-open
                log.exception("an Admin UI login failed")
                raise ConnectionRefusedError("internal") from None
            user_id, username, login_id = g.admin
            # `flask users disable`, log out everywhere, or this login's end disconnect it like any socket.
            server.enter_room(sid, user_room(user_id), namespace=ADMIN)
            if login_id:
                server.enter_room(sid, login_room(login_id), namespace=ADMIN)
            server.save_session(sid, {"username": username}, namespace=ADMIN)
            log.info("%s connected to the Admin UI from %s", username, request.remote_addr)
        server.manager.admin_watching(sid)
        if not getattr(server, "admin_watch_task", None):
            server.admin_watch_task = server.start_background_task(keep_watching, server)

    return connect


def keep_watching(server):
    """While admins are connected to this process, keep every process reporting to them."""
    manager = server.manager
    try:
        while True:
            server.sleep(manager.ADMIN_WATCH_SECONDS / 3)
            if next(iter(manager.get_participants(ADMIN, None)), None) is None:
                return
            manager.admin_watching()
    finally:
        server.admin_watch_task = None


def admin_name(server, admin_sid):
    """Return the username of an admin's /admin socket, for the log."""
    try:
        return server.get_session(admin_sid, namespace=ADMIN).get("username")
    except KeyError:
        return None


def logged_emit(server, admin_emit):
    """Wrap instrument()'s emit handler (full mode): log what the admin sent, then send it (to every process's)."""

    def emit(admin_sid, namespace=None, room_filter=None, event=None, *data):
        # roomcast:... are manager.py's requests between processes, carried as emits.
        if not isinstance(event, str) or event.startswith("roomcast:") or not is_room_filter(room_filter):
            log.warning("ignored a malformed Admin UI emit from %s", admin_name(server, admin_sid))
            return
        log.info(
            "%s emitted %r to %s %r from the Admin UI", admin_name(server, admin_sid), event, namespace, room_filter
        )
        admin_emit(admin_sid, namespace, room_filter, event, *data)

    return emit


def is_room_filter(room_filter):
    """Tell whether an admin's room filter is one the manager can look up: None (all), a room or a list of rooms."""
    if room_filter is None or isinstance(room_filter, str):
        return True
    return isinstance(room_filter, list) and bool(room_filter) and all(isinstance(room, str) for room in room_filter)


def acting_on_every_process(server, action):
    """Return the handler of an admin's join, leave or _disconnect: instrument()'s, on every process's sockets.

    The UI sends join and leave as (namespace, room, room_filter) and _disconnect as
    (namespace, close, room_filter); room_filter is a socket's id or a room (None: all).
    """

    def handle(admin_sid, namespace=None, room_or_close=None, room_filter=None, *_):
        room = None if action == "disconnect" else room_or_close
        valid_room = action == "disconnect" or (isinstance(room, str) and room != "")
        if not isinstance(namespace, str) or not is_room_filter(room_filter) or not valid_room:
            log.warning("ignored a malformed Admin UI %s from %s", action, admin_name(server, admin_sid))
            return
        log.info(
            "%s: %s %s %r%s from the Admin UI",
            admin_name(server, admin_sid), action, namespace, room_filter, f" {room!r}" if room else "",
        )  # fmt: skip
        server.manager.admin_act(action, namespace, room_filter, room)

    return handle


def report_sockets(instrumented, admin_sid):
    """Tell an admin who has connected to another process of this process's sockets.

    instrument() sends a new admin its own process's sockets only ("all_sockets",
    which replaces the UI's list, 0.1 s after the connect): these come after it.
    """
    server = instrumented.sio
    server.sleep(0.5)
    now = datetime.now(UTC).isoformat()
    for namespace in list(server.manager.get_namespaces()):
        if namespace == ADMIN:
            continue
        for sid, eio_sid in list(server.manager.get_participants(namespace, None)):
            try:
                socket = instrumented.serialize_socket(sid, namespace, eio_sid)
            except KeyError:  # gone meanwhile
                continue
            server.emit("socket_connected", (socket, now), to=admin_sid, namespace=ADMIN)


def reporting_refusals(instrumented, trigger_event):
    """Wrap instrument()'s _trigger_event: a refused connect is reported as a disconnect, and forgotten.

    instrument() reports a socket as connected before the connect handler runs, and
    nothing when that handler refuses it: the UI would keep every refused socket (and
    the server its connect time) for ever.
    """
    server = instrumented.sio

    def forget(sid, namespace):
        server.manager._timestamps.pop(sid, None)
        when = datetime.now(UTC).isoformat()
        server.emit("socket_disconnected", (namespace, sid, "connection refused", when), namespace=ADMIN)

    def trigger(event, namespace, *args):
        if event != "connect":
            return trigger_event(event, namespace, *args)
        try:
            accepted = trigger_event(event, namespace, *args)
        except ConnectionRefusedError:  # python-socketio's, and the builtin it subclasses
            forget(args[0], namespace)
            raise
        if accepted is False:
            forget(args[0], namespace)
        return accepted

    return trigger


def reporting_sends_when_watched(manager, reporting_emit):
    """Wrap instrument()'s manager.emit: report the sends of an emit only while an admin is watching.

    instrument() reports an emit to a room once per socket in it, each an emit of its
    own: a loop over the whole room on every broadcast, even while nobody watches.
    """
    plain_emit = type(manager).emit.__get__(manager)  # manager.py's, without instrument()'s reports

    def emit(event, data, namespace=None, *args, **kwargs):
        send = reporting_emit if manager.admin_watched() else plain_emit
        return send(event, data, namespace, *args, **kwargs)

    return emit


def without_credentials(manager, serialize_socket):
    """Wrap instrument()'s serialize_socket: hide the handshake's cookies, authorization and tokens.

    instrument() shows every HTTP header of a socket's handshake, its session cookie
    included: a credential that would let an admin act as that user. While no admin
    watches, the report goes nowhere (manager.py), so it is not made either: instrument()
    serializes each socket at its connect and at every ping.
    """

    def serialize(sid, namespace, eio_sid=None):
        if not manager.admin_watched():
            return {"id": sid, "nsp": namespace}
        socket = serialize_socket(sid, namespace, eio_sid)
        handshake = socket["handshake"]
        handshake["headers"] = {
            name: HIDDEN if name in HIDDEN_HEADERS else value for name, value in handshake["headers"].items()
        }
        query = handshake["query"]
        handshake["query"] = {name: HIDDEN if name in HIDDEN_QUERY else value for name, value in query.items()}
        return socket

    return serialize


# --- the UI's files ---


@admin_ui.before_request
def only_when_enabled():
    """Answer 404 unless ADMIN_UI is on."""
    if not current_app.config["ADMIN_UI"]:
        abort(404)


@admin_ui.get("/admin/")
def index():
    """Serve the UI's page, loading nothing from other sites, set to connect to this server's /admin namespace."""
    g.csp_style_hashes = THEME_STYLE_HASHES  # app.py's Content-Security-Policy, with these
    ws_only = current_app.config["SOCKETIO_TRANSPORTS"] == ["websocket"]
    setup = url_for("static", filename="js/admin-ui.js")
    html = index_html().replace(
        "<script ", f'<script src="{escape(setup)}" data-ws-only="{int(ws_only)}"></script><script ', 1
    )
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-cache"})


@cache
def index_html():
    """Return the package's index.html with its third-party stylesheets replaced (or dropped)."""
    html = (ADMIN_UI_DIST / "index.html").read_text()
    for prefix, replacement in THIRD_PARTY_STYLESHEETS.items():
        link = re.compile(r'<link rel="stylesheet" href="' + re.escape(prefix) + r'[^"]*">')
        html, found = link.subn(f'<link rel="stylesheet" href="{replacement}">' if replacement else "", html)
        if found != 1:
            raise RuntimeError(f"@socket.io/admin-ui's index.html no longer links {prefix}: update admin_ui.py")
    if re.search(r'(src|href)="(https?:)?//', html):
        raise RuntimeError("@socket.io/admin-ui's index.html loads from another site: update admin_ui.py")
    return html


@admin_ui.get("/admin/mdi/<any(css, fonts):folder>/<path:filename>")
def icon_font(folder, filename):
    """Serve the icon font the UI's icons need (npm @mdi/font, pinned)."""
    return send_from_directory(MDI_FONT / folder, filename)


@admin_ui.get("/admin/<path:filename>")
def asset(filename):
    """Serve the UI's scripts, styles and images (npm @socket.io/admin-ui's ui/dist, pinned)."""
    if filename == "index.html":
        abort(404)  # only index() serves the page, rewritten
    return send_from_directory(ADMIN_UI_DIST, filename)
