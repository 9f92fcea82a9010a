"""Reports that fail validation are kept aside, with the reason, and never summed.

`reports.rejected` holds why a report's numbers do not count (a non-finite or negative number,
energy not plausible for the run's duration and hardware); null for a report that counts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reports", sa.Column("rejected", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("rejected")
