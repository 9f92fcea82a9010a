"""Pytest fixtures that start the local fake APIs. tests/conftest.py imports them, so any test can ask
for them by name.

Each per-API fixture is a started fake on its own loopback server with:
- `.base_url` (what the source's URL setting should be), `.server` (the FakeHttpServer: `.requests`
  recorded, `.fault(...)` to inject a fault, `.route(...)` to add handlers);
- `.settings_overrides()` -> keyword arguments for `Settings(...)`/`load_settings(...)`, and `.env()`
  -> the same as CARBONSHIFT_* environment variables (for CLI tests with monkeypatch.setenv);
- `.now`: the fake's idea of now (None = real time); set it to the clock the code under test uses.

    def test_x(fake_electricitymaps, fake_ukci):
        fake_electricitymaps.now = fake_ukci.now = NOW
        settings = Settings(**fake_electricitymaps.settings_overrides(), **fake_ukci.settings_overrides())

`fake_http` is a bare server for tests that route their own handlers; `dead_url` is a loopback URL
where nothing listens (connection refused).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.carbon_aware_sdk import FakeCarbonAwareSdk
from tests.fakes.electricitymaps import FakeElectricityMaps
from tests.fakes.http_server import FakeHttpServer, closed_port_url
from tests.fakes.ukci import FakeUkci
from tests.fakes.watttime import FakeWattTime


@pytest.fixture
def fake_http() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


@pytest.fixture
def dead_url() -> str:
    return closed_port_url()


@pytest.fixture
def fake_electricitymaps() -> Iterator[FakeElectricityMaps]:
    with FakeHttpServer() as server:
        yield FakeElectricityMaps(server)


@pytest.fixture
def fake_watttime() -> Iterator[FakeWattTime]:
    with FakeHttpServer() as server:
        yield FakeWattTime(server)


@pytest.fixture
def fake_ukci() -> Iterator[FakeUkci]:
    with FakeHttpServer() as server:
        yield FakeUkci(server)


@pytest.fixture
def fake_carbon_aware_sdk() -> Iterator[FakeCarbonAwareSdk]:
    with FakeHttpServer() as server:
        yield FakeCarbonAwareSdk(server)
