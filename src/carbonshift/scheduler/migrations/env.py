"""Alembic environment: always given a live connection by `carbonshift.scheduler.db.upgrade` (the
daemon migrates at start, under its migration lock), so there is no offline mode and no URL here."""

from __future__ import annotations

from alembic import context

from carbonshift.scheduler.db import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "carbonshift migrations run from the daemon (Scheduler.start / db.upgrade), not the alembic CLI"
    )
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
