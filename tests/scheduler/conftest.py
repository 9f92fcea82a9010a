"""PostgreSQL for the scheduler tests: a fresh schema per test on the server at 127.0.0.1:5432
(override with CARBONSHIFT_TEST_PG_URL), dropped afterwards; skipped, with the reason, when no server
answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import pg_schema_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema_url("cs_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """Each test using it runs on SQLite (the default database) and on PostgreSQL."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
