"""PostgreSQL for the scheduler tests: a fresh schema per test on the server at 127.0.0.1:5432
(override with CARBONSHIFT_TEST_PG_URL), dropped afterwards; skipped, with the reason, when no server
answers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("CARBONSHIFT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _connect():  # type: ignore[no-untyped-def]
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, connect_timeout=2, autocommit=True)


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        conn = _connect()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]} ({type(exc).__name__}: {exc})")
    schema = f"cs_test_{secrets.token_hex(4)}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """Each test using it runs on SQLite (the default database) and on PostgreSQL."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
