"""Ownership labels and the emissions ledger (issue 11).

* `jobs.organisation`, `jobs.team`, `jobs.project`: the job's labels (from its spec's `labels:`, else
  the config's defaults); `jobs.kind`: `scheduled` (submitted) or `tracked` (a run `carbonshift track
  --server` posted to the ledger).
* the same three labels on `runs`, copied from the job when the run is made, so the ledger groups runs
  without a join;
* the ledger's numbers as columns on `runs`, so totals are SQL sums: `planned_kg_co2e` and
  `baseline_kg_co2e` (from the plan in force, when it is adopted), `energy_kwh` and `kg_co2e` (the
  tracker's report, when it arrives);
* `ix_runs_ledger`, an index on the run's end with every column the ledger reads, so its totals scan
  the index alone (a covering index) rather than the wide rows of `runs`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

LABELS = ("organisation", "team", "project")
NUMBERS = ("energy_kwh", "kg_co2e", "planned_kg_co2e", "baseline_kg_co2e")
LEDGER_INDEX = (
    "ended_at",
    "kg_co2e",
    "organisation",
    "team",
    "project",
    "provider",
    "region",
    "energy_kwh",
    "planned_kg_co2e",
    "baseline_kg_co2e",
)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("kind", sa.String(16), nullable=False, server_default="scheduled"))
    for name in LABELS:
        op.add_column("jobs", sa.Column(name, sa.String(63), nullable=True))
        op.add_column("runs", sa.Column(name, sa.String(63), nullable=True))
    for name in NUMBERS:
        op.add_column("runs", sa.Column(name, sa.Float(), nullable=True))
    op.create_index("ix_runs_ledger", "runs", list(LEDGER_INDEX))
    _backfill()


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _backfill() -> None:
    """Runs stored before this migration: their labels stay unset; their numbers come from the
    plan they followed and their latest report, so they count in the ledger too."""
    bind = op.get_bind()
    runs = sa.table(
        "runs",
        sa.column("id", sa.String),
        sa.column("planned", sa.JSON),
        *(sa.column(n, sa.Float) for n in NUMBERS),
    )
    reports = sa.table(
        "reports", sa.column("id", sa.Integer), sa.column("run_id", sa.String), sa.column("body", sa.JSON)
    )
    values: dict[str, dict[str, float | None]] = {}
    for run_id, planned in bind.execute(
        sa.select(runs.c.id, runs.c.planned).where(runs.c.planned.is_not(None))
    ):
        p = planned if isinstance(planned, dict) else {}
        values[run_id] = {
            "planned_kg_co2e": _number(p.get("kg_co2e")),
            "baseline_kg_co2e": _number(p.get("baseline_kg_co2e")),
        }
    for run_id, body in bind.execute(sa.select(reports.c.run_id, reports.c.body).order_by(reports.c.id)):
        b = body if isinstance(body, dict) else {}
        values.setdefault(run_id, {}).update(
            energy_kwh=_number(b.get("energy_kwh")), kg_co2e=_number(b.get("kg_co2e"))
        )
    for run_id, numbers in values.items():
        bind.execute(sa.update(runs).where(runs.c.id == run_id).values(**numbers))


def downgrade() -> None:
    op.drop_index("ix_runs_ledger", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for name in (*NUMBERS, *LABELS):
            batch.drop_column(name)
    with op.batch_alter_table("jobs") as batch:
        for name in (*LABELS, "kind"):
            batch.drop_column(name)
