"""Jobs whose task could not be queued yet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("dispatch_pending", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("dispatch_pending")
