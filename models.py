"""Database models: users, rooms, their members and messages."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import db

BOT_USERNAME = "bot"
GENERAL_ROOM = "general"


def utcnow():
    """Return the current UTC time without tzinfo, as the columns store it."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(moment):
    """Format a stored UTC time as ISO 8601 with a Z suffix."""
    return moment.isoformat(timespec="milliseconds") + "Z"


class User(UserMixin, db.Model):
    """A person (or the bot) who can log in and talk."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def set_password(self, password):
        """Store a salted hash of the password, never the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        """Tell whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def to_json(self):
        """Serialize as the API shows a user."""
        return {"id": self.id, "username": self.username}


class Room(db.Model):
    """A chat room; private rooms are readable by their members only."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    private: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    members: Mapped[list[User]] = relationship(secondary="room_members", order_by="User.username", lazy="selectin")

    def to_json(self):
        """Serialize as the protocol shows a room."""
        return {
            "name": self.name,
            "private": self.private,
            "members": [member.username for member in self.members],
        }


class RoomMember(db.Model):
    """A user's membership of a room (invited to a private one, or joined a public one)."""

    __tablename__ = "room_members"

    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Message(db.Model):
    """A chat message; ids grow strictly within a room."""

    __tablename__ = "messages"
    __table_args__ = (
        # A client's retry of the same send (same client_id) stores nothing new.
        UniqueConstraint("room_id", "author_id", "client_id"),
        Index("ix_messages_room_id_id", "room_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    room: Mapped[Room] = relationship(lazy="joined")
    author: Mapped[User] = relationship(lazy="joined")

    def to_json(self):
        """Serialize as the protocol shows a message."""
        return {
            "id": self.id,
            "room": self.room.name,
            "author": self.author.username,
            "text": self.text,
            "created_at": isoformat(self.created_at),
            "client_id": self.client_id,
        }
