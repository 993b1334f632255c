"""Quick polls in a chat room: the README's "Adding a namespace" example, complete and tested."""

from core.validation import ROOM_NAME, Field
from resources.socket.base import BaseSocket, payload


def poll_room(name):
    """Return the Socket.IO room of a chat room's polls."""
    return f"poll:{name}"


class PollSocket(BaseSocket):
    """Ask the people of a chat room a question; only those who may read the room take part."""

    @payload(room=ROOM_NAME)
    def on_follow(self, room):
        """Receive the room's questions (not_found for a room the caller may not read)."""
        self.join_readable_room(room, poll_room)
        return {"room": room}

    @payload(room=ROOM_NAME, question=Field(str, min_length=1, max_length=200))
    def on_ask(self, room, question):
        """Ask the room's followers a question."""
        self.readable_room(room)  # a private room's outsiders may not post into it
        asked = {"room": room, "by": self.user.username, "question": question}
        self.emit("asked", asked, room=poll_room(room))
        return {"question": question}  # the ack: {"ok": true, "question": ...}
