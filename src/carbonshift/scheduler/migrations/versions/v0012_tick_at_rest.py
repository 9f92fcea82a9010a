"""The tick at rest reads no row when nothing happened (issue 13: with 10,000 waiting runs, closing
finished jobs took ~14 ms a tick, the re-plan pass's look ~6 ms, both reading every waiting run).

* `run_ends` (id, job_id): a row for each run that reached a terminal state, written in the same
  transaction as its move (`Store.move`, and `Store.new_run` for a run born missed); the tick closes
  the jobs of the rows it reads (a one-off job with no run left to end) and deletes those rows by id.
  The upgrade writes one row for each active one-off job with no run left to end, so a job whose last
  run ended before the upgrade is still closed at the next tick, as it was before.
* `ix_runs_state_last_planned` on runs (state, last_planned_at), and `ix_runs_chunks_start` on runs
  (state, planned_start), partial (chunk_index IS NOT NULL): the re-plan pass looks for waiting runs
  planned long ago or never, chunks, and runs starting soon, each a range of an index, instead of
  one OR over every waiting run.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None

CHUNK_SQL = "chunk_index IS NOT NULL"  # as models.CHUNK_SQL says it at 0012
TERMINAL_AT_0012 = ("succeeded", "failed", "cancelled", "missed")


def upgrade() -> None:
    op.create_table(
        "run_ends",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_runs_state_last_planned", "runs", ["state", "last_planned_at"])
    where = sa.text(CHUNK_SQL)
    op.create_index(
        "ix_runs_chunks_start", "runs", ["state", "planned_start"], sqlite_where=where, postgresql_where=where
    )
    jobs = sa.table("jobs", sa.column("id"), sa.column("recurring", sa.Boolean()), sa.column("status"))
    runs = sa.table("runs", sa.column("job_id"), sa.column("state"))
    run_ends = sa.table("run_ends", sa.column("job_id"))
    unfinished = sa.exists().where(runs.c.job_id == jobs.c.id, runs.c.state.not_in(TERMINAL_AT_0012))
    op.execute(
        run_ends.insert().from_select(
            ["job_id"],
            sa.select(jobs.c.id).where(jobs.c.recurring.is_(False), jobs.c.status == "active", ~unfinished),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_runs_chunks_start", table_name="runs")
    op.drop_index("ix_runs_state_last_planned", table_name="runs")
    op.drop_table("run_ends")
