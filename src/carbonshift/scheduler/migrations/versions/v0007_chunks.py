"""Interruptible jobs executed in chunks: one run per planned chunk.

An interruptible job's plan may split it into chunks; each chunk is a run of the job. `chunk_index`
(1-based) and `chunk_count` say which chunk of how many (null for an unsplit run), and `stop_at` is
the chunk's planned end: the daemon stops the run then (SIGTERM, grace, SIGKILL locally; terminate in
the cloud) and records it as paused, not failed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("chunk_index", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("chunk_count", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("stop_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in ("stop_at", "chunk_count", "chunk_index"):
            batch.drop_column(name)
