"""Database models: users, rooms, their members, messages and jobs."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    # Every login session and token carries the version it was made under: raising it ends them all.
    session_version: Mapped[int] = mapped_column(default=1)
    disabled: Mapped[bool] = mapped_column(default=False)
    # May log in to the Socket.IO Admin UI (/admin/); set with `flask users grant-admin NAME`.
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_json(self):
        """Serialize as the API shows a user."""
        return {"id": self.id, "username": self.username}


class Room(db.Model):
    """A chat room; private rooms are readable by their members only."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    private: Mapped[bool] = mapped_column(default=False)
    # The seq of the room's newest message; the next message takes last_seq + 1.
    last_seq: Mapped[int] = mapped_column(default=0)
    # The same for its edits and deletions: the next change of a message takes last_edit_seq + 1.
    last_edit_seq: Mapped[int] = mapped_column(default=0)
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
    # The seq of the newest message the user has read in the room (0: none yet).
    read_seq: Mapped[int] = mapped_column(default=0)


class Message(db.Model):
    """A chat message; seq counts 1, 2, 3... within its room, with no holes, and ids grow with it."""

    __tablename__ = "messages"
    __table_args__ = (
        # A client's retry of the same send (same client_id) stores nothing new.
        UniqueConstraint("room_id", "author_id", "client_id"),
        UniqueConstraint("room_id", "seq", name="uq_messages_room_id_seq"),
        Index("ix_messages_room_id_id", "room_id", "id"),
        Index("ix_messages_room_id_edit_seq", "room_id", "edit_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    seq: Mapped[int]
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The room's edit_seq of the message's latest edit or deletion (0: never changed).
    edit_seq: Mapped[int] = mapped_column(default=0)
    edited_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(default=False)  # its text is then gone
    room: Mapped[Room] = relationship(lazy="joined")
    author: Mapped[User] = relationship(lazy="joined")

    def to_json(self):
        """Serialize as the protocol shows a message."""
        return {
            "id": self.id,
            "seq": self.seq,
            "room": self.room.name,
            "author": self.author.username,
            "text": self.text,
            "created_at": isoformat(self.created_at),
            "client_id": self.client_id,
            "edit_seq": self.edit_seq,
            "edited_at": isoformat(self.edited_at) if self.edited_at else None,
            "deleted": self.deleted,
        }


class Job(db.Model):
    """A background job: its request, where it stands, and how it ended."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_heartbeat_at", "status", "heartbeat_at"),)

    STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
    FINISHED = ("succeeded", "failed", "cancelled")

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"))
    # Each dispatch of the job is an attempt; a task message of an older attempt is stale.
    attempt: Mapped[int] = mapped_column(default=1)
    # Goes up by one at each change that clients are told of (running, progress, retrying, done).
    version: Mapped[int] = mapped_column(default=1)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Its task could not be queued (the broker was away); the sweeper queues it when it can.
    dispatch_pending: Mapped[bool] = mapped_column(default=False)
    # Written by the running task every few seconds; a stale one means its worker vanished.
    heartbeat_at: Mapped[datetime | None]
    # When its current attempt was queued; how long the attempt that ran waited, and ran (for /metrics).
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    queue_seconds: Mapped[float | None]
    run_seconds: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    owner: Mapped[User] = relationship(lazy="joined")
    room: Mapped[Room | None] = relationship(lazy="joined")

    @property
    def finished(self):
        """Tell whether the job has ended, whichever way."""
        return self.status in self.FINISHED

    def to_json(self):
        """Serialize as the protocol shows a job (plus its params, an extension)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "version": self.version,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "room": self.room.name if self.room else None,
            "owner": self.owner.username,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }
