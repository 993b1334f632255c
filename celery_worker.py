"""The Celery entry point: celery -A celery_worker worker."""

from flask_socketio import SocketIO

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
# Tasks emit through a write-only Socket.IO client (no app, no listener) on the
# web processes' message queue and channel; they deliver to the browsers.
flask_app.extensions["socketio_emitter"] = SocketIO(
    message_queue=flask_app.config["REDIS_URL"], channel=flask_app.config["SOCKETIO_CHANNEL"]
)
