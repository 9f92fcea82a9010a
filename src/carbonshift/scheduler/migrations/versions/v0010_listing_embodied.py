"""The job list pages by index, and runs carry the embodied part of their footprint.

* `ix_jobs_created_id` on jobs (created_at DESC, id): the job list's order (newest first, then id),
  so a page of `GET /api/v1/jobs?limit=N&cursor=C` is an index range, not a sort of every job.
* `runs.embodied_kg_co2e`: the hardware's share of its manufacture and disposal (SCI's M), from the
  run's tracker report when it arrives, summed by the ledger beside the operational `kg_co2e`. Runs
  stored before take it from their latest counted report, when that report carried it.
* `ix_runs_ledger` gains that column, so the ledger's totals still read the index alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

from carbonshift.scheduler.migrations.versions.v0006_ledger import LEDGER_INDEX

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

LEDGER_INDEX_0006 = list(LEDGER_INDEX)  # the ledger's index as migration 0006 made it


def upgrade() -> None:
    op.create_index("ix_jobs_created_id", "jobs", [sa.text("created_at DESC"), "id"])
    op.add_column("runs", sa.Column("embodied_kg_co2e", sa.Float(), nullable=True))
    op.drop_index("ix_runs_ledger", table_name="runs")
    op.create_index("ix_runs_ledger", "runs", [*LEDGER_INDEX_0006, "embodied_kg_co2e"])
    _backfill()


def _embodied(body: object) -> float | None:
    value = body.get("embodied_kg_co2e") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _backfill() -> None:
    bind = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.String), sa.column("embodied_kg_co2e", sa.Float))
    reports = sa.table(
        "reports",
        sa.column("id", sa.Integer),
        sa.column("run_id", sa.String),
        sa.column("body", sa.JSON),
        sa.column("rejected", sa.Text),
    )
    latest: dict[str, float | None] = {}
    counted = sa.select(reports.c.run_id, reports.c.body).where(reports.c.rejected.is_(None))
    for run_id, body in bind.execute(counted.order_by(reports.c.id)):
        latest[run_id] = _embodied(body)  # the latest counted report wins, as in the run's view
    for run_id, kg in latest.items():
        if kg is not None:
            bind.execute(sa.update(runs).where(runs.c.id == run_id).values(embodied_kg_co2e=kg))


def downgrade() -> None:
    op.drop_index("ix_runs_ledger", table_name="runs")
    op.create_index("ix_runs_ledger", "runs", LEDGER_INDEX_0006)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("embodied_kg_co2e")
    op.drop_index("ix_jobs_created_id", table_name="jobs")
