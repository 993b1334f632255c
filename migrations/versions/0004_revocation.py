"""Users' session version (log out everywhere) and disabled flag.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"))
        users.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("users") as users:
        users.drop_column("disabled")
        users.drop_column("session_version")
