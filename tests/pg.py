"""A fresh PostgreSQL schema for a test (or a module of tests), on the server at 127.0.0.1:5432
(override with CARBONSHIFT_TEST_PG_URL); the test is skipped, saying why, when no server answers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("CARBONSHIFT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _connect() -> Any:
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, connect_timeout=2, autocommit=True)


@contextmanager
def pg_schema_url(prefix: str = "cs_test") -> Iterator[str]:
    try:
        conn = _connect()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]} ({type(exc).__name__}: {exc})")
    schema = f"{prefix}_{secrets.token_hex(4)}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()
