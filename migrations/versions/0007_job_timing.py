"""Jobs' timing: when the current attempt was queued, how long it waited, how long it ran (for /metrics).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("queued_at", sa.DateTime(), nullable=True))
        jobs.add_column(sa.Column("queue_seconds", sa.Float(), nullable=True))
        jobs.add_column(sa.Column("run_seconds", sa.Float(), nullable=True))
    op.execute("UPDATE jobs SET queued_at = created_at")


def downgrade():
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("run_seconds")
        jobs.drop_column("queue_seconds")
        jobs.drop_column("queued_at")
