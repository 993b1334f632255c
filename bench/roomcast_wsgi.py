"""Roomcast as shipped (wsgi.py) plus the /bench namespace: gunicorn -c gunicorn.conf.py bench.roomcast_wsgi:app."""

from bench.namespace import BenchSocket
from extensions import socketio
from wsgi import app

socketio.on_namespace(BenchSocket("/bench"))

__all__ = ["app"]
