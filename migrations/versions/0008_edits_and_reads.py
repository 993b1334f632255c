"""Edits, deletions and read markers: messages' edit_seq, edited_at and deleted; rooms' last_edit_seq; members' read_seq.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("rooms") as rooms:
        rooms.add_column(sa.Column("last_edit_seq", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("edit_seq", sa.Integer(), nullable=False, server_default="0"))
        messages.add_column(sa.Column("edited_at", sa.DateTime(), nullable=True))
        messages.add_column(sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()))
        messages.create_index("ix_messages_room_id_edit_seq", ["room_id", "edit_seq"])
    with op.batch_alter_table("room_members") as members:
        members.add_column(sa.Column("read_seq", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("room_members") as members:
        members.drop_column("read_seq")
    with op.batch_alter_table("messages") as messages:
        messages.drop_index("ix_messages_room_id_edit_seq")
        messages.drop_column("deleted")
        messages.drop_column("edited_at")
        messages.drop_column("edit_seq")
    with op.batch_alter_table("rooms") as rooms:
        rooms.drop_column("last_edit_seq")
