"""The database layer: migrations match the models, URLs are handled (and never leak passwords),
and the schema upgrades on PostgreSQL too."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from carbonshift.errors import ConfigError
from carbonshift.scheduler import db
from carbonshift.scheduler.models import Base
from tests.scheduler.helpers import make_settings

LIST_INDEX = "ix_jobs_created_id"


def _diffs(engine) -> list:  # type: ignore[no-untyped-def, type-arg]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    ignored = {db.VERSION_TABLE, db.APSCHEDULER_TABLE}
    diffs = [d for d in diffs if not (d[0] == "remove_table" and d[1].name in ignored)]
    if engine.dialect.name == "sqlite":
        # SQLite's reflection drops an index column's DESC, so alembic sees the job list's index as
        # removed and added again; `test_the_job_list_index_is_in_the_list_order` checks it instead
        diffs = [d for d in diffs if not (d[0] in ("add_index", "remove_index") and d[1].name == LIST_INDEX)]
    return diffs


def test_the_migrations_build_exactly_the_models_tables(tmp_path: Path) -> None:
    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine)
    db.upgrade(engine)  # idempotent
    assert _diffs(engine) == []
    assert (tmp_path / "data" / "carbonshift.db").exists()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_the_job_list_index_is_in_the_list_order(tmp_path: Path) -> None:
    """SQLite's reflection drops DESC (see `_diffs`), so the index's own DDL is checked here; that a
    page is a range of it: test_job_list.test_a_page_after_a_cursor_is_an_index_range_on_sqlite."""
    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine)
    with engine.connect() as conn:
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (LIST_INDEX,)).scalar()
    assert str(ddl).endswith("(created_at DESC, id)"), ddl
    engine.dispose()


def test_postgres_schema_upgrade(tmp_path: Path, pg_url: str) -> None:
    url = db.resolve_url(make_settings(tmp_path, db_url=pg_url))
    assert url.drivername == "postgresql+psycopg"
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    assert _diffs(engine) == []
    assert {"jobs", "runs", "plans", "run_events", "reports"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_urls(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert db.resolve_url(settings).database == str(tmp_path / "data" / "carbonshift.db")
    pg = db.resolve_url(settings, "postgres://me:s3cret@db.example:5432/cs")
    assert pg.drivername == "postgresql+psycopg" and "s3cret" not in db.safe_url(pg)
    with pytest.raises(ConfigError, match="in-memory"):
        db.resolve_url(settings, "sqlite://")
    with pytest.raises(ConfigError, match="unsupported database"):
        db.resolve_url(settings, "mysql://x@y/z")
    with pytest.raises(ConfigError) as info:
        db.resolve_url(settings, "::not a url s3cret::")
    assert "s3cret" not in str(info.value)


def test_an_existing_database_upgrades_with_its_data(tmp_path: Path) -> None:
    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, name, spec, recurring, status, created_at, updated_at) "
            "VALUES ('job-old', 'old', '{}', 0, 'done', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    assert "stop_reason" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    db.upgrade(engine)
    assert "stop_reason" in {c["name"] for c in inspect(engine).get_columns("runs")}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM jobs").scalar() == "old"
        assert conn.exec_driver_sql(f"SELECT version_num FROM {db.VERSION_TABLE}").scalar() == "0012"
    assert _diffs(engine) == []
    engine.dispose()


def test_the_timer_table_earlier_versions_shared_is_dropped(tmp_path: Path) -> None:
    """Timers live in each daemon's memory now; the job store table two daemons raced on goes."""
    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {db.APSCHEDULER_TABLE} (id VARCHAR(191) PRIMARY KEY)")
    db.upgrade(engine)
    assert db.APSCHEDULER_TABLE not in inspect(engine).get_table_names()
    engine.dispose()
