"""Electricity Maps v3 over real HTTP: the documented bodies, the fake API, and every fault."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import IntensitySource, SourceError
from carbonshift.intensity.sources.electricitymaps import ElectricityMapsSource
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan
from tests.fakes._common import fixture_bytes
from tests.fakes.electricitymaps import FakeElectricityMaps, default_value
from tests.fakes.http_server import FakeHttpServer, FakeResponse
from tests.intensity.live_support import NOW, around, client, kind_at, note_at, utc, value_at

HINT = "CARBONSHIFT_ELECTRICITYMAPS_TOKEN"
DE = GridZone("DE")


def source(fake: FakeElectricityMaps, **kw: object) -> ElectricityMapsSource:
    return ElectricityMapsSource(
        fake.token, base_url=fake.base_url, http=client("electricitymaps", hint=HINT, **kw)
    )  # type: ignore[arg-type]


@pytest.fixture
def em(fake_electricitymaps: FakeElectricityMaps) -> FakeElectricityMaps:
    fake_electricitymaps.now = NOW
    return fake_electricitymaps


# ---- the documented example bodies, served as they are ----------------------------------------------
def _serve_fixtures(server: FakeHttpServer, **files: str) -> None:
    for endpoint, name in files.items():
        body = fixture_bytes(name)
        server.route(
            f"/v3/carbon-intensity/{endpoint.replace('_', '-')}",
            lambda req, body=body: FakeResponse(body=body),
        )


def test_documented_history_and_forecast_bodies(fake_http: FakeHttpServer) -> None:
    _serve_fixtures(
        fake_http,
        history="electricitymaps_v3_carbon-intensity_history.json",
        latest="electricitymaps_v3_carbon-intensity_latest.json",
        forecast="electricitymaps_v3_carbon-intensity_forecast.json",
    )
    src = ElectricityMapsSource("t0k3n-abc", base_url=f"{fake_http.url}/v3", http=client("electricitymaps"))
    now = utc("2099-01-01T00:30:00Z")
    series = src.fetch(
        GridZone("NL"), TimeSpan(utc("2099-01-01T00:00Z"), utc("2099-01-01T02:00Z")), Signal.AVERAGE, now
    )
    assert value_at(series, utc("2099-01-01T00:10Z")) == 999
    assert kind_at(series, utc("2099-01-01T00:10Z")) is Kind.MEASURED  # history beats the forecast
    assert value_at(series, utc("2099-01-01T01:10Z")) == 990
    assert kind_at(series, utc("2099-01-01T01:10Z")) is Kind.FORECAST
    assert series.is_complete
    assert all(p.fetched_at == now and p.source == "electricitymaps" for p in series.provenances)


def test_documented_past_range_body(fake_http: FakeHttpServer) -> None:
    _serve_fixtures(fake_http, past_range="electricitymaps_v3_carbon-intensity_past-range.json")
    src = ElectricityMapsSource("t0k3n-abc", base_url=f"{fake_http.url}/v3", http=client("electricitymaps"))
    series = src.fetch(
        GridZone("NL"),
        TimeSpan(utc("2099-01-01T00:00Z"), utc("2099-01-01T01:00Z")),
        Signal.AVERAGE,
        utc("2099-01-03T00:00Z"),
    )
    assert value_at(series, utc("2099-01-01T00:00Z")) == 999 and series.is_complete
    (req,) = fake_http.requests
    assert req.path == "/v3/carbon-intensity/past-range"
    assert req.query == {"zone": ["NL"], "start": ["2099-01-01T00:00:00Z"], "end": ["2099-01-01T01:00:00Z"]}


@pytest.mark.parametrize(
    ("name", "zone", "hour", "value", "estimated"),
    [
        ("electricitymaps_v3_carbon-intensity_latest.json", "DE", "2019-05-21T00:00Z", 322, False),
        ("electricitymaps_v3_carbon-intensity_latest_estimated.json", "FR", "2023-03-20T17:00Z", 83, True),
    ],
)
def test_documented_latest_bodies(
    fake_http: FakeHttpServer, name: str, zone: str, hour: str, value: float, estimated: bool
) -> None:
    _serve_fixtures(fake_http, latest=name)
    fake_http.route(
        r"/v3/carbon-intensity/history", lambda req: FakeResponse.json({"zone": zone, "history": []})
    )
    src = ElectricityMapsSource("t0k3n-abc", base_url=f"{fake_http.url}/v3", http=client("electricitymaps"))
    start = utc(hour)
    series = src.fetch(
        GridZone(zone),
        TimeSpan(start, start + timedelta(hours=1)),
        Signal.AVERAGE,
        start + timedelta(minutes=59),
    )
    assert value_at(series, start) == value and series.is_complete
    assert kind_at(series, start) is Kind.MEASURED
    note = note_at(series, start)
    assert ("estimated by Electricity Maps (TIME_SLICER_AVERAGE)" in note) is estimated


# ---- against the fake API ---------------------------------------------------------------------------
def test_history_latest_and_forecast_with_provenance(em: FakeElectricityMaps) -> None:
    src = source(em)
    assert isinstance(src, IntensitySource)
    series = src.fetch(DE, around(before_h=6, after_h=6), Signal.AVERAGE, NOW)
    assert series.is_complete
    assert series.span == around(before_h=6, after_h=6)
    for h in (-5, -1, 0, 1, 5):
        t = NOW + timedelta(hours=h)
        hour = int(t.timestamp()) - int(t.timestamp()) % 3600
        assert value_at(series, t) == default_value("DE", hour)
    assert kind_at(series, NOW - timedelta(hours=3)) is Kind.MEASURED
    assert kind_at(series, NOW + timedelta(hours=3)) is Kind.FORECAST
    assert {p.signal for p in series.provenances} == {Signal.AVERAGE}
    paths = [r.path for r in em.server.requests]
    assert paths == [
        "/v3/carbon-intensity/history",
        "/v3/carbon-intensity/latest",
        "/v3/carbon-intensity/forecast",
    ]
    assert all(r.header("auth-token") == em.token for r in em.server.requests)
    assert all(r.query["zone"] == ["DE"] for r in em.server.requests)


def test_long_past_is_asked_in_ten_day_chunks(em: FakeElectricityMaps) -> None:
    span = TimeSpan(NOW - timedelta(days=25), NOW - timedelta(days=1, hours=1))
    series = source(em).fetch(DE, span, Signal.AVERAGE, NOW)
    assert series.is_complete
    chunks = em.server.requests_to("past-range")
    assert len(chunks) == 3
    for req in chunks:
        start, end = utc(req.query["start"][0]), utc(req.query["end"][0])
        assert end - start <= timedelta(days=10)
    assert not em.server.requests_to("forecast") and not em.server.requests_to("latest")


def test_long_forecast_asks_for_a_longer_horizon(em: FakeElectricityMaps) -> None:
    series = source(em).fetch(DE, around(after_h=40), Signal.AVERAGE, NOW)
    (req,) = em.server.requests_to("forecast")
    assert req.query.get("horizonHours") == ["48"]
    assert series.is_complete


def test_estimated_values_are_noted(em: FakeElectricityMaps) -> None:
    hour = int((NOW - timedelta(hours=2)).timestamp()) // 3600 * 3600
    em.estimated_hours = {hour}
    series = source(em).fetch(DE, around(before_h=4), Signal.AVERAGE, NOW)
    assert "estimated by Electricity Maps" in note_at(series, NOW - timedelta(hours=2))
    assert "estimated" not in note_at(series, NOW - timedelta(hours=3))


def test_average_only_and_not_ukci_zones(em: FakeElectricityMaps) -> None:
    src = source(em)
    assert src.supports(DE, Signal.AVERAGE)
    assert not src.supports(DE, Signal.MARGINAL)
    assert not src.supports(GridZone("GB-UKCI-13"), Signal.AVERAGE)
    assert not src.supports(GridZone("madrid-lab"), Signal.AVERAGE)
    assert src.supports(GridZone("US-CAL-CISO"), Signal.AVERAGE)
    with pytest.raises(SourceError):
        src.fetch(DE, around(after_h=1), Signal.MARGINAL, NOW)


def test_from_settings_needs_a_token(em: FakeElectricityMaps) -> None:
    assert ElectricityMapsSource.from_settings(Settings()) is None
    src = ElectricityMapsSource.from_settings(Settings(**em.settings_overrides()))
    assert src is not None and src.base_url == em.base_url
    assert em.token not in repr(src)
    assert src.fetch(DE, around(after_h=2), Signal.AVERAGE, NOW).is_complete


# ---- faults ---------------------------------------------------------------------------------------
def test_wrong_token_is_an_auth_error_that_never_shows_the_token(em: FakeElectricityMaps) -> None:
    wrong = "wrong-token-0b5e11"
    src = ElectricityMapsSource(wrong, base_url=em.base_url, http=client("electricitymaps", hint=HINT))
    with pytest.raises(SourceError) as info:
        src.fetch(DE, around(before_h=2, after_h=2), Signal.AVERAGE, NOW)
    assert info.value.auth
    assert "credentials rejected (HTTP 401)" in info.value.reason and HINT in info.value.reason
    assert wrong not in str(info.value)


def test_forecast_refused_by_the_plan_keeps_the_history(em: FakeElectricityMaps) -> None:
    em.forecast_access = False
    series = source(em).fetch(DE, around(before_h=3, after_h=3), Signal.AVERAGE, NOW)
    assert not np.isnan(value_at(series, NOW - timedelta(hours=2)))
    assert np.isnan(value_at(series, NOW + timedelta(hours=2)))
    assert "forecast unavailable: access denied (HTTP 403)" in note_at(series, NOW - timedelta(hours=2))


def test_unknown_zone(em: FakeElectricityMaps) -> None:
    with pytest.raises(SourceError) as info:
        source(em).fetch(GridZone("XX"), around(before_h=2, after_h=2), Signal.AVERAGE, NOW)
    assert info.value.unknown_zone and "XX" in info.value.reason


def test_out_of_range_values_are_dropped_and_noted(em: FakeElectricityMaps) -> None:
    bad = {
        int((NOW - timedelta(hours=h)).timestamp()) // 3600 * 3600: v for h, v in ((2, -5.0), (3, 99999.0))
    }
    em.value = lambda zone, t: bad.get(t, default_value(zone, t))
    series = source(em).fetch(DE, around(before_h=5), Signal.AVERAGE, NOW)
    assert np.isnan(value_at(series, NOW - timedelta(hours=2)))
    assert np.isnan(value_at(series, NOW - timedelta(hours=3)))
    assert "2 out-of-range values dropped" in note_at(series, NOW - timedelta(hours=4))


def test_all_values_absurd_is_an_error(em: FakeElectricityMaps) -> None:
    em.value = lambda zone, t: 1e9
    with pytest.raises(SourceError, match="out of range"):
        source(em).fetch(DE, around(before_h=5, after_h=2), Signal.AVERAGE, NOW)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b"", "empty response body"),
        (b'{"zone": "DE", "history": "none"}', "history is not a list"),
        (b'{"zone": "DE", "history": [{"datetime": "yesterday", "carbonIntensity": 5}]}', "not ISO 8601"),
        (
            b'{"zone": "DE", "history": [{"datetime": "2026-03-01T09:00Z", "carbonIntensity": "high"}]}',
            "not a number",
        ),
    ],
)
def test_bodies_that_do_not_parse(em: FakeElectricityMaps, body: bytes, reason: str) -> None:
    em.server.fault("history", body=body)
    with pytest.raises(SourceError, match=reason):
        source(em).fetch(DE, around(before_h=10, after_h=-5), Signal.AVERAGE, NOW)  # history only


def test_5xx_then_success(em: FakeElectricityMaps) -> None:
    em.server.fault("forecast", status=502)
    series = source(em).fetch(DE, around(after_h=3), Signal.AVERAGE, NOW)
    assert series.is_complete
    assert len(em.server.requests_to("forecast")) == 2


def test_a_dead_source_costs_at_most_the_budget(dead_url: str) -> None:
    src = ElectricityMapsSource(
        "tok-x1y2z3", base_url=f"{dead_url}/v3", http=client("electricitymaps", budget_s=2)
    )
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.fetch(DE, TimeSpan(NOW - timedelta(days=30), NOW + timedelta(days=2)), Signal.AVERAGE, NOW)
    assert time.monotonic() - t0 < 2.0 + 0.5
    assert "connection refused" in info.value.reason and info.value.transient


def test_a_hanging_source_costs_at_most_the_budget(em: FakeElectricityMaps) -> None:
    em.server.fault(None, delay_s=2.0, times=50)
    src = source(em, budget_s=1.0, read_timeout_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.fetch(DE, TimeSpan(NOW - timedelta(days=30), NOW + timedelta(days=2)), Signal.AVERAGE, NOW)
    assert time.monotonic() - t0 < 1.0 + 0.5
    assert info.value.transient
