"""Building the live sources from settings: each on only when configured, in priority order, all
following the IntensitySource protocol and answering through the fakes."""

from __future__ import annotations

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import IntensitySource
from carbonshift.intensity.sources.live import build_live_sources
from carbonshift.intensity.types import GridZone, Signal
from tests.fakes.carbon_aware_sdk import FakeCarbonAwareSdk
from tests.fakes.electricitymaps import FakeElectricityMaps
from tests.fakes.ukci import FakeUkci
from tests.fakes.watttime import FakeWattTime
from tests.intensity.live_support import NOW, around


def test_only_the_gb_api_without_configuration() -> None:
    assert list(build_live_sources(Settings())) == ["ukci"]
    assert build_live_sources(Settings(ukci_enabled=False)) == {}


def test_all_configured_in_priority_order(
    fake_electricitymaps: FakeElectricityMaps,
    fake_watttime: FakeWattTime,
    fake_ukci: FakeUkci,
    fake_carbon_aware_sdk: FakeCarbonAwareSdk,
) -> None:
    fakes = (fake_electricitymaps, fake_watttime, fake_ukci, fake_carbon_aware_sdk)
    overrides: dict[str, object] = {}
    for fake in fakes:
        fake.now = NOW
        overrides.update(fake.settings_overrides())
    settings = Settings(
        **overrides,
        intensity={
            "priority": ["watttime", "files", "carbon_aware_sdk", "electricitymaps", "ukci"],
            "source_budget_s": 3,
        },
    )
    sources = build_live_sources(settings)
    assert list(sources) == ["watttime", "carbon_aware_sdk", "electricitymaps", "ukci"]
    zone = GridZone("GB", watttime_region="CAISO_NORTH", cloud_region="eastus")
    for name, src in sources.items():
        assert isinstance(src, IntensitySource) and src.name == name
        signal = Signal.MARGINAL if name in ("watttime", "carbon_aware_sdk") else Signal.AVERAGE
        if name == "electricitymaps":
            fake_electricitymaps.zones.add("GB")
        assert src.supports(zone, signal)
        assert src.fetch(zone, around(before_h=1, after_h=1), signal, NOW).is_complete, name
