"""The gunicorn entry point: gunicorn.conf.py names wsgi:app."""

from gevent import monkey

# gunicorn's gevent worker has monkey-patched the process by the time it
# imports this module; make psycopg2 cooperative too, so a slow PostgreSQL
# query yields to other greenlets instead of blocking the whole worker.
if monkey.is_module_patched("socket"):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from app import create_app, start_background_work  # noqa: E402
from resources.socket.gunicorn_worker import quiet_websocket_close  # noqa: E402

app = create_app()
quiet_websocket_close(app)
start_background_work(app)
