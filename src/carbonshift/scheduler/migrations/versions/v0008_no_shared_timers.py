"""Timers are no longer kept in the database: each daemon keeps its own in memory.

Earlier versions ran APScheduler over one SQLAlchemy job store (`apscheduler_jobs`) shared by every
daemon on the database; a standby taking over then raced the old leader on the same job rows (a
`JobLookupError` killed the scheduler thread and the daemon never ticked again). Every timer is
re-derived from the runs at activation, so the table holds nothing worth keeping.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS apscheduler_jobs")


def downgrade() -> None:
    pass  # an older daemon's job store creates its table itself when it starts
