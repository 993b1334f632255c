"""GET/POST /api/rooms and GET /api/rooms/<name>/messages."""

from flask import current_app, request

from core.errors import ProtocolError
from core.validation import ROOM_NAME, USERNAME, Field, optional
from resources.api import api, api_user, json_body
from services import chat, throttle

NEW_ROOM = {
    "name": ROOM_NAME,
    "private": optional(Field(bool)),
    "members": optional(Field(list, items=USERNAME, max_items=1000)),
}
MAX_PAGE = 1000


@api.get("/rooms")
def list_rooms():
    """List the rooms the caller may see, with the caller's membership, read marker and unread count."""
    return chat.room_summaries(api_user())


@api.post("/rooms")
def create_room():
    """Create a room; the caller is always a member."""
    user = api_user()
    data = json_body(NEW_ROOM)
    throttle.hit("rooms", user.id, current_app.config["ROOMS_PER_USER_PER_HOUR"], 3600, "rooms created")
    room = chat.create_room(data["name"], bool(data["private"]), data["members"] or [], user)
    chat.announce_room(room)
    return room.to_json(), 201


@api.get("/rooms/<name>/messages")
def list_messages(name):
    """Page through a room: after the id `since` or the seq `since_seq` oldest first, or its latest `limit`."""
    user = api_user()
    since = query_int("since", minimum=0)
    since_seq = query_int("since_seq", minimum=0)
    if since is not None and since_seq is not None:
        raise ProtocolError("invalid", "give since or since_seq, not both")
    limit = query_int("limit", minimum=1, maximum=MAX_PAGE) or 100
    room = chat.readable_room(name, user)
    if since_seq is not None:
        messages = chat.messages_after_seq(room, since_seq, limit)
    elif since is not None:
        messages = chat.messages_after(room, since, limit)
    else:
        messages = chat.messages_before(room, None, limit)
    return [message.to_json() for message in messages]


def query_int(name, minimum, maximum=None):
    """Read an optional integer query parameter within bounds."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > 16
        or int(raw) < minimum
        or (maximum is not None and int(raw) > maximum)
    ):
        bounds = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ProtocolError("invalid", f"{name} must be an integer, {bounds}")
    return int(raw)
