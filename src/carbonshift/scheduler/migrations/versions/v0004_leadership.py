"""Leadership epochs and per-run report tokens that survive a takeover.

* `leadership`: one row; its `epoch` goes up by one each time a daemon becomes active. A daemon's
  writes from its ticks are fenced with the epoch it holds, so a leader that lost its lock while inside
  a provider call cannot write over what the new leader decided.
* `runs.launch_epoch`: the epoch of the daemon that last moved the run to `launching`.
* `daemon_keys`: a random key, made once per database, from which each run's report token is derived,
  so a relaunch by any daemon sends the same token (and the same bootstrap) with the same idempotency
  key, and a provider that deduplicates by that key sees one request, not two that disagree.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "daemon_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.add_column("runs", sa.Column("launch_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("launch_epoch")
    op.drop_table("daemon_keys")
    op.drop_table("leadership")
