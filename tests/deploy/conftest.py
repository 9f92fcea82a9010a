"""PostgreSQL for the deploy tests that run two daemons on one database: a fresh schema on the server at
127.0.0.1:5432 (CARBONSHIFT_TEST_PG_URL overrides), dropped afterwards; skipped, with the reason, when
no server answers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("CARBONSHIFT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    try:
        conn = psycopg.connect(
            PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=2, autocommit=True
        )
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]} ({type(exc).__name__}: {exc})")
    schema = f"cs_deploy_{secrets.token_hex(4)}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()
