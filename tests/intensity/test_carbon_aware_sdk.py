"""A hosted Carbon Aware SDK WebAPI over real HTTP: the documented bodies, locations, signals, faults."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.sources.carbon_aware_sdk import CarbonAwareSdkSource
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan
from tests.fakes._common import fixture_bytes
from tests.fakes.carbon_aware_sdk import FakeCarbonAwareSdk, default_value
from tests.fakes.http_server import FakeHttpServer, FakeResponse
from tests.intensity.live_support import NOW, around, client, kind_at, utc, value_at

EASTUS = GridZone("US-VA", cloud_region="eastus")


def source(fake: FakeCarbonAwareSdk, signal: Signal = Signal.MARGINAL, **kw: object) -> CarbonAwareSdkSource:
    return CarbonAwareSdkSource(fake.base_url, signal=signal, http=client("carbon_aware_sdk", **kw))  # type: ignore[arg-type]


@pytest.fixture
def ca(fake_carbon_aware_sdk: FakeCarbonAwareSdk) -> FakeCarbonAwareSdk:
    fake_carbon_aware_sdk.now = NOW
    return fake_carbon_aware_sdk


def _step(t: object) -> int:
    s = int(t.timestamp())  # type: ignore[attr-defined]
    return s - s % 300


# ---- the documented example bodies ------------------------------------------------------------------
def test_documented_forecast_body(fake_http: FakeHttpServer) -> None:
    body = fixture_bytes("casdk_webapi_emissions_forecasts_current_response.json")
    fake_http.route(r"/emissions/forecasts/current", lambda req: FakeResponse(body=body))
    src = CarbonAwareSdkSource(fake_http.url, http=client("carbon_aware_sdk"))
    span = TimeSpan(utc("2022-07-19T14:00Z"), utc("2022-07-20T04:40Z"))
    series = src.fetch(
        GridZone("IE", cloud_region="northeurope"), span, Signal.MARGINAL, utc("2022-07-19T13:37:49Z")
    )
    assert value_at(series, utc("2022-07-19T14:05Z")) == pytest.approx(532.02293146)
    assert kind_at(series, utc("2022-07-19T14:05Z")) is Kind.FORECAST
    assert np.isnan(value_at(series, utc("2022-07-19T14:10Z")))  # 10-minute duration, then a gap
    assert value_at(series, utc("2022-07-20T04:30Z")) == pytest.approx(535.7318741001667)
    (req,) = fake_http.requests
    assert req.query == {
        "location": ["northeurope"],
        "dataStartAt": ["2022-07-19T14:00:00Z"],
        "dataEndAt": ["2022-07-20T04:40:00Z"],
    }


def test_documented_emissions_body(fake_http: FakeHttpServer) -> None:
    body = fixture_bytes("casdk_webapi_emissions_bylocations_best_response.json")
    fake_http.route(r"/emissions/bylocations", lambda req: FakeResponse(body=body))
    src = CarbonAwareSdkSource(fake_http.url, http=client("carbon_aware_sdk"))
    span = TimeSpan(utc("2022-05-17T20:45Z"), utc("2022-05-17T21:00Z"))
    series = src.fetch(EASTUS, span, Signal.MARGINAL, utc("2022-05-18T00:00Z"))
    assert value_at(series, utc("2022-05-17T20:46Z")) == 70  # from 20:45:11 for "00:05:00"
    assert kind_at(series, utc("2022-05-17T20:46Z")) is Kind.MEASURED
    assert np.isnan(value_at(series, utc("2022-05-17T20:51Z")))
    (req,) = fake_http.requests
    assert req.query == {
        "location": ["eastus"],
        "time": ["2022-05-17T20:45:00Z"],
        "toTime": ["2022-05-17T21:00:00Z"],
    }


# ---- against the fake API ---------------------------------------------------------------------------
def test_observed_and_forecast(ca: FakeCarbonAwareSdk) -> None:
    series = source(ca).fetch(EASTUS, around(before_h=1, after_h=1), Signal.MARGINAL, NOW)
    assert series.is_complete and series.signal is Signal.MARGINAL
    past, ahead = NOW - timedelta(minutes=30), NOW + timedelta(minutes=30)
    assert value_at(series, past) == default_value("eastus", _step(past))
    assert kind_at(series, past) is Kind.MEASURED
    assert value_at(series, ahead) == default_value("eastus", _step(ahead))
    assert kind_at(series, ahead) is Kind.FORECAST
    assert {r.query["location"][0] for r in ca.server.requests} == {"eastus"}


def test_location_is_the_zone_id_without_a_cloud_region(ca: FakeCarbonAwareSdk) -> None:
    source(ca).fetch(GridZone("westus"), around(before_h=1), Signal.MARGINAL, NOW)
    assert ca.server.requests[0].query["location"] == ["westus"]


def test_span_beyond_the_forecast_asks_for_the_whole_forecast(ca: FakeCarbonAwareSdk) -> None:
    series = source(ca).fetch(EASTUS, around(after_h=30), Signal.MARGINAL, NOW)
    first, second = ca.server.requests_to("forecasts")
    assert "dataEndAt" in first.query and "dataEndAt" not in second.query
    assert not np.isnan(value_at(series, NOW + timedelta(hours=20)))
    assert np.isnan(value_at(series, NOW + timedelta(hours=28)))  # the forecast ends after 24 h


def test_serves_one_configured_signal(ca: FakeCarbonAwareSdk) -> None:
    avg = source(ca, signal=Signal.AVERAGE)
    assert avg.supports(EASTUS, Signal.AVERAGE) and not avg.supports(EASTUS, Signal.MARGINAL)
    assert avg.fetch(EASTUS, around(after_h=1), Signal.AVERAGE, NOW).signal is Signal.AVERAGE
    with pytest.raises(SourceError, match="average signal only"):
        avg.fetch(EASTUS, around(after_h=1), Signal.MARGINAL, NOW)


def test_from_settings(ca: FakeCarbonAwareSdk) -> None:
    assert CarbonAwareSdkSource.from_settings(Settings()) is None
    src = CarbonAwareSdkSource.from_settings(Settings(**ca.settings_overrides(signal="average")))
    assert src is not None and src.signal is Signal.AVERAGE
    assert src.fetch(EASTUS, around(before_h=1, after_h=1), Signal.AVERAGE, NOW).is_complete


# ---- faults ---------------------------------------------------------------------------------------
def test_unknown_location(ca: FakeCarbonAwareSdk) -> None:
    with pytest.raises(SourceError) as info:
        source(ca).fetch(
            GridZone("XX", cloud_region="mars-north1"), around(before_h=1, after_h=1), Signal.MARGINAL, NOW
        )
    assert info.value.unknown_zone
    assert "XX" in info.value.reason and "mars-north1" in info.value.reason
    assert len(ca.server.requests_to("forecasts")) == 1  # no second try for an unknown location


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"location": "eastus"}', "the answer is not a list"),
        (
            b'[{"location": "eastus", "time": "2026-03-01T12:00:00Z", "rating": 5, "duration": "five"}]',
            "not a TimeSpan",
        ),
        (b"[", "not valid JSON"),
    ],
)
def test_bodies_that_do_not_parse(ca: FakeCarbonAwareSdk, body: bytes, reason: str) -> None:
    ca.server.fault("bylocations", body=body)
    with pytest.raises(SourceError, match=reason):
        source(ca).fetch(EASTUS, around(before_h=1), Signal.MARGINAL, NOW)


def test_absurd_rating_dropped(ca: FakeCarbonAwareSdk) -> None:
    bad = _step(NOW - timedelta(minutes=30))
    ca.value = lambda loc, t: 5000.0 if t == bad else default_value(loc, t)
    series = source(ca).fetch(EASTUS, around(before_h=1), Signal.MARGINAL, NOW)
    assert np.isnan(value_at(series, NOW - timedelta(minutes=30)))
    assert "out-of-range" in (series.provenances[0].note)


def test_forecast_down_history_kept(ca: FakeCarbonAwareSdk) -> None:
    ca.server.fault("forecasts", status=503, times=5)
    series = source(ca).fetch(EASTUS, around(before_h=1, after_h=1), Signal.MARGINAL, NOW)
    assert not np.isnan(value_at(series, NOW - timedelta(minutes=30)))
    assert np.isnan(value_at(series, NOW + timedelta(minutes=30)))
    assert "forecast unavailable: server error (HTTP 503)" in series.provenances[0].note


def test_a_dead_webapi_costs_at_most_the_budget(dead_url: str) -> None:
    src = CarbonAwareSdkSource(dead_url, http=client("carbon_aware_sdk", budget_s=1.0))
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="connection refused"):
        src.fetch(EASTUS, around(before_h=24, after_h=24), Signal.MARGINAL, NOW)
    assert time.monotonic() - t0 < 1.0 + 0.5
