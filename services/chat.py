"""Rooms and messages: who may read what, and storing messages in order."""

from datetime import timedelta

from sqlalchemy import case, func, update
from sqlalchemy.exc import IntegrityError

from core.errors import ProtocolError
from core.validation import ROOM_NAME_PATTERN
from extensions import db
from models import GENERAL_ROOM, Message, Room, RoomMember, User, utcnow
from services.channels import CHAT, emit, user_room


def get_room(name):
    """Return the room called name, or raise not_found."""
    # A name no room can have (from a URL) is not sent to the database.
    room = db.session.scalar(db.select(Room).filter_by(name=name)) if ROOM_NAME_PATTERN.fullmatch(name) else None
    if room is None:
        raise ProtocolError("not_found", f"no room called {name}")
    return room


def is_member(room, user):
    """Tell whether the user is a member of the room."""
    query = db.select(RoomMember).filter_by(room_id=room.id, user_id=user.id)
    return db.session.scalar(query) is not None


def readable_room(name, user):
    """Return the room if the user may read it; raise not_found otherwise, whether it exists or not."""
    room = get_room(name)
    if room.private and not is_member(room, user):
        # Answered as a missing room is: a private room's name is not to be probed.
        raise ProtocolError("not_found", f"no room called {name}")
    return room


def visible_rooms(user):
    """Return the public rooms and the private rooms the user belongs to, by name."""
    mine = db.select(RoomMember.room_id).filter_by(user_id=user.id)
    query = db.select(Room).where(~Room.private | Room.id.in_(mine)).order_by(Room.name)
    return db.session.scalars(query).all()


def create_room(name, private, member_names, creator):
    """Create a room with the creator and the named users as members."""
    names = set(member_names) | {creator.username}
    members = db.session.scalars(db.select(User).where(User.username.in_(names))).all()
    missing = names - {member.username for member in members}
    if missing:
        raise ProtocolError("invalid", f"no such user: {sorted(missing)[0]}")
    room = Room(name=name, private=private, members=list(members))
    db.session.add(room)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ProtocolError("conflict", f"a room called {name} exists") from None
    return room


def room_summaries(user):
    """Return the rooms the user may see as the protocol shows them, each with the user's member, read and unread."""
    rooms = visible_rooms(user)
    memberships = db.select(RoomMember.room_id, RoomMember.read_seq).filter_by(user_id=user.id)
    read_seqs = dict(db.session.execute(memberships).all())
    # Messages after the read marker, by others and not deleted, counted per room in one query.
    unread = db.select(Message.room_id, func.count()).join(
        RoomMember, (RoomMember.room_id == Message.room_id) & (RoomMember.user_id == user.id)
    )
    unread = unread.where(Message.seq > RoomMember.read_seq, Message.author_id != user.id, ~Message.deleted)
    counts = dict(db.session.execute(unread.group_by(Message.room_id)).all())
    return [
        room.to_json()
        | {
            "member": room.id in read_seqs,
            "last_seq": room.last_seq,
            "read_seq": read_seqs.get(room.id, 0),
            "unread": counts.get(room.id, 0),
        }
        for room in rooms
    ]


def announce_room(room):
    """Tell those who may see a new room about it: every /chat connection, or a private room's members'."""
    for audience in [user_room(member.id) for member in room.members] if room.private else [None]:
        emit("room", room.to_json(), audience, CHAT)


def add_member(room, user):
    """Record that the user joined a public room (what came before counts as read); tell whether they were not yet."""
    if is_member(room, user):
        return False
    db.session.add(RoomMember(room_id=room.id, user_id=user.id, read_seq=room.last_seq))
    try:
        db.session.commit()
    except IntegrityError:  # another tab of the same user got there first
        db.session.rollback()
        return False
    return True


def remove_member(room, user):
    """Take the user out of a public room's members (general and private rooms keep theirs)."""
    if room.private or room.name == GENERAL_ROOM:
        kind = "private: its members are chosen" if room.private else "everyone's"
        raise ProtocolError("forbidden", f"{room.name} cannot be left: it is {kind}")
    db.session.execute(db.delete(RoomMember).filter_by(room_id=room.id, user_id=user.id))
    db.session.commit()


def read_seq(room, user):
    """Return the user's read marker in the room (0 when none)."""
    return db.session.scalar(db.select(RoomMember.read_seq).filter_by(room_id=room.id, user_id=user.id)) or 0


