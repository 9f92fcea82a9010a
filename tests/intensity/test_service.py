from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from carbonshift.clock import FixedClock
from carbonshift.errors import NoDataError
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.cache import IntensityCache
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.types import GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import to_epoch_s

from .scripted import ScriptedSource

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
NOW_S = to_epoch_s(NOW)
ZONE = GridZone("DE", country="DE", static_g_per_kwh=380.0, static_source="test-table", static_year=2024)
SPAN = TimeSpan(NOW - timedelta(hours=6), NOW + timedelta(hours=6))


def at(series, when: datetime) -> tuple[float, Kind]:
    """The value and kind in force at `when` (points may span several hours after compaction)."""
    for p in series.points():
        if p.start <= when < p.end:
            return p.g_per_kwh, p.provenance.kind
    raise AssertionError(f"no point at {when}")


def service(*sources, cache=None, clock=None) -> IntensityService:
    return IntensityService(list(sources), cache=cache, clock=clock or FixedClock(NOW))


def test_no_live_source_gives_static_flagged_with_reason() -> None:
    s = service().series(ZONE, SPAN)
    assert s.is_complete
    (point,) = list(s.points())
    assert point.g_per_kwh == 380.0
    assert point.provenance.kind is Kind.STATIC
    assert point.provenance.source == "static:test-table"
    assert "no live source" in point.provenance.note and "2024" in point.provenance.note


def test_measured_history_beats_forecast_and_priority_orders_forecasts() -> None:
    # "first" has priority but only forecasts (for the whole span); "second" has measurements for the past
    first = ScriptedSource("first", lambda t: 100.0)
    second = ScriptedSource("second", lambda t: 200.0)

    class ForecastOnly(ScriptedSource):
        def fetch(self, zone, span, signal, now):  # type: ignore[no-untyped-def]
            s = super().fetch(zone, span, signal, now)
            provs = tuple(Provenance(p.source, p.signal, Kind.FORECAST, p.fetched_at) for p in s.provenances)
            return IntensitySeries(s.zone, s.signal, s.edges_s, s.values, s.prov_index, provs)

    fo = ForecastOnly("first", lambda t: 100.0)
    merged = service(fo, second).series(ZONE, SPAN)
    past = [p for p in merged.points() if p.start < NOW]
    future = [p for p in merged.points() if p.start >= NOW]
    assert {(p.provenance.source, p.provenance.kind) for p in past} == {("second", Kind.MEASURED)}
    assert {(p.provenance.source, p.provenance.kind) for p in future} == {("first", Kind.FORECAST)}
    # with plain sources, the first in priority wins everywhere
    assert {p.provenance.source for p in service(first, second).series(ZONE, SPAN).points()} == {"first"}


