"""Socket.IO in a gunicorn GeventWebSocketWorker: subscribe before serving, idle and closing connections, GC tuning.

Also gevent-websocket's two pure-Python loops over every byte a client sends (UTF-8 check, unmasking), done in C.
"""

import codecs
import gc
import logging
import signal
from datetime import timedelta

import gevent
from gunicorn.workers.ggevent import GeventResponse

from extensions import socketio

log = logging.getLogger(__name__)
READ_BUFFER = 1024  # bytes of each connection's read buffer
FIRST_REQUEST_SECONDS = 10  # a new connection's first request line must come within this


def serve_in_worker(worker, keepalive, subscribe_timeout):
    """Prepare a gunicorn worker whose app is loaded (post_worker_init) to serve Socket.IO clients."""
    if worker.wsgi_handler is not None:  # pywsgi-based workers (ours); `-k gevent` has its own keepalive
        worker.wsgi_handler = request_handler(worker.wsgi_handler, keepalive)
        unmask_frames_in_c()

    # Subscribe to the Socket.IO channel before serving: python-socketio would do it
    # at the first connect, and lose what is published until the subscription is in.
    # If Redis is away, serve anyway; /readyz says 503 until the listener is subscribed.
    if not socketio.server.manager.wait_subscribed(subscribe_timeout):
        log.warning("the Redis listener is not subscribed after %s s; /readyz answers 503", subscribe_timeout)

    stop_accepting = worker.handle_exit

    def close_connections_until_exit():
        # Without this, open WebSockets keep the worker until graceful_timeout
        # and then die with it, unannounced; closed cleanly, clients reconnect
        # elsewhere. Repeated: the worker accepts for up to a second more.
        while True:
            close_all_connections(socketio)
            gevent.sleep(0.5)

    def handle_exit(signum, frame):
        stop_accepting(signum, frame)
        gevent.spawn(close_connections_until_exit)

    signal.signal(signal.SIGTERM, handle_exit)
    tune_gc()


def tune_gc():
    """Keep the loaded app out of full collections, and collect the young generation less often."""
    # Full collections' pauses stall every client of this worker; the young generation
    # every 10,000 allocations instead of 700 made them rare (docs/benchmarks.md, "Profiling").
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def close_all_connections(socketio):
    """Close every client's Engine.IO connection; clients reconnect (elsewhere) and catch up with since."""
    eio = socketio.server.eio
    for sid, client in list(eio.sockets.items()):
        # Not eio.disconnect(): it waits for each client to take its close packet,
        # and a long-polling client that does not poll again would stall the rest.
        client.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        eio.sockets.pop(sid, None)


