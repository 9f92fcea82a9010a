"""The daemon's ticks at rest read only what may concern them, from indexes.

* `ix_runs_held_start` on runs (state, planned_start) and `ix_runs_held_unlaunched` on runs (state,
  launched_at, release_state), both partial: only the runs that hold a handle (`CAST(handle AS TEXT)
  <> 'null'`: the ORM writes a handle set to None as a JSON null, which is no handle). Each tick looks
  for waiting runs holding a job queued ahead, and for runs that ended without a launch still holding
  one (to release it); with thousands of runs waiting, none of them queued, or thousands finished,
  each look was a read of every such run.
* `ix_jobs_recurring_status` on jobs (recurring, status): each tick's look for the active schedules
  reads those alone, not every active job.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None

HOLDS_HANDLE_SQL = "CAST(handle AS TEXT) <> 'null'"  # as models.HOLDS_HANDLE_SQL says it at 0011


def upgrade() -> None:
    where = sa.text(HOLDS_HANDLE_SQL)
    for name, columns in (
        ("ix_runs_held_start", ["state", "planned_start"]),
        ("ix_runs_held_unlaunched", ["state", "launched_at", "release_state"]),
    ):
        op.create_index(name, "runs", columns, sqlite_where=where, postgresql_where=where)
    op.create_index("ix_jobs_recurring_status", "jobs", ["recurring", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_recurring_status", table_name="jobs")
    op.drop_index("ix_runs_held_unlaunched", table_name="runs")
    op.drop_index("ix_runs_held_start", table_name="runs")
