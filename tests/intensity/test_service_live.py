"""The merging service end to end: settings -> registry -> real HTTP sources -> local fake APIs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan
from carbonshift.runtime import build_service

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
DE = GridZone("DE", country="DE", static_g_per_kwh=380.0, static_source="test-table", static_year=2023)
SPAN = TimeSpan(NOW - timedelta(hours=6), NOW + timedelta(hours=12))


def settings_for(tmp_path: Path, **overrides: Any):  # type: ignore[no-untyped-def]
    overrides.setdefault("ukci_enabled", False)
    intensity = {"source_budget_s": 2.0, "read_timeout_s": 0.5, "connect_timeout_s": 0.5}
    intensity.update(overrides.pop("intensity", {}))
    return load_settings(
        None, cache={"path": str(tmp_path / "cache.sqlite")}, intensity=intensity, **overrides
    )


def kinds(series) -> set[tuple[str, Kind]]:  # type: ignore[no-untyped-def]
    return {(p.provenance.source, p.provenance.kind) for p in series.points()}


def test_electricitymaps_history_and_forecast_merge(tmp_path: Path, fake_electricitymaps) -> None:  # type: ignore[no-untyped-def]
    fake_electricitymaps.now = NOW
    svc = build_service(settings_for(tmp_path, **fake_electricitymaps.settings_overrides()), FixedClock(NOW))
    series = svc.series(DE, SPAN)
    assert series.is_complete
    past = {p.provenance.kind for p in series.points() if p.end <= NOW}
    future = {p.provenance.kind for p in series.points() if p.start > NOW + timedelta(hours=1)}
    assert past == {Kind.MEASURED} and future == {Kind.FORECAST}
    assert {p.provenance.source for p in series.points()} == {"electricitymaps"}
    # the fake serves 100 + 5 * hour-of-day + 50 * (len(zone) % 3): check one value exactly
    three_am = next(p for p in series.points() if p.start <= NOW - timedelta(hours=3) < p.end)
    assert three_am.g_per_kwh == 100.0 + 5.0 * 9 + 100.0


def test_free_plan_without_forecast_gets_a_modelled_forecast(tmp_path: Path, fake_electricitymaps) -> None:  # type: ignore[no-untyped-def]
    fake_electricitymaps.now = NOW
    fake_electricitymaps.forecast_access = False
    svc = build_service(settings_for(tmp_path, **fake_electricitymaps.settings_overrides()), FixedClock(NOW))
    series = svc.series(DE, SPAN)
    future = [p for p in series.points() if p.start >= NOW + timedelta(hours=1)]
    assert future and {p.provenance.kind for p in future} == {Kind.MODELLED}
    assert future[0].provenance.source == "model:daily-profile(electricitymaps)"
    # the fake's history is a pure daily shape, so the model reproduces it: 18:00 -> 100 + 5 * 18 + 100
    six_pm = next(p for p in future if p.start <= NOW + timedelta(hours=6) < p.end)
    assert six_pm.g_per_kwh == 290.0


def test_dead_source_costs_little_and_falls_back_visibly(tmp_path: Path, dead_url: str) -> None:
    token = "em-SECRET-do-not-print"
    svc = build_service(
        settings_for(tmp_path, electricitymaps_token=token, electricitymaps_url=dead_url), FixedClock(NOW)
    )
    started = time.monotonic()
    a = svc.series(DE, SPAN)
    b = svc.series(GridZone("FR", static_g_per_kwh=56.0), SPAN)
    assert time.monotonic() - started < 5.0  # one bounded attempt, then the source is skipped
    assert kinds(a) == {("static:test-table", Kind.STATIC)} and b.is_complete
    note = next(a.points()).provenance.note
    assert "electricitymaps" in note and "live data unavailable" in note
    assert all(token not in n for n in svc.notices) and token not in note


def test_rejected_token_is_reported_without_echoing_it(tmp_path: Path, fake_electricitymaps) -> None:  # type: ignore[no-untyped-def]
    fake_electricitymaps.now = NOW
    overrides = fake_electricitymaps.settings_overrides() | {"electricitymaps_token": "wrong-SECRET-token"}
    svc = build_service(settings_for(tmp_path, **overrides), FixedClock(NOW))
    series = svc.series(DE, SPAN)
    note = next(series.points()).provenance.note
    assert "credentials rejected" in note and "CARBONSHIFT_ELECTRICITYMAPS_TOKEN" in note
    assert "wrong-SECRET-token" not in note + " ".join(svc.notices)


def test_second_command_is_served_from_the_cache(tmp_path: Path, fake_electricitymaps) -> None:  # type: ignore[no-untyped-def]
    fake_electricitymaps.now = NOW
    settings = settings_for(tmp_path, **fake_electricitymaps.settings_overrides())
    first = build_service(settings, FixedClock(NOW)).series(DE, SPAN)
    calls = len(fake_electricitymaps.server.requests)
    second = build_service(settings, FixedClock(NOW + timedelta(minutes=5))).series(DE, SPAN)
    assert len(fake_electricitymaps.server.requests) == calls
    assert list(first.values) == list(second.values)


def test_priority_orders_sources_and_marginal_comes_from_watttime(
    tmp_path: Path,
    fake_electricitymaps,  # type: ignore[no-untyped-def]
    fake_watttime,
) -> None:
    fake_electricitymaps.now = fake_watttime.now = NOW
    overrides = fake_electricitymaps.settings_overrides() | fake_watttime.settings_overrides()
    zone = GridZone("US-CAL-CISO", country="US", watttime_region="CAISO_NORTH", static_g_per_kwh=300.0)
    wt_first = settings_for(tmp_path, **overrides, intensity={"priority": ["watttime", "electricitymaps"]})
    avg = build_service(wt_first, FixedClock(NOW)).series(zone, SPAN, Signal.AVERAGE)
    assert {p.provenance.source for p in avg.points() if p.end <= NOW} == {"watttime"}
    marginal = build_service(settings_for(tmp_path, **overrides), FixedClock(NOW)).series(
        zone, SPAN, Signal.MARGINAL
    )
    assert marginal.signal is Signal.MARGINAL
    assert {p.provenance.source for p in marginal.points()} <= {"watttime", "model:daily-profile(watttime)"}
