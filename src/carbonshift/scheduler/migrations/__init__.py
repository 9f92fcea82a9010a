"""Alembic migrations of the scheduler's tables, run programmatically at start (`db.upgrade`)."""
