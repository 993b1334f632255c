"""The Celery entry point: celery -A celery_worker worker."""

from celery.signals import setup_logging
from flask_socketio import SocketIO

from app import create_app
from core.logs import configure_logging
from resources.socket.manager import emitter_manager
from services import channels
from services.jobs import redis_transport

# Before any broker connection: the worker's Redis transport must survive Redis
# restarting, which kombu's own does not (see services/jobs/redis_transport.py).
redis_transport.register()

flask_app = create_app()
celery = flask_app.extensions["celery"]


@setup_logging.connect
def use_roomcast_logging(**kwargs):
    """Log as the web processes do (LOG_FORMAT, LOG_LEVEL), instead of Celery's own format."""
    configure_logging(flask_app.config["LOG_FORMAT"], flask_app.config["LOG_LEVEL"])


# Tasks emit through a write-only Socket.IO client (no app, no listener) on the
# web processes' message queue and channel; they deliver to the browsers.
# A publish that fails (Redis away) is followed, once Redis is back, by a resync
# that tells every client to catch up from the database.
channels.use_emitter(
    flask_app,
    SocketIO(
        message_queue=flask_app.config["REDIS_URL"],
        client_manager=emitter_manager(
            flask_app.config["REDIS_URL"],
            flask_app.config["SOCKETIO_CHANNEL"],
            channels.RESYNC_NAMESPACES,
            channels.ROOM_CHANNEL_KINDS,
        ),
    ),
)
