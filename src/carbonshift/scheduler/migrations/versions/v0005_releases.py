"""Instance releases that are kept until the provider confirms the instance is gone.

A finished cloud run's instance is released (terminated or deleted) by the daemon; one call may fail
(a throttled API, a network blip, a daemon that stops in between), and an instance left behind bills
on. So the release is a record on the run: `release_state` pending until the provider says the
instance is gone, retried with backoff (`release_attempts`, `release_next_at`) by whichever daemon
is active, the last error kept, and `released_at` when done.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("release_state", sa.String(16), nullable=True))
    op.add_column("runs", sa.Column("release_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("release_next_at", sa.DateTime(), nullable=True))
    op.add_column("runs", sa.Column("release_error", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("released_at", sa.DateTime(), nullable=True))
    op.create_index("ix_runs_release", "runs", ["release_state", "release_next_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_release", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for name in ("released_at", "release_error", "release_next_at", "release_attempts", "release_state"):
            batch.drop_column(name)
