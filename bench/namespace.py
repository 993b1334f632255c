"""The /bench namespace: the handlers the benchmark runs on every server it compares.

Served by bench/roomcast_wsgi.py, never by the product. It goes through everything BaseSocket gives
a real namespace (token auth, validation, rate limits, acks, metrics), so the figures
are Roomcast's own; bench/servers/ holds the same handlers for the other servers.
"""

from flask_socketio import join_room

from core.validation import ROOM_NAME, Field
from resources.socket.base import BaseSocket, payload
from services.channels import chat_room

ECHO_DATA = Field(str, optional=True, max_length=1024)


class BenchSocket(BaseSocket):
    """Join a room (to receive broadcasts an external emitter sends to it); echo with an ack."""

    @payload(room=ROOM_NAME)
    def on_join(self, room):
        """Follow a room, as a chat room (so with a Redis channel of its own: emitters send to room:<name>)."""
        join_room(chat_room(room))
        return {"room": room}

    @payload(sent=Field(float), data=ECHO_DATA)
    def on_echo(self, sent, data):
        """Answer with what was sent: the client measures the round trip."""
        return {"sent": sent, "data": data}
