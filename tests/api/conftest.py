"""One API server (real Scheduler, temporary SQLite, uvicorn on loopback) shared by a test module:
starting the scheduler once keeps the suite fast; tests that need a clean slate start their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import ApiServer, start_server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(tmp_path_factory.mktemp("api"))
    try:
        yield server
    finally:
        server.stop()
