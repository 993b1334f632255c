"""The gunicorn entry point: gunicorn.conf.py names wsgi:app."""

from gevent import monkey

# gunicorn's gevent worker has monkey-patched the process by the time it
# imports this module; make psycopg2 cooperative too, so a slow PostgreSQL
# query yields to other greenlets instead of blocking the whole worker.
if monkey.is_module_patched("socket"):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from app import create_app  # noqa: E402

app = create_app()


class IgnoreWebSocketClose:
    """What gevent-websocket calls when a WebSocket closes; Engine.IO handles closes itself."""

    def on_close(self, reason):
        """Nothing to do."""


# Without this attribute gevent-websocket defines a new class at every close (garbage
# that only the cycle collector frees, in pauses that grow with the number of clients).
app.current_app = IgnoreWebSocketClose()
