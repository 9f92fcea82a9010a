"""PostgreSQL for the deploy tests that run two daemons on one database: a fresh schema on the server at
127.0.0.1:5432 (CARBONSHIFT_TEST_PG_URL overrides), dropped afterwards; skipped, with the reason, when
no server answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import pg_schema_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema_url("cs_deploy") as url:
        yield url
