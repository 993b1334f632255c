"""Rooms and messages: who may read what, and storing messages in order."""

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core.errors import ProtocolError
from core.validation import ROOM_NAME_PATTERN
from extensions import db
from models import Message, Room, RoomMember, User


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


def add_member(room, user):
    """Record that the user joined a public room (members of private rooms are invited)."""
    if not is_member(room, user):
        db.session.add(RoomMember(room_id=room.id, user_id=user.id))
        try:
            db.session.commit()
        except IntegrityError:  # another tab of the same user got there first
            db.session.rollback()


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
