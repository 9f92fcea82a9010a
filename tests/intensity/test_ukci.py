"""The GB Carbon Intensity API over real HTTP: national and regional shapes, kinds, chunks, faults."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.sources.ukci import UkCarbonIntensitySource
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan
from tests.fakes._common import fixture_bytes
from tests.fakes.http_server import FakeHttpServer, FakeResponse
from tests.fakes.ukci import FakeUkci, default_value
from tests.intensity.live_support import NOW, around, client, kind_at, note_at, utc, value_at

GB = GridZone("GB")


def source(fake: FakeUkci, **kw: object) -> UkCarbonIntensitySource:
    return UkCarbonIntensitySource(base_url=fake.base_url, http=client("ukci", **kw))  # type: ignore[arg-type]


@pytest.fixture
def uk(fake_ukci: FakeUkci) -> FakeUkci:
    fake_ukci.now = NOW
    return fake_ukci


def _slot(t: object) -> int:
    s = int(t.timestamp())  # type: ignore[attr-defined]
    return s - s % 1800


# ---- the documented / recorded bodies ---------------------------------------------------------------
def test_recorded_national_fw48h_body(fake_http: FakeHttpServer) -> None:
    body = fixture_bytes("ukci_intensity_fw48h_national_2023-12-03.json")
    fake_http.route(r"/intensity/.*", lambda req: FakeResponse(body=body))
    src = UkCarbonIntensitySource(base_url=fake_http.url, http=client("ukci"))
    now = utc("2023-12-03T11:00Z")
    series = src.fetch(GB, TimeSpan(utc("2023-12-03T10:30Z"), utc("2023-12-05T10:30Z")), Signal.AVERAGE, now)
    assert series.is_complete  # 96 half-hour slots, 48 h
    assert value_at(series, utc("2023-12-03T10:45Z")) == 206  # the outturn ("actual")
    assert kind_at(series, utc("2023-12-03T10:45Z")) is Kind.MEASURED
    assert value_at(series, utc("2023-12-03T11:15Z")) == 216
    assert kind_at(series, utc("2023-12-03T11:15Z")) is Kind.FORECAST
    assert value_at(series, utc("2023-12-05T10:15Z")) == 216
    paths = [r.path for r in fake_http.requests]
    assert paths == ["/intensity/2023-12-03T10:30Z/2023-12-03T11:00Z", "/intensity/2023-12-03T11:00Z/fw48h"]


def test_documented_current_national_body(fake_http: FakeHttpServer) -> None:
    body = fixture_bytes("ukci_intensity_current.json")
    fake_http.route(r"/intensity/.*", lambda req: FakeResponse(body=body))
    src = UkCarbonIntensitySource(base_url=fake_http.url, http=client("ukci"))
    series = src.fetch(
        GB,
        TimeSpan(utc("2020-01-01T00:00Z"), utc("2020-01-01T00:30Z")),
        Signal.AVERAGE,
        utc("2020-01-02T00:00Z"),
    )
    assert value_at(series, utc("2020-01-01T00:00Z")) == 190
    assert kind_at(series, utc("2020-01-01T00:00Z")) is Kind.MEASURED


def test_documented_postcode_body_list_shape(fake_http: FakeHttpServer) -> None:
    body = fixture_bytes("ukci_regional_postcode_current_NG1.json")
    fake_http.route(r"/regional/intensity/.*/postcode/NG1", lambda req: FakeResponse(body=body))
    src = UkCarbonIntensitySource(base_url=fake_http.url, http=client("ukci"))
    start = utc("2023-09-02T16:00Z")
    series = src.fetch(
        GridZone("GB-UKCI-NG1"),
        TimeSpan(start, start + timedelta(minutes=30)),
        Signal.AVERAGE,
        utc("2023-09-03T00:00Z"),
    )
    assert value_at(series, start) == 312
    assert kind_at(series, start) is Kind.FORECAST
    assert "no regional outturn" in note_at(series, start)


# ---- against the fake API ---------------------------------------------------------------------------
def test_national_actuals_for_the_past_forecasts_ahead(uk: FakeUkci) -> None:
    series = source(uk).fetch(GB, around(before_h=3, after_h=3), Signal.AVERAGE, NOW)
    assert series.is_complete
    past = NOW - timedelta(hours=2)
    assert value_at(series, past) == default_value("national", _slot(past)) - 3.0  # the fake's outturn
    assert kind_at(series, past) is Kind.MEASURED
    ahead = NOW + timedelta(hours=2)
    assert value_at(series, ahead) == default_value("national", _slot(ahead))
    assert kind_at(series, ahead) is Kind.FORECAST
    assert all(not r.headers.get("authorization") for r in uk.server.requests)


def test_national_past_without_outturn_is_a_flagged_forecast(uk: FakeUkci) -> None:
    uk.actual_lag_s = 2 * 3600
    series = source(uk).fetch(GB, around(before_h=4), Signal.AVERAGE, NOW)
    assert kind_at(series, NOW - timedelta(hours=3)) is Kind.MEASURED
    recent = NOW - timedelta(hours=1)
    assert kind_at(series, recent) is Kind.FORECAST
    assert note_at(series, recent) == "no outturn published yet; forecast value"


def test_region_by_id_object_shape(uk: FakeUkci) -> None:
    zone = GridZone("GB-UKCI-13")
    series = source(uk).fetch(zone, around(before_h=2, after_h=2), Signal.AVERAGE, NOW)
    assert series.is_complete
    past, ahead = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    assert value_at(series, past) == default_value("region13", _slot(past))
    assert kind_at(series, past) is Kind.FORECAST and "no regional outturn" in note_at(series, past)
    assert kind_at(series, ahead) is Kind.FORECAST and note_at(series, ahead) == ""
    assert [r.path.split("/")[-2:] for r in uk.server.requests] == [["regionid", "13"], ["regionid", "13"]]


@pytest.mark.parametrize("shape", ["object", "list"])
def test_postcode_either_shape(uk: FakeUkci, shape: str) -> None:
    uk.postcode_shape = shape  # type: ignore[assignment]
    series = source(uk).fetch(GridZone("GB-UKCI-NG1"), around(before_h=1, after_h=1), Signal.AVERAGE, NOW)
    assert series.is_complete
    assert value_at(series, NOW) == default_value("postcodeNG1", _slot(NOW))
    assert uk.server.requests[-1].path.endswith("/fw48h/postcode/NG1")


def test_long_past_is_asked_in_14_day_chunks(uk: FakeUkci) -> None:
    series = source(uk).fetch(
        GB, TimeSpan(NOW - timedelta(days=20), NOW - timedelta(days=1)), Signal.AVERAGE, NOW
    )
    assert series.is_complete
    assert len(uk.server.requests) == 2
    for req in uk.server.requests:
        _, _, start, end = req.path.split("/")
        assert utc(end) - utc(start) <= timedelta(days=14)


def test_zones_it_supports() -> None:
    src = UkCarbonIntensitySource(http=client("ukci"))
    for zid in ("GB", "gb", "GB-UKCI-1", "GB-UKCI-17", "GB-UKCI-NG1", "GB-UKCI-SW1A", "GB-UKCI-rg10"):
        assert src.supports(GridZone(zid), Signal.AVERAGE), zid
    for zid in ("DE", "GB-UKCI-0", "GB-UKCI-99", "GB-UKCI-NOTAPOSTCODE", "GB-NIR"):
        assert not src.supports(GridZone(zid), Signal.AVERAGE), zid
    assert not src.supports(GB, Signal.MARGINAL)


def test_from_settings(uk: FakeUkci) -> None:
    assert UkCarbonIntensitySource.from_settings(Settings(ukci_enabled=False)) is None
    src = UkCarbonIntensitySource.from_settings(Settings(**uk.settings_overrides()))
    assert src is not None and src.fetch(GB, around(after_h=1), Signal.AVERAGE, NOW).is_complete


# ---- faults ---------------------------------------------------------------------------------------
def test_unknown_postcode(uk: FakeUkci) -> None:
    with pytest.raises(SourceError) as info:
        source(uk).fetch(GridZone("GB-UKCI-ZZ9"), around(before_h=1, after_h=1), Signal.AVERAGE, NOW)
    assert info.value.unknown_zone and "GB-UKCI-ZZ9" in info.value.reason


def test_error_body_with_200(uk: FakeUkci) -> None:
    uk.server.fault(None, json_body={"error": {"code": "500", "message": "Internal error"}}, times=5)
    with pytest.raises(SourceError, match="error"):
        source(uk).fetch(GB, around(before_h=1, after_h=1), Signal.AVERAGE, NOW)


def test_negative_values_dropped_with_a_note(uk: FakeUkci) -> None:
    bad = _slot(NOW + timedelta(hours=1))
    uk.value = lambda key, t: -40.0 if t == bad else default_value(key, t)
    series = source(uk).fetch(GB, around(after_h=3), Signal.AVERAGE, NOW)
    assert np.isnan(value_at(series, NOW + timedelta(hours=1)))
    assert "1 out-of-range value dropped (e.g. -40 g/kWh" in note_at(series, NOW + timedelta(hours=2))


def test_missing_intensity_is_a_parse_error(uk: FakeUkci) -> None:
    uk.server.fault("fw48h", json_body={"data": [{"from": "2026-03-01T12:00Z", "to": "2026-03-01T12:30Z"}]})
    future = TimeSpan(NOW + timedelta(minutes=10), NOW + timedelta(minutes=70))  # forecast only
    with pytest.raises(SourceError, match="intensity is not an object"):
        source(uk).fetch(GB, future, Signal.AVERAGE, NOW)


def test_history_server_error_then_success(uk: FakeUkci) -> None:
    uk.server.fault(r"/intensity/.*Z/.*Z$", status=500)
    series = source(uk).fetch(GB, around(before_h=2), Signal.AVERAGE, NOW)
    assert series.is_complete
    assert len(uk.server.requests) == 2


def test_a_hanging_api_costs_at_most_the_budget(uk: FakeUkci) -> None:
    uk.server.fault(None, delay_s=2.0, times=20)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        source(uk, budget_s=1.0, read_timeout_s=0.3).fetch(
            GB, around(before_h=24 * 30, after_h=48), Signal.AVERAGE, NOW
        )
    assert time.monotonic() - t0 < 1.0 + 0.5
    assert info.value.transient
