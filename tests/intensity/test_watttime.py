"""WattTime v3 over real HTTP: login and token renewal, units, regions, the documented bodies, faults."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import numpy as np
import pytest

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.sources.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeSource
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan
from tests.fakes._common import fixture_bytes
from tests.fakes.http_server import FakeHttpServer, FakeResponse
from tests.fakes.watttime import FakeWattTime, default_value
from tests.intensity.live_support import NOW, around, client, kind_at, note_at, utc, value_at

CAISO = GridZone("US-CAL-CISO", watttime_region="CAISO_NORTH")
HINT = "CARBONSHIFT_WATTTIME_USERNAME and CARBONSHIFT_WATTTIME_PASSWORD"


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def source(fake: FakeWattTime, *, password: str | None = None, **kw: object) -> WattTimeSource:
    return WattTimeSource(
        fake.username,
        password or fake.password,
        base_url=fake.base_url,
        http=client("watttime", hint=HINT),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def wt(fake_watttime: FakeWattTime) -> FakeWattTime:
    fake_watttime.now = NOW
    return fake_watttime


def _g(lbs: float) -> float:
    return lbs * LBS_PER_MWH_TO_G_PER_KWH


# ---- the documented example bodies ------------------------------------------------------------------
def _serve(server: FakeHttpServer, path: str, name: str) -> None:
    body = fixture_bytes(name)
    server.route(path, lambda req: FakeResponse(body=body))


def test_documented_forecast_body(fake_http: FakeHttpServer) -> None:
    _serve(fake_http, "/login", "watttime_v3_login.json")
    _serve(fake_http, "/v3/forecast", "watttime_v3_forecast.json")
    src = WattTimeSource("u", "p4ssw0rd", base_url=fake_http.url, http=client("watttime"))
    now = utc("2022-07-14T23:59:00Z")
    series = src.fetch(
        CAISO, TimeSpan(utc("2022-07-15T00:00Z"), utc("2022-07-15T00:10Z")), Signal.MARGINAL, now
    )
    assert value_at(series, utc("2022-07-15T00:00Z")) == pytest.approx(870 * 0.45359237)
    assert value_at(series, utc("2022-07-15T00:07Z")) == pytest.approx(860 * 0.45359237)
    assert kind_at(series, utc("2022-07-15T00:00Z")) is Kind.FORECAST
    assert series.is_complete
    login, forecast = fake_http.requests
    assert login.path == "/login"
    assert (
        forecast.header("authorization")
        == "Bearer " + "<JWT valid ~30 minutes; send as 'Authorization: Bearer <token>'>"
    )


def test_documented_historical_body(fake_http: FakeHttpServer) -> None:
    _serve(fake_http, "/login", "watttime_v3_login.json")
    _serve(fake_http, "/v3/historical", "watttime_v3_historical.json")
    src = WattTimeSource("u", "p4ssw0rd", base_url=fake_http.url, http=client("watttime"))
    span = TimeSpan(utc("2022-07-15T00:00Z"), utc("2022-07-15T00:10Z"))
    series = src.fetch(CAISO, span, Signal.MARGINAL, utc("2022-07-16T00:00Z"))
    assert value_at(series, utc("2022-07-15T00:02Z")) == pytest.approx(_g(870))
    assert value_at(series, utc("2022-07-15T00:05Z")) == pytest.approx(_g(860))
    assert kind_at(series, utc("2022-07-15T00:02Z")) is Kind.MEASURED
    assert note_at(series, utc("2022-07-15T00:02Z")) == "imputed by WattTime"


def test_documented_signal_index_and_region_from_loc_bodies(fake_http: FakeHttpServer) -> None:
    _serve(fake_http, "/login", "watttime_v3_login.json")
    _serve(fake_http, "/v3/signal-index", "watttime_v3_signal_index.json")
    _serve(fake_http, "/v3/region-from-loc", "watttime_v3_region_from_loc.json")
    src = WattTimeSource("u", "p4ssw0rd", base_url=fake_http.url, http=client("watttime"))
    index = src.signal_index(GridZone("amherst", lat=42.372, lon=-72.519), utc("2022-07-15T00:01Z"))
    assert index.percentile == 37.1
    assert index.region == "ISONE_WCMA"
    assert index.point_time == utc("2022-07-15T00:00Z")
    (req,) = fake_http.requests_to("signal-index")
    assert req.query["region"] == ["ISONE_WCMA"] and req.query["signal_type"] == ["co2_moer"]


def test_interval_length_comes_from_meta(fake_http: FakeHttpServer) -> None:
    _serve(fake_http, "/login", "watttime_v3_login.json")
    fake_http.route(
        r"/v3/forecast",
        lambda req: FakeResponse.json(
            {
                "data": [{"point_time": "2022-07-15T00:00:00Z", "value": 1000}],
                "meta": {
                    "data_point_period_seconds": 900,
                    "signal_type": "co2_moer",
                    "units": "lbs_co2_per_mwh",
                },
            }
        ),
    )
    src = WattTimeSource("u", "p4ssw0rd", base_url=fake_http.url, http=client("watttime"))
    series = src.fetch(
        CAISO,
        TimeSpan(utc("2022-07-15T00:00Z"), utc("2022-07-15T00:30Z")),
        Signal.MARGINAL,
        utc("2022-07-14T23:59Z"),
    )
    assert value_at(series, utc("2022-07-15T00:14Z")) == pytest.approx(453.59237)
    assert np.isnan(value_at(series, utc("2022-07-15T00:15Z")))


# ---- against the fake API ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("signal", "signal_type"), [(Signal.MARGINAL, "co2_moer"), (Signal.AVERAGE, "co2_aoer")]
)
def test_history_and_forecast_converted_to_g_per_kwh(
    wt: FakeWattTime, signal: Signal, signal_type: str
) -> None:
    series = source(wt).fetch(CAISO, around(before_h=1, after_h=1), signal, NOW)
    assert series.is_complete and series.signal is signal
    for minutes in (-55, -10, 0, 10, 55):
        t = NOW + timedelta(minutes=minutes)
        step = int(t.timestamp()) // 300 * 300
        assert value_at(series, t) == pytest.approx(_g(default_value("CAISO_NORTH", signal_type, step)))
    assert kind_at(series, NOW - timedelta(minutes=10)) is Kind.MEASURED
    assert kind_at(series, NOW + timedelta(minutes=10)) is Kind.FORECAST
    data = [r for r in wt.server.requests if r.path.startswith("/v3/")]
    assert {r.query["signal_type"][0] for r in data} == {signal_type}
    assert {r.query["region"][0] for r in data} == {"CAISO_NORTH"}


def test_basic_auth_login_then_bearer(wt: FakeWattTime) -> None:
    source(wt).fetch(CAISO, around(before_h=1, after_h=1), Signal.MARGINAL, NOW)
    login, *data = wt.server.requests
    assert login.path == "/login"
    expected = base64.b64encode(f"{wt.username}:{wt.password}".encode()).decode()
    assert login.header("authorization") == f"Basic {expected}"
    assert data and all(r.header("authorization") == f"Bearer {wt.issued[0]}" for r in data)


def test_token_is_reused_then_renewed_before_it_expires(wt: FakeWattTime) -> None:
    tick = Ticker()
    src = source(wt, monotonic=tick)
    src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    tick.t += 20 * 60
    src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    assert wt.logins == 1
    tick.t += 9 * 60  # 29 minutes after login: inside the renewal margin of a 30-minute token
    src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    assert wt.logins == 2
    last = wt.server.requests[-1]
    assert last.header("authorization") == f"Bearer {wt.issued[1]}"
    assert all(
        r.path == "/login" or r.header("authorization") != f"Bearer {wt.issued[0]}"
        for r in wt.server.requests[-2:]
    )


def test_a_401_on_data_logs_in_again_once(wt: FakeWattTime) -> None:
    src = source(wt)
    src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    wt.revoke_tokens()  # expired early, or revoked
    series = src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    assert series.is_complete
    assert wt.logins == 2
    paths = [r.path for r in wt.server.requests]
    assert paths == ["/login", "/v3/forecast", "/v3/forecast", "/login", "/v3/forecast"]


def test_wrong_password_is_one_auth_error_without_the_password(wt: FakeWattTime) -> None:
    wrong = "not-the-password-77ab"
    with pytest.raises(SourceError) as info:
        source(wt, password=wrong).fetch(CAISO, around(before_h=1, after_h=1), Signal.MARGINAL, NOW)
    assert info.value.auth
    assert info.value.reason == f"credentials rejected (HTTP 401); check {HINT}"
    assert wrong not in str(info.value)
    assert [r.path for r in wt.server.requests] == ["/login"]  # no retry with a wrong password


def test_region_from_location_is_looked_up_once(wt: FakeWattTime) -> None:
    src = source(wt)
    zone = GridZone("amherst", lat=42.372, lon=-72.519)
    assert src.supports(zone, Signal.MARGINAL)
    for _ in range(2):
        assert src.fetch(zone, around(after_h=1), Signal.MARGINAL, NOW).is_complete
    (lookup,) = wt.server.requests_to("region-from-loc")
    assert lookup.query["latitude"] == ["42.3720"] and lookup.query["signal_type"] == ["co2_moer"]
    assert {r.query["region"][0] for r in wt.server.requests_to("/v3/forecast")} == {"ISONE_WCMA"}


def test_no_region_and_no_coordinates_is_not_supported(wt: FakeWattTime) -> None:
    src = source(wt)
    assert not src.supports(GridZone("DE"), Signal.MARGINAL)
    with pytest.raises(SourceError) as info:
        src.fetch(GridZone("DE"), around(after_h=1), Signal.MARGINAL, NOW)
    assert info.value.unknown_zone


def test_location_without_a_region(wt: FakeWattTime) -> None:
    with pytest.raises(SourceError) as info:
        source(wt).fetch(GridZone("atlantic", lat=30.0, lon=-40.0), around(after_h=1), Signal.MARGINAL, NOW)
    assert info.value.unknown_zone and "atlantic" in info.value.reason


def test_unknown_region(wt: FakeWattTime) -> None:
    with pytest.raises(SourceError) as info:
        source(wt).fetch(
            GridZone("X", watttime_region="NOPE"), around(before_h=1, after_h=1), Signal.MARGINAL, NOW
        )
    assert info.value.unknown_zone and "NOPE" in info.value.reason


def test_long_history_is_asked_in_30_day_chunks(wt: FakeWattTime) -> None:
    series = source(wt).fetch(CAISO, TimeSpan(NOW - timedelta(days=40), NOW), Signal.MARGINAL, NOW)
    assert series.is_complete
    chunks = wt.server.requests_to("historical")
    assert len(chunks) == 2
    assert all(utc(r.query["end"][0]) - utc(r.query["start"][0]) <= timedelta(days=30) for r in chunks)


def test_signal_index(wt: FakeWattTime) -> None:
    wt.signal_index_value = 82.5
    index = source(wt).signal_index(CAISO, NOW)
    assert (index.region, index.percentile) == ("CAISO_NORTH", 82.5)


def test_from_settings_needs_username_and_password(wt: FakeWattTime) -> None:
    assert WattTimeSource.from_settings(Settings(watttime_username="someone")) is None
    src = WattTimeSource.from_settings(Settings(**wt.settings_overrides()))
    assert src is not None
    assert wt.password not in repr(src)
    assert src.fetch(CAISO, around(after_h=1), Signal.AVERAGE, NOW).is_complete


# ---- faults ---------------------------------------------------------------------------------------
def test_unexpected_units_are_refused(wt: FakeWattTime, fake_http: FakeHttpServer) -> None:
    _serve(fake_http, "/login", "watttime_v3_login.json")
    fake_http.route(
        r"/v3/forecast",
        lambda req: FakeResponse.json(
            {"data": [{"point_time": "2026-03-01T12:20:00Z", "value": 5}], "meta": {"units": "kg_per_kwh"}}
        ),
    )
    src = WattTimeSource("u", "p4ssw0rd", base_url=fake_http.url, http=client("watttime"))
    with pytest.raises(SourceError, match="units"):
        src.fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)


def test_absurd_values_dropped(wt: FakeWattTime) -> None:
    bad = int((NOW + timedelta(minutes=10)).timestamp()) // 300 * 300
    wt.value = lambda region, st, t: 1e7 if t == bad else default_value(region, st, t)
    series = source(wt).fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)
    assert np.isnan(value_at(series, NOW + timedelta(minutes=10)))
    assert "1 out-of-range value dropped" in note_at(series, NOW + timedelta(minutes=30))


def test_login_answer_without_token(wt: FakeWattTime) -> None:
    wt.server.fault("/login", json_body={"message": "ok"})
    with pytest.raises(SourceError, match="without a token"):
        source(wt).fetch(CAISO, around(after_h=1), Signal.MARGINAL, NOW)


def test_history_times_out_forecast_kept(wt: FakeWattTime) -> None:
    wt.server.fault("historical", delay_s=1.0, times=5)
    src = WattTimeSource(
        wt.username,
        wt.password,
        base_url=wt.base_url,
        http=client("watttime", read_timeout_s=0.2, max_retries=0),
    )
    series = src.fetch(CAISO, around(before_h=1, after_h=1), Signal.MARGINAL, NOW)
    assert np.isnan(value_at(series, NOW - timedelta(minutes=30)))
    assert not np.isnan(value_at(series, NOW + timedelta(minutes=30)))
    assert "history unavailable: no answer within 0.2 s" in note_at(series, NOW + timedelta(minutes=30))


def test_a_dead_source_costs_at_most_the_budget(dead_url: str) -> None:
    src = WattTimeSource("u", "p4ssw0rd", base_url=dead_url, http=client("watttime", budget_s=1.5))
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.fetch(CAISO, around(before_h=24 * 60, after_h=24), Signal.MARGINAL, NOW)
    assert time.monotonic() - t0 < 1.5 + 0.5
    assert "connection refused" in info.value.reason
