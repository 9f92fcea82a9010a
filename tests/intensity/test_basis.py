"""Every intensity value says its emissions basis (direct: combustion only; lifecycle: plus upstream and
construction), as each source documents it, and keeps it through the cache and the merging service."""

from __future__ import annotations

from pathlib import Path

from carbonshift.catalog import load_catalog
from carbonshift.config.settings import Settings
from carbonshift.intensity.cache import IntensityCache
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.sources.live import build_live_sources
from carbonshift.intensity.sources.static import StaticSource
from carbonshift.intensity.types import Basis, GridZone, IntensitySeries, Signal
from tests.fakes.carbon_aware_sdk import FakeCarbonAwareSdk
from tests.fakes.electricitymaps import FakeElectricityMaps
from tests.fakes.ukci import FakeUkci
from tests.fakes.watttime import FakeWattTime
from tests.intensity.live_support import NOW, around


def _bases(series: IntensitySeries) -> set[Basis | None]:
    return {p.basis for p in series.provenances}


def _settings(*fakes: object, **extra: object) -> Settings:
    overrides: dict[str, object] = {}
    for fake in fakes:
        fake.now = NOW  # type: ignore[attr-defined]
        overrides.update(fake.settings_overrides())  # type: ignore[attr-defined]
    return Settings(**{**overrides, **extra}, intensity={"source_budget_s": 3})


def test_each_live_source_states_its_documented_basis(
    fake_electricitymaps: FakeElectricityMaps,
    fake_watttime: FakeWattTime,
    fake_ukci: FakeUkci,
    fake_carbon_aware_sdk: FakeCarbonAwareSdk,
) -> None:
    sources = build_live_sources(
        _settings(fake_electricitymaps, fake_watttime, fake_ukci, fake_carbon_aware_sdk)
    )
    zone = GridZone("GB", watttime_region="CAISO_NORTH", cloud_region="eastus")
    fake_electricitymaps.zones.add("GB")
    span = around(before_h=1, after_h=1)
    expected = {
        ("electricitymaps", Signal.AVERAGE): Basis.LIFECYCLE,  # Electricity Maps' default factors
        ("watttime", Signal.MARGINAL): Basis.DIRECT,  # MOER: combustion CO2 of the marginal plants
        ("ukci", Signal.AVERAGE): Basis.DIRECT,  # "CO2 emissions related to electricity generation only"
        ("carbon_aware_sdk", Signal.MARGINAL): Basis.DIRECT,  # WattTime-backed by default
    }
    for (name, signal), basis in expected.items():
        series = sources[name].fetch(zone, span, signal, NOW)
        assert _bases(series) == {basis}, name
        assert all(p.to_dict()["basis"] == basis.value for p in series.points()), name


def test_electricity_maps_entries_saying_direct_are_direct(fake_electricitymaps: FakeElectricityMaps) -> None:
    fake_electricitymaps.emission_factor_type = "direct"  # an account set to direct factors
    source = build_live_sources(_settings(fake_electricitymaps, ukci_enabled=False))["electricitymaps"]
    series = source.fetch(GridZone("DE"), around(before_h=2, after_h=2), Signal.AVERAGE, NOW)
    assert _bases(series) == {Basis.DIRECT}


def test_carbon_aware_sdk_basis_follows_its_signal_or_the_setting(
    fake_carbon_aware_sdk: FakeCarbonAwareSdk,
) -> None:
    zone = GridZone("US-CAL-CISO", cloud_region="westus")
    for extra, basis in (
        ({"carbon_aware_sdk_signal": "average"}, Basis.LIFECYCLE),
        ({"carbon_aware_sdk_signal": "marginal", "carbon_aware_sdk_basis": "lifecycle"}, Basis.LIFECYCLE),
    ):
        source = build_live_sources(_settings(fake_carbon_aware_sdk, ukci_enabled=False, **extra))[
            "carbon_aware_sdk"
        ]
        signal = Signal(str(extra["carbon_aware_sdk_signal"]))
        assert source.basis is basis  # type: ignore[attr-defined]
        if signal is Signal.MARGINAL:
            assert _bases(source.fetch(zone, around(before_h=1, after_h=1), signal, NOW)) == {basis}


def test_user_files_take_the_configured_basis(tmp_path: Path) -> None:
    path = tmp_path / "es.csv"
    path.write_text("timestamp,g_per_kwh\n2026-03-01T11:00Z,100\n2026-03-01T12:00Z,200\n")
    span = around(before_h=1, after_h=0.5)
    assert _bases(FileSource({"ES": path}).fetch(GridZone("ES"), span, Signal.AVERAGE, NOW)) == {
        Basis.LIFECYCLE
    }
    direct = FileSource({"ES": path}, basis=Basis.DIRECT)
    assert _bases(direct.fetch(GridZone("ES"), span, Signal.AVERAGE, NOW)) == {Basis.DIRECT}
    assert Settings(intensity={"files_basis": "direct"}).intensity.files_basis is Basis.DIRECT


def test_static_values_carry_their_zones_basis() -> None:
    catalog = load_catalog()
    for key, basis in (("aws:ca-central-1", Basis.DIRECT), ("aws:eu-central-1", Basis.LIFECYCLE)):
        zone = catalog.resolve(key).grid_zone()
        series = StaticSource().fetch(zone, around(after_h=3), Signal.AVERAGE, NOW)
        (prov,) = series.provenances
        assert prov.basis is basis and zone.static_basis == basis.value


def test_the_cache_keeps_the_basis(tmp_path: Path, fake_electricitymaps: FakeElectricityMaps) -> None:
    source = build_live_sources(_settings(fake_electricitymaps, ukci_enabled=False))["electricitymaps"]
    span = around(before_h=3)
    series = source.fetch(GridZone("DE"), span, Signal.AVERAGE, NOW)
    cache = IntensityCache(tmp_path / "cache.sqlite")
    cache.store("electricitymaps", "DE", series, span, NOW)
    found = cache.lookup("electricitymaps", "DE", "DE", Signal.AVERAGE, span, NOW)
    assert found is not None and _bases(found.series) == {Basis.LIFECYCLE}


def test_a_cache_from_before_bases_is_started_afresh(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the previous schema: points without a basis column
        conn.executescript(
            "CREATE TABLE points (source TEXT NOT NULL, zone TEXT NOT NULL, signal TEXT NOT NULL,"
            " start_s INTEGER NOT NULL, end_s INTEGER NOT NULL, g_per_kwh REAL NOT NULL, kind TEXT NOT NULL,"
            " note TEXT NOT NULL DEFAULT '', provenance_source TEXT NOT NULL, fetched_at_s INTEGER NOT NULL,"
            " PRIMARY KEY (source, zone, signal, start_s));"
            "INSERT INTO points VALUES ('x','DE','average',0,3600,100,'measured','','x',0);"
        )
    IntensityCache(path)
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(points)")}
        assert "basis" in columns
        assert conn.execute("SELECT count(*) FROM points").fetchone() == (0,)
