from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import ApiServer
from tests.dashboard.seed import seeded_server


@pytest.fixture(scope="package")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = seeded_server(tmp_path_factory.mktemp("dashboard"))
    try:
        yield server
    finally:
        server.stop()
