"""One API server (real Scheduler, uvicorn on loopback) shared by a test module, on SQLite and on
PostgreSQL: starting the scheduler once per database keeps the suite fast; tests that need a clean
slate start their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.helpers import ApiServer, start_server
from tests.pg import pg_schema_url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with contextlib.ExitStack() as stack:
        extra = {}
        if request.param == "postgres":
            extra["db_url"] = stack.enter_context(pg_schema_url("cs_api"))
        server = start_server(tmp_path_factory.mktemp("api"), **extra)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def open_api(tmp_path: Path) -> Iterator[ApiServer]:
    """A server without an API token (open to loopback only), on SQLite, for one test."""
    server = start_server(tmp_path, token=None)
    try:
        yield server
    finally:
        server.stop()
