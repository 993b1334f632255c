"""Per-room message sequence numbers and per-job versions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("rooms") as rooms:
        rooms.add_column(sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("messages", sa.Column("seq", sa.Integer(), nullable=True))
    # Number existing messages 1, 2, 3... per room in id order (the order they were stored).
    op.execute(
        "UPDATE messages SET seq = (SELECT COUNT(*) FROM messages AS earlier"
        " WHERE earlier.room_id = messages.room_id AND earlier.id <= messages.id)"
    )
    op.execute("UPDATE rooms SET last_seq = COALESCE((SELECT MAX(seq) FROM messages WHERE room_id = rooms.id), 0)")
    with op.batch_alter_table("messages") as messages:
        messages.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        messages.create_unique_constraint("uq_messages_room_id_seq", ["room_id", "seq"])


def downgrade():
    with op.batch_alter_table("messages") as messages:
        messages.drop_constraint("uq_messages_room_id_seq", type_="unique")
        messages.drop_column("seq")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("version")
    with op.batch_alter_table("rooms") as rooms:
        rooms.drop_column("last_seq")