def mark_read(room, user, seq):
    """Move the user's read marker up to seq (never down, never past the newest message); return it."""
    seq = min(seq, last_seq(room))
    forward = case((RoomMember.read_seq < seq, seq), else_=RoomMember.read_seq)
    moved = db.session.execute(update(RoomMember).filter_by(room_id=room.id, user_id=user.id).values(read_seq=forward))
    db.session.commit()
    if moved.rowcount == 0:
        raise ProtocolError("forbidden", f"join {room.name} first")
    return read_seq(room, user)


def post_message(room, author, text, client_id=None):
    """Store a message with the room's next seq and return it; a retried client_id returns the stored one."""
    # Taking the next seq writes the room row, which locks it until commit (a row
    # lock on PostgreSQL, the database on SQLite): a room's messages are stored
    # one at a time, so seqs have no holes and ids grow in seq order.
    take_seq = update(Room).where(Room.id == room.id).values(last_seq=Room.last_seq + 1).returning(Room.last_seq)
    seq = db.session.execute(take_seq).scalar_one()
    if client_id is not None:
        existing = db.session.scalar(_sent_with(room, author, client_id))
        if existing is not None:
            db.session.rollback()  # gives the seq back
            return existing
    message = Message(room=room, author=author, text=text, client_id=client_id, seq=seq)
    db.session.add(message)
    try:
        db.session.commit()
    except IntegrityError:  # the same retry raced us and won: return its message
        db.session.rollback()
        return db.session.scalars(_sent_with(room, author, client_id)).one()
    return message


def change_message(room, author, message_id, text, window_seconds):
    """Edit a message to text, or delete it when text is None; return it with the room's next edit_seq."""
    # Taking the next edit_seq locks the room row until commit, as post_message does for seq.
    take = update(Room).where(Room.id == room.id).values(last_edit_seq=Room.last_edit_seq + 1)
    edit_seq = db.session.execute(take.returning(Room.last_edit_seq)).scalar_one()
    message = db.session.scalar(db.select(Message).filter_by(room_id=room.id, id=message_id, deleted=False))
    try:
        if message is None:
            raise ProtocolError("not_found", f"no message {message_id} in {room.name}")
        if message.author_id != author.id:
            raise ProtocolError("forbidden", "only its author may change a message")
        if window_seconds and utcnow() - message.created_at > timedelta(seconds=window_seconds):
            raise ProtocolError("forbidden", f"a message can be changed for {window_seconds} s after it is sent")
    except ProtocolError:
        db.session.rollback()  # gives the edit_seq back
        raise
    message.edit_seq, message.edited_at = edit_seq, utcnow()
    if text is None:
        message.text, message.deleted = "", True
    else:
        message.text = text
    db.session.commit()
    return message


def last_edit_seq(room):
    """Return the edit_seq of the room's newest edit or deletion (0 when none)."""
    return db.session.scalar(db.select(Room.last_edit_seq).filter_by(id=room.id))


def edits_after(room, edits_since, limit):
    """Return up to limit messages changed after the edit_seq edits_since, in edit_seq order (each as it is now)."""
    query = db.select(Message).where(Message.room_id == room.id, Message.edit_seq > edits_since)
    return db.session.scalars(query.order_by(Message.edit_seq).limit(limit)).all()


def _sent_with(room, author, client_id):
    return db.select(Message).filter_by(room_id=room.id, author_id=author.id, client_id=client_id)


def last_seq(room):
    """Return the seq of the room's newest stored message (0 when it has none)."""
    return db.session.scalar(db.select(Room.last_seq).filter_by(id=room.id))


def messages_after(room, since, limit):
    """Return up to limit messages with id > since, oldest first."""
    query = db.select(Message).where(Message.room_id == room.id, Message.id > since).order_by(Message.id).limit(limit)
    return db.session.scalars(query).all()


def messages_after_seq(room, since_seq, limit):
    """Return up to limit messages with seq > since_seq, oldest first."""
    query = db.select(Message).where(Message.room_id == room.id, Message.seq > since_seq)
    return db.session.scalars(query.order_by(Message.seq).limit(limit)).all()


def messages_before(room, before, limit):
    """Return the last limit messages with id < before (all when before is None), oldest first."""
    query = db.select(Message).where(Message.room_id == room.id)
    if before is not None:
        query = query.where(Message.id < before)
    newest_first = db.session.scalars(query.order_by(Message.id.desc()).limit(limit)).all()
    return newest_first[::-1]
