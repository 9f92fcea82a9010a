"""The scheduler's database: engine set-up for SQLite and PostgreSQL, and schema migrations.

SQLite (the embedded default) runs in WAL mode, and every transaction that may write starts with
BEGIN IMMEDIATE: a deferred transaction that reads and then writes can fail at once with "database is
locked" when another connection (the API thread, the timers' ticks, a client process) writes at the
same time; taking the write lock up front makes writers queue behind `busy_timeout` instead. A
connection marked read-only (`READ_ONLY`, see `Store.read`) begins with a plain BEGIN: under WAL it
reads a snapshot and never waits for, or holds up, a writer, so the API's listings do not queue
behind the daemon's ticks.

PostgreSQL URLs (postgresql://, postgres://) are driven by psycopg 3.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from carbonshift.config import Settings
from carbonshift.errors import ConfigError

log = logging.getLogger(__name__)

VERSION_TABLE = "carbonshift_alembic_version"
APSCHEDULER_TABLE = "apscheduler_jobs"  # the job store earlier versions shared; dropped by migration 0008
DB_FILE = "carbonshift.db"
SQLITE_BUSY_MS = 30_000
# the execution option that marks a connection's transactions as reads (see `read_only`)
READ_ONLY = "carbonshift_read"


def default_url(settings: Settings) -> str:
    return f"sqlite:///{settings.resolved_data_dir() / DB_FILE}"


def resolve_url(settings: Settings, url: str | None = None) -> URL:
    """The URL to use: an explicit one, else `db_url` (CARBONSHIFT_DB_URL), else SQLite in the data dir.
    ConfigError names the setting when it cannot be parsed (never echoing it: it may hold a password)."""
    raw = url or settings.db_url or default_url(settings)
    try:
        parsed = make_url(raw)
    except Exception:
        raise ConfigError(
            "db_url", "not a database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB)"
        ) from None
    name = parsed.drivername
    if name in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif not (name.startswith("postgresql") or name.startswith("sqlite")):
        raise ConfigError("db_url", f"unsupported database {name!r}: use sqlite:/// or postgresql://")
    elif parsed.database in (None, "", ":memory:"):
        # the daemon's threads (API, ticks, provider workers) each need a connection to the same data
        raise ConfigError(
            "db_url", "an in-memory SQLite database cannot be shared: give a file, sqlite:///PATH"
        )
    return parsed


def safe_url(url: URL) -> str:
    """For logs and messages: the URL with its password hidden."""
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The database file (None for PostgreSQL)."""
    if not is_sqlite(url) or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).expanduser().resolve()


def create_db_engine(url: URL) -> Engine:
    if is_sqlite(url):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"application_name": "carbonshift", "connect_timeout": 10},
    )


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    if path is None:
        raise ConfigError(
            "db_url", "an in-memory SQLite database cannot be shared: give a file, sqlite:///PATH"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def read_only(engine: Engine) -> Engine:
    """The engine (same pool) whose transactions only read: on SQLite they begin with a plain BEGIN,
    a WAL snapshot that takes no write lock. Writing through it is a mistake: on SQLite such a
    transaction would take the lock only at its first write, and could fail with "database is locked"."""
    return engine.execution_options(**{READ_ONLY: True})


def lock_key(name: str, url: URL, schema: str) -> int:
    """A signed 64-bit advisory-lock key for this database and schema, so daemons of different
    schemas (or test runs) on one PostgreSQL server never wait on each other."""
    digest = hashlib.sha256(f"carbonshift:{name}:{url.database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upgrade(engine: Engine, target: str = "head") -> None:
    """Bring the schema to the latest migration (or `target`, for tests of the upgrade path). Safe to call from several processes at once: on
    PostgreSQL a transaction-level advisory lock serialises them, on SQLite BEGIN IMMEDIATE does."""
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            key = lock_key("migrate", engine.url, str(schema))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, target)
        except CommandError as exc:
            raise ConfigError(
                "db_url",
                f"the database schema is not one this carbonshift knows ({exc}); "
                "was it created by a newer version?",
            ) from None
