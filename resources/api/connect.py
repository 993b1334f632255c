"""GET /api/socketio: how a client connects, so clients follow the server's transports."""

from flask import current_app

from resources.api import api


@api.get("/socketio")
def socketio_settings():
    """Say which Engine.IO transports this server accepts (only websocket in WEBSOCKET_ONLY mode)."""
    return {"path": "/socket.io", "transports": current_app.config["SOCKETIO_TRANSPORTS"]}
