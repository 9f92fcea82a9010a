"""runs.launch_error and runs.launch_looks: a launch that ended without a clear answer (a timeout, a
long-running operation's error) may still have started an instance, so the run stays `launching` and
the daemon asks the provider for it on the next ticks, counting its looks, before declaring it lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("launch_error", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("launch_looks", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("launch_looks")
        batch.drop_column("launch_error")