def test_partial_coverage_is_filled_by_next_source_then_static() -> None:
    a = ScriptedSource("a", lambda t: 50.0, start_s=NOW_S - 3 * 3600, end_s=NOW_S + 2 * 3600)
    b = ScriptedSource("b", lambda t: 60.0, start_s=NOW_S - 6 * 3600, end_s=NOW_S + 4 * 3600)
    merged = service(a, b).series(ZONE, SPAN)
    spans = [(int((p.start - NOW).total_seconds() // 3600), p.provenance.source) for p in merged.points()]
    # a's measured past and forecast future are separate points; b fills around a, static after b ends
    assert spans == [(-6, "b"), (-3, "a"), (0, "a"), (2, "b"), (4, "static:test-table")]


def test_failed_source_falls_back_visibly_and_is_not_retried() -> None:
    dead = ScriptedSource("em", lambda t: 1.0, error=SourceError("em", "connection refused", transient=True))
    svc = service(dead)
    s1 = svc.series(ZONE, SPAN)
    s2 = svc.series(GridZone("FR", static_g_per_kwh=50.0), SPAN)
    assert len(dead.calls) == 1  # tripped for the rest of the command
    assert all(p.provenance.kind is Kind.STATIC for p in [*s1.points(), *s2.points()])
    assert "em: connection refused" in next(s1.points()).provenance.note
    assert any("em unavailable" in n for n in svc.notices)


def test_unknown_zone_only_skips_that_zone() -> None:
    picky = ScriptedSource(
        "em", lambda t: 10.0, error=SourceError("em", "zone XX unknown", unknown_zone=True)
    )
    svc = service(picky)
    svc.series(GridZone("XX", static_g_per_kwh=1.0), SPAN)
    svc.series(GridZone("XX", static_g_per_kwh=1.0), SPAN)
    picky.error = None
    assert {p.provenance.source for p in svc.series(ZONE, SPAN).points()} == {"em"}
    assert len(picky.calls) == 2


def test_marginal_never_falls_back_to_static_average() -> None:
    with pytest.raises(NoDataError, match=r"no marginal intensity for zone DE.*WattTime"):
        service().series(ZONE, SPAN, Signal.MARGINAL)
    wt = ScriptedSource("watttime", lambda t: 400.0, signal=Signal.MARGINAL)
    s = service(wt).series(ZONE, SPAN, Signal.MARGINAL)
    assert s.signal is Signal.MARGINAL and {p.provenance.source for p in s.points()} == {"watttime"}


def test_modelled_forecast_from_history_when_no_forecast() -> None:
    # history-only source (a free plan): a daily pattern, 100 at night and 300 by day, nothing after now
    def daily(t: int) -> float:
        return 300.0 if 8 <= (t % 86400) // 3600 < 20 else 100.0

    hist = ScriptedSource("em", daily, end_s=NOW_S)
    span = TimeSpan(NOW, NOW + timedelta(hours=24))
    s = service(hist).series(ZONE, span)
    assert s.is_complete
    pts = list(s.points())
    assert {p.provenance.kind for p in pts} == {Kind.MODELLED}
    assert pts[0].provenance.source == "model:daily-profile(em)"
    assert at(s, NOW + timedelta(hours=1)) == (pytest.approx(300.0), Kind.MODELLED)  # 13:00
    assert at(s, NOW + timedelta(hours=10)) == (pytest.approx(100.0), Kind.MODELLED)  # 22:00
    assert "7.0 days" in pts[0].provenance.note


def test_modelled_forecast_from_a_file_that_ends_before_the_span(tmp_path: Path) -> None:
    start = datetime(2026, 2, 1, tzinfo=UTC)
    rows = ["timestamp,g_per_kwh"] + [
        f"{(start + timedelta(hours=h)).isoformat()},{500 if (h % 24) < 6 else 200}" for h in range(24 * 7)
    ]
    path = tmp_path / "es.csv"
    path.write_text("\n".join(rows) + "\n")
    s = service(FileSource({"ES": path})).series(
        GridZone("ES", static_g_per_kwh=150.0), TimeSpan(NOW, NOW + timedelta(days=1))
    )
    assert at(s, NOW + timedelta(hours=15)) == (500.0, Kind.MODELLED)  # 03:00 next day
    assert at(s, NOW) == (200.0, Kind.MODELLED)


def test_cache_serves_repeat_requests_and_stale_data_on_failure(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    cache = IntensityCache(tmp_path / "c.sqlite", forecast_ttl_s=900, history_ttl_s=3600)
    src = ScriptedSource("em", lambda t: 123.0)
    svc = service(src, cache=cache, clock=clock)
    first = svc.series(ZONE, SPAN)
    again = service(src, cache=cache, clock=clock).series(ZONE, SPAN)
    assert len(src.calls) == 1  # second command answered from the cache
    assert np.array_equal(first.values, again.values)

    clock.advance(3600)  # forecast is stale now; the source has died meanwhile
    src.error = SourceError("em", "HTTP 503", transient=True)
    svc2 = service(src, cache=cache, clock=clock)
    stale = svc2.series(ZONE, SPAN)
    assert len(src.calls) == 2
    notes = {p.provenance.note for p in stale.points() if p.provenance.source == "em"}
    assert notes and all("stale cache (60 min old); live fetch failed: HTTP 503" in n for n in notes)
    assert any("cached 60 min ago" in n for n in svc2.notices)

    # the failure is remembered briefly across commands: the next command does not wait for it again
    service(src, cache=cache, clock=clock).series(ZONE, SPAN)
    assert len(src.calls) == 2
    clock.advance(600)
    service(src, cache=cache, clock=clock).series(ZONE, SPAN)
    assert len(src.calls) == 3


def test_series_many_shares_live_fetches_but_keeps_each_regions_static_value() -> None:
    fr = GridZone("FR", static_g_per_kwh=50.0)
    # two hours of history only: too little for a model, so the future falls back to static
    src = ScriptedSource("em", lambda t: 42.0, start_s=NOW_S - 7200, end_s=NOW_S)
    # two regions in one grid zone, with different static values (as CCF gives us-east-1 and us-east-2)
    de_a = GridZone("DE", static_g_per_kwh=300.0, cloud_region="a")
    de_b = GridZone("DE", static_g_per_kwh=400.0, cloud_region="b")
    svc = service(src)
    out = svc.series_many(
        [de_a, fr, de_b, de_a], TimeSpan(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    )
    assert set(out) == {de_a, de_b, fr}
    assert len([c for c in src.calls if c.end == NOW + timedelta(hours=1)]) == 2  # DE once, FR once
    future = NOW_S + 1800
    assert out[de_a].mean_g_per_kwh(NOW_S, future) == 300.0
    assert out[de_b].mean_g_per_kwh(NOW_S, future) == 400.0
    assert (
        out[de_a].mean_g_per_kwh(NOW_S - 3600, NOW_S) == 42.0 == out[de_b].mean_g_per_kwh(NOW_S - 3600, NOW_S)
    )