def request_handler(handler_class, seconds):
    """Return gevent-websocket's handler_class, fixed: idle connections closed, bad upgrades answered, access logged.

    A connection idle for `seconds` between requests is closed (0: after each request).
    """

    class Handler(handler_class):
        served = False  # per connection: gevent makes a handler for each

        def __init__(self, sock, address, server, rfile=None):
            # pywsgi reads through an 8 KB buffer kept for the connection's life; requests and
            # Socket.IO frames are small, and larger reads bypass the buffer: 1 KB saves 5 KB per
            # idle connection (docs/benchmarks.md, "Memory per idle connection").
            super().__init__(sock, address, server, rfile if rfile is not None else sock.makefile("rb", READ_BUFFER))

        def read_requestline(self):
            # Else an idle keep-alive connection (a browser's, nginx's upstream pool)
            # holds a worker_connections slot for ever, and holds up a graceful
            # shutdown until graceful_timeout.
            first, self.served = not self.served, True
            # A keep-alive handler keeps the last request's environ: a malformed next request
            # (answered 400 before it is parsed) would be logged as that one.
            self.environ = self.response_headers = None
            if not first and seconds <= 0:
                return ""  # keep-alive off; gevent's handler closes the connection
            with gevent.Timeout(max(seconds, FIRST_REQUEST_SECONDS) if first else seconds, False):
                return super().read_requestline()
            return ""

        def start_response(self, status, headers, exc_info=None):
            # gevent's pywsgi closes an HTTP/1.1 connection after this response when the
            # request said Connection: close (read_request), or when keep-alive is off here,
            # but says so only to HTTP/1.0 clients (start_response adds no Connection header
            # for 1.1). A pooling client (Node's http agent, node-fetch) then keeps the
            # socket and sends its next request into the closed connection: "socket hang up".
            if seconds <= 0:  # keep-alive off: read_requestline will not read another request
                self.close_connection = True
            if (
                self.close_connection
                and self.request_version == "HTTP/1.1"
                and not status.startswith("101")
                and not any(text(name).lower() == "connection" for name, _ in headers)
            ):
                headers = [*headers, ("Connection", "close")]
            return super().start_response(status, headers, exc_info)

        def upgrade_connection(self):
            result = super().upgrade_connection()
            if getattr(self, "websocket", None) is not None:
                self.websocket.utf8validator = Utf8Check()
            return result

        def upgrade_websocket(self):
            # gevent-websocket refuses a bad upgrade (no Sec-WebSocket-Version) with a
            # text body, which pywsgi cannot write: the client got nothing and the log a traceback.
            result = super().upgrade_websocket()
            if isinstance(result, list):
                return [part.encode() if isinstance(part, str) else part for part in result]
            return result

        def get_environ(self):
            environ = super().get_environ()
            environ["RAW_URI"] = self.path  # gunicorn's access log reads it (its own handler sets it)
            return environ

        def log_request(self):
            # gevent-websocket logs requests its own way, to a logger that gunicorn's
            # ACCESS_LOG and access_log_format do not reach: log them through gunicorn
            # (a WebSocket's line comes when it closes), with headers as text, not bytes.
            if not self.environ or not self.status:  # refused before it was parsed (a malformed request)
                return super().log_request()
            headers = [(text(name), text(value)) for name, value in getattr(self, "response_headers", None) or ()]
            response = GeventResponse(text(self.status), headers, self.response_length)
            request_headers = self.headers.items() if getattr(self, "headers", None) is not None else []
            took = timedelta(seconds=max(0.0, (self.time_finish or self.time_start) - self.time_start))
            self.server.log.access(response, request_headers, self.environ, took)

    return Handler


class Utf8Check:
    """gevent-websocket's UTF-8 validator interface, done by Python's own decoder (in C).

    gevent-websocket checks every text frame with a pure-Python loop over its bytes, and then the
    whole message again: 15 us for a 70-byte event, 1.1 ms for a 4 KB chat message, of CPU the
    worker spends on nothing else (docs/benchmarks.md, "Event and connect paths"). An incremental
    decoder says the same (invalid UTF-8 closes the WebSocket with 1007, a sequence split across
    frames is fine), at C speed.
    """

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def reset(self):
        """Start a new message."""
        self.decoder.reset()

    def validate(self, data):
        """Check the next bytes of a message: (valid, ends on a code point, index, total) as gevent-websocket's."""
        try:
            self.decoder.decode(data)
        except UnicodeDecodeError as error:
            return False, False, error.start, error.start
        pending, _ = self.decoder.getstate()  # the start of a character the next frame ends
        return True, not pending, len(data), len(data)


def unmask_frames_in_c():
    """Have gevent-websocket unmask what clients send with one integer XOR, not a Python loop over its bytes."""
    # Every frame a client sends is masked (RFC 6455); gevent-websocket undoes it a byte at a
    # time: 3.5 us for a 70-byte event, 190 us for a 4 KB message. Header has no per-connection
    # hook (read_frame makes one per frame from the class), so the class's method is replaced.
    # Imported here: under gunicorn -k gevent, engineio serves WebSockets without gevent-websocket.
    from geventwebsocket.websocket import Header

    Header.mask_payload = Header.unmask_payload = unmask_payload


def unmask_payload(header, payload):
    """XOR payload with the header's 4-byte mask, as gevent-websocket's Header.mask_payload does."""
    size = len(payload)
    key = (bytes(header.mask) * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def text(value):
    """Return a header name or value as str (gevent keeps them as bytes)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


class IgnoreWebSocketClose:
    """What gevent-websocket calls when a WebSocket closes; Engine.IO handles closes itself."""

    def on_close(self, reason):
        """Nothing to do."""


def quiet_websocket_close(app):
    """Give gevent-websocket the close handler it looks for on the app."""
    # Without this attribute gevent-websocket defines a new class at every close (garbage
    # that only the cycle collector frees, in pauses that grow with the number of clients).
    app.current_app = IgnoreWebSocketClose()
