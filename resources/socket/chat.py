"""The /chat namespace: rooms, messages, typing and presence."""

import logging

from flask import current_app, request
from flask_socketio import join_room, leave_room, rooms

from core.errors import ProtocolError
from core.validation import CLIENT_ID, MESSAGE_ID, MESSAGE_TEXT, ROOM_NAME, Field, optional
from resources.socket.base import BaseSocket, payload
from services import chat, presence, throttle
from services.channels import chat_room, chat_room_name, user_room

log = logging.getLogger(__name__)
HISTORY_LIMIT = 100


def messages_json(messages):
    """Serialize messages for an ack."""
    return [message.to_json() for message in messages]


class ChatSocket(BaseSocket):
    """Chat rooms over Socket.IO, as docs/protocol.md describes /chat."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.usernames = {}  # sid -> username, from the connection's first join

    @payload(
        room=ROOM_NAME, since=optional(MESSAGE_ID), since_seq=optional(MESSAGE_ID), edits_since=optional(MESSAGE_ID)
    )
    def on_join(self, room, since, since_seq, edits_since):
        """Enter a room; ack with its members, who is online, what was missed and what was changed."""
        if since is not None and since_seq is not None:
            raise ProtocolError("invalid", "give since or since_seq, not both")
        user = self.user
        found = chat.readable_room(room, user)
        if not found.private and chat.add_member(found, user):
            # The user's other tabs list the room among theirs, as `parted` takes it away.
            self.emit("member", {"room": room}, room=user_room(user.id), include_self=False)
        # Presence is left by name even after the account is gone (a deleted user's disconnect).
        self.usernames[request.sid] = user.username
        # Follow the room before reading it: a message stored meanwhile then
        # arrives in the ack, as a broadcast, or both (clients drop duplicates by seq).
        join_room(chat_room(room))
        log.info("joined", extra={"room": room})
        try:
            return self.catch_up(found, user, since, since_seq, edits_since)
        except Exception:
            # Never leave a client in the room without its catch-up: it would see
            # live messages after a hole. Out of the room, it simply joins again.
            leave_room(chat_room(room))
            raise

    def catch_up(self, room, user, since, since_seq, edits_since):
        """Build a join's ack: what was missed after the cursors, and who is here."""
        # The newest seqs are read before the rows: none of the rows returned is newer than they say.
        last_seq, last_edit_seq = chat.last_seq(room), chat.last_edit_seq(room)
        limit = current_app.config["JOIN_CATCHUP_LIMIT"] or None  # 0: every message
        if since is None and since_seq is None:
            messages, more = chat.messages_before(room, None, 50), False
        else:
            if since_seq is not None:
                messages = chat.messages_after_seq(room, since_seq, limit + 1 if limit else None)
            else:
                messages = chat.messages_after(room, since, limit + 1 if limit else None)
            messages, more = messages[:limit], bool(limit) and len(messages) > limit
        status = presence.enter(room.name, user.username, request.sid)
        if status:
            self.announce(room.name, user.username, status)
        ack = {
            "room": room.name,
            "members": room.to_json()["members"],
            "online": presence.online(room.name),
            "messages": messages_json(messages),
            "last_seq": max([last_seq, *(message.seq for message in messages)]),
            "last_edit_seq": last_edit_seq,
            "read_seq": chat.read_seq(room, user),
        }
        if more:  # the client pages on with history since_seq
            ack["more"] = True
        if edits_since is not None:
            edits = chat.edits_after(room, edits_since, limit + 1 if limit else None)
            ack["edits"] = messages_json(edits[:limit])
            ack["last_edit_seq"] = max([last_edit_seq, *(edit["edit_seq"] for edit in ack["edits"])])
            if limit and len(edits) > limit:  # the client pages on with history edits_since
                ack["more_edits"] = True
        return ack

    @payload(room=ROOM_NAME)
    def on_leave(self, room):
        """Leave a room; the user stays a member."""
        if chat_room(room) in rooms():
            leave_room(chat_room(room))
            log.info("left", extra={"room": room})
            self.exit(room, "left")

    @payload(room=ROOM_NAME, text=MESSAGE_TEXT, client_id=CLIENT_ID)
    def on_send(self, room, text, client_id):
        """Store a message, then broadcast it to the room, the sender included."""
        user = self.user
        limit = current_app.config["USER_MESSAGES_PER_10S"]
        throttle.hit("messages", user.id, limit, 10, "messages")
        found = chat.readable_room(room, user)
        message = chat.post_message(found, user, text, client_id).to_json()
        log.info("message stored", extra={"room": room, "message_id": message["id"], "seq": message["seq"]})
        self.emit("message", message, room=chat_room(room))
        return {"message": message}

    @payload(room=ROOM_NAME, id=MESSAGE_ID, text=MESSAGE_TEXT)
    def on_edit(self, room, id, text):
        """Replace the text of one's own message, within EDIT_WINDOW_SECONDS; the room gets `edited`."""
        return self.change(room, id, text)

    @payload(room=ROOM_NAME, id=MESSAGE_ID)
    def on_delete(self, room, id):
        """Delete one's own message, within EDIT_WINDOW_SECONDS; the room gets `edited` with deleted: true."""
        return self.change(room, id, None)

    def change(self, room, message_id, text):
        """Edit (or, with text None, delete) a message, then broadcast its new state to the room."""
        user = self.user
        limit = current_app.config["USER_MESSAGES_PER_10S"]
        throttle.hit("messages", user.id, limit, 10, "messages")
        found = chat.readable_room(room, user)
        window = current_app.config["EDIT_WINDOW_SECONDS"]
        message = chat.change_message(found, user, message_id, text, window).to_json()
        what = "message deleted" if text is None else "message edited"
        log.info(what, extra={"room": room, "message_id": message["id"], "seq": message["seq"]})
        self.emit("edited", message, room=chat_room(room))
        return {"message": message}

    @payload(room=ROOM_NAME, seq=MESSAGE_ID)
    def on_read(self, room, seq):
        """Move the user's read marker in a room forward; the user's other connections are told."""
        user = self.user
        read_seq = chat.mark_read(chat.readable_room(room, user), user, seq)
        self.emit("read", {"room": room, "read_seq": read_seq}, room=user_room(user.id), include_self=False)
        return {"read_seq": read_seq}

    @payload(room=ROOM_NAME)
    def on_part(self, room):
        """Stop being a member of a public room and leave it; the user's other connections are told."""
        user = self.user
        chat.remove_member(chat.readable_room(room, user), user)
        log.info("parted", extra={"room": room})
        if chat_room(room) in rooms():
            leave_room(chat_room(room))
            self.exit(room, "left")
        self.emit("parted", {"room": room}, room=user_room(user.id), include_self=False)

    @payload(room=ROOM_NAME, typing=Field(bool))
    def on_typing(self, room, typing):
        """Tell the others in the room that the user is, or stopped, typing."""
        if chat_room(room) not in rooms():
            raise ProtocolError("forbidden", f"join {room} first")
        event = {"room": room, "user": self.user.username, "typing": typing}
        self.emit("typing", event, room=chat_room(room), include_self=False)

    @payload(
        room=ROOM_NAME,
        before=optional(MESSAGE_ID),
        since_seq=optional(MESSAGE_ID),
        edits_since=optional(MESSAGE_ID),
        limit=optional(Field(int, minimum=1)),
    )
    def on_history(self, room, before, since_seq, edits_since, limit):
        """Return up to 100 messages, oldest first: before the id `before`, after the seq `since_seq`, or changed."""
        if sum(cursor is not None for cursor in (before, since_seq, edits_since)) > 1:
            raise ProtocolError("invalid", "give one of before, since_seq and edits_since")
        found = chat.readable_room(room, self.user)
        limit = min(limit or 50, HISTORY_LIMIT)
        last_seq, last_edit_seq = chat.last_seq(found), chat.last_edit_seq(found)
        messages, edits = [], []
        if edits_since is not None:
            edits = messages_json(chat.edits_after(found, edits_since, limit))
        elif since_seq is not None:
            messages = chat.messages_after_seq(found, since_seq, limit)
        else:
            messages = chat.messages_before(found, before, limit)
        ack = {
            "messages": messages_json(messages),
            "last_seq": max([last_seq, *(message.seq for message in messages)]),
            "last_edit_seq": max([last_edit_seq, *(edit["edit_seq"] for edit in edits)]),
        }
        if edits_since is not None:
            ack["edits"] = edits
        return ack

    def on_disconnect(self, reason=None):
        """Mark the user offline in every room this connection had joined."""
        try:
            for joined in rooms():
                if (room := chat_room_name(joined)) is not None:
                    self.exit(room, "offline")
        finally:  # forget the connection even when Redis is away
            self.usernames.pop(request.sid, None)
            super().on_disconnect(reason)

    def exit(self, room, status):
        """Uncount this connection from the room's presence and announce a change."""
        username = self.usernames[request.sid]
        if presence.leave(room, username, request.sid, status):
            self.announce(room, username, status)

    def announce(self, room, username, status):
        """Broadcast a presence change to the room."""
        self.emit("presence", {"room": room, "user": username, "status": status}, room=chat_room(room))
