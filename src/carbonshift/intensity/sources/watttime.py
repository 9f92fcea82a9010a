"""WattTime v3: marginal (MOER) and average (AOER) emissions rates per balancing-authority region.

API as documented (https://docs.watttime.org, OpenAPI "WattTime Data API" V3; login and chunking as in
WattTime's own python client, github.com/WattTime/watttime-python-client, watttime/api.py):
- `GET /login` with HTTP basic auth -> `{"token": "<JWT>"}`, valid for 30 minutes; every other call
  sends `Authorization: Bearer <token>`. The token is renewed shortly before it expires, and once more
  when a call answers 401 anyway (a token revoked or expired early);
- `GET /v3/forecast?region=R&signal_type=S[&horizon_hours=H]` -> `{data: [{point_time, value}],
  meta: {data_point_period_seconds, region, signal_type, units, generated_at, ...}}` (24-72 h ahead);
- `GET /v3/historical?region=R&signal_type=S&start=T&end=T` -> `{data: [{point_time, value,
  imputed_data_used?}], meta}`; the official client asks at most 30 days per request, and so do we;
- `GET /v3/signal-index?region=R&signal_type=co2_moer` -> `{data: [{point_time, value}], meta:
  {units: "percentile"}}`: where "now" stands among the coming day's values (0 clean .. 100 dirty);
- `GET /v3/region-from-loc?latitude=..&longitude=..&signal_type=S` -> `{region, region_full_name,
  signal_type}`, used when a zone has no WattTime region but has coordinates; cached per location.
Signals: marginal = `co2_moer`, average = `co2_aoer`. Values come in lbs CO2 per MWh and are converted
to g/kWh (1 lb/MWh = 453.59237 g / 1000 kWh = 0.45359237 g/kWh). Each value holds for
`meta.data_point_period_seconds` (5 minutes in practice). The rate limit (3,000 requests per 5 minutes,
100 logins per 5 minutes) is far above what one command needs; a 429 is handled by the HTTP client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.http import HttpClient, HttpError, HttpFactory, http_factory_from_settings
from carbonshift.intensity.sources._live import (
    BadBody,
    Parts,
    SeriesAssembler,
    as_dict,
    as_list,
    chunks,
    for_zone,
    iso_z,
    parse_time_s,
)
from carbonshift.intensity.types import Basis, GridZone, IntensitySeries, Kind, Signal, TimeSpan
from carbonshift.timeutil import from_epoch_s, to_epoch_s

if TYPE_CHECKING:
    from carbonshift.config.settings import Settings

NAME = "watttime"
API = "WattTime"
DEFAULT_URL = "https://api.watttime.org"
CREDENTIAL_SETTINGS = "CARBONSHIFT_WATTTIME_USERNAME and CARBONSHIFT_WATTTIME_PASSWORD"
LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
TOKEN_LIFETIME_S = 30 * 60
TOKEN_RENEW_MARGIN_S = 120  # renew this long before expiry, so a token never lapses mid-fetch
LOGIN_REFUSED_MEMORY_S = 300  # rejected credentials are not tried again this soon (login is rate limited)
HISTORICAL_MAX_S = 30 * 24 * 3600
FORECAST_MAX_H = 72
DEFAULT_PERIOD_S = 300
SIGNAL_TYPES = {Signal.MARGINAL: "co2_moer", Signal.AVERAGE: "co2_aoer"}
KNOWN_UNITS = ("lbs_co2_per_mwh", "lbs_per_mwh")


@dataclass(frozen=True)
class SignalIndex:
    """Where the current marginal rate stands among the coming day's (0 cleanest .. 100 dirtiest)."""

    region: str
    percentile: float
    point_time: datetime


class WattTimeSource:
    """Live WattTime v3 intensity, marginal or average."""

    name = NAME

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str = DEFAULT_URL,
        http: HttpClient,
        max_g_per_kwh: float = 2500.0,
        token_lifetime_s: float = TOKEN_LIFETIME_S,
        renew_margin_s: float = TOKEN_RENEW_MARGIN_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not username or not password:
            raise ValueError("WattTime needs a username and a password")
        self._username = username
        self._password = password
        self.base_url = base_url.rstrip("/")
        self._http = http
        self.max_g_per_kwh = max_g_per_kwh
        self.token_lifetime_s = token_lifetime_s
        self.renew_margin_s = renew_margin_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires: float = 0.0
        self._regions: dict[tuple[float, float, str], str] = {}
        self._login_refused: tuple[float, SourceError] | None = None
        self.logins = 0  # how often this source has logged in (for tests and debug output)

    def __repr__(self) -> str:  # never the credentials
        return f"WattTimeSource(base_url={self.base_url!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, http_factory: HttpFactory | None = None
    ) -> WattTimeSource | None:
        """The source, or None unless both username and password are configured."""
        password = settings.watttime_password.get_secret_value() if settings.watttime_password else ""
        if not settings.watttime_username or not password:
            return None
        factory = http_factory or http_factory_from_settings(settings)
        return cls(
            settings.watttime_username,
            password,
            base_url=settings.watttime_url,
            http=factory(NAME, CREDENTIAL_SETTINGS),
            max_g_per_kwh=settings.intensity.max_g_per_kwh,
        )

    @staticmethod
    def place_key(zone: GridZone) -> str:
        """What identifies a place to WattTime (its own region, else the coordinates), for caching:
        one Electricity Maps zone can span several WattTime regions."""
        if zone.watttime_region:
            return f"{zone.id}|{zone.watttime_region}"
        return f"{zone.id}|{zone.lat},{zone.lon}"

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        return signal in SIGNAL_TYPES and (
            zone.watttime_region is not None or (zone.lat is not None and zone.lon is not None)
        )

    # ---- the series -----------------------------------------------------------------------------
    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        signal_type = SIGNAL_TYPES[signal]
        # MOER and the average are combustion CO2 of the plants on the margin / in the mix: direct
        out = SeriesAssembler(NAME, zone.id, signal, now, self.max_g_per_kwh, Basis.DIRECT)
        parts = Parts(NAME)
        now_s = to_epoch_s(now)
        with self._http.budget():
            region = self.region_for(zone, signal)
            if span.start_s < now_s:
                for lo, hi in chunks(span.start_s, min(span.end_s, now_s), HISTORICAL_MAX_S):
                    parts.run("history", partial(self._historical, zone, region, signal_type, lo, hi, out))
                    if parts.errors and parts.errors[-1][1].auth:
                        break  # no access to history: the next chunks would be refused alike
            if span.end_s > now_s:
                hours = min(FORECAST_MAX_H, max(1, -(-(span.end_s - now_s) // 3600)))
                parts.run("forecast", partial(self._forecast, zone, region, signal_type, hours, out))
        parts.finish(out)
        return out.build(span)

    def _historical(
        self, zone: GridZone, region: str, signal_type: str, lo: int, hi: int, out: SeriesAssembler
    ) -> None:
        body = self._get(
            zone,
            "/v3/historical",
            {"region": region, "signal_type": signal_type, "start": iso_z(lo), "end": iso_z(hi)},
        )
        self._add_all(body, signal_type, Kind.MEASURED, out)

    def _forecast(
        self, zone: GridZone, region: str, signal_type: str, hours: int, out: SeriesAssembler
    ) -> None:
        body = self._get(
            zone, "/v3/forecast", {"region": region, "signal_type": signal_type, "horizon_hours": str(hours)}
        )
        self._add_all(body, signal_type, Kind.FORECAST, out)

    def _add_all(self, body: dict[str, Any], signal_type: str, kind: Kind, out: SeriesAssembler) -> None:
        meta = as_dict(body.get("meta", {}), "meta")
        got_type = meta.get("signal_type")
        if got_type is not None and got_type != signal_type:
            raise BadBody(f"asked for {signal_type}, got {str(got_type)[:30]}")
        units = meta.get("units")
        if units is not None and units not in KNOWN_UNITS:
            raise BadBody(f"units {str(units)[:30]!r}, expected lbs_co2_per_mwh")
        period = meta.get("data_point_period_seconds", DEFAULT_PERIOD_S)
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise BadBody("meta.data_point_period_seconds is not a positive number")
        step = int(period)
        for raw in as_list(body.get("data"), "data"):
            item = as_dict(raw, "a data point")
            start = parse_time_s(item.get("point_time"))
            value = item.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = float(value) * LBS_PER_MWH_TO_G_PER_KWH
            note = "imputed by WattTime" if item.get("imputed_data_used") is True else ""
            out.add(start, start + step, value, kind, note)

    # ---- signal index and region ----------------------------------------------------------------
    def signal_index(self, zone: GridZone, now: datetime) -> SignalIndex:
        """The current percentile of the marginal rate for the zone's region (WattTime's index is
        defined for co2_moer only). Raises SourceError."""
        with self._http.budget():
            region = self.region_for(zone, Signal.MARGINAL)
            body = self._get(zone, "/v3/signal-index", {"region": region, "signal_type": "co2_moer"})
        try:
            data = as_list(body.get("data"), "data")
            if not data:
                raise SourceError(NAME, f"no signal index for region {region} at {now:%Y-%m-%d %H:%M}Z")
            latest = max(
                (as_dict(d, "a data point") for d in data), key=lambda d: parse_time_s(d.get("point_time"))
            )
            value = latest.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
                raise BadBody(f"percentile {str(value)[:20]!r} is not between 0 and 100")
            return SignalIndex(region, float(value), from_epoch_s(parse_time_s(latest.get("point_time"))))
        except BadBody as exc:
            raise SourceError(NAME, f"unexpected signal-index answer: {exc}") from None

    def region_for(self, zone: GridZone, signal: Signal) -> str:
        """The zone's WattTime region: its own when known, else looked up (once) from lat/lon."""
        if zone.watttime_region:
            return zone.watttime_region
        if zone.lat is None or zone.lon is None:
            raise SourceError(
                NAME, f"zone {zone.id} has no WattTime region and no coordinates", unknown_zone=True
            )
        signal_type = SIGNAL_TYPES[signal]
        key = (round(zone.lat, 4), round(zone.lon, 4), signal_type)
        with self._lock:
            cached = self._regions.get(key)
        if cached is not None:
            return cached
        body = self._get(
            zone,
            "/v3/region-from-loc",
            {"latitude": f"{zone.lat:.4f}", "longitude": f"{zone.lon:.4f}", "signal_type": signal_type},
        )
        region = body.get("region")
        if not isinstance(region, str) or not region:
            raise SourceError(NAME, "region-from-loc answered without a region")
        with self._lock:
            self._regions[key] = region
        return region

    # ---- auth -----------------------------------------------------------------------------------
    def _get(self, zone: GridZone, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            headers = self._auth_header()  # a refused login is final: no second try
            try:
                body = self._http.get_json(url, params=params, headers=headers)
            except HttpError as exc:
                if exc.status != 401:
                    raise
                # the token was refused although we thought it valid: log in again, once
                self._forget_token()
                body = self._http.get_json(url, params=params, headers=self._auth_header())
        except SourceError as exc:
            raise for_zone(exc, zone, API) from None
        try:
            return as_dict(body, "the answer")
        except BadBody as exc:
            raise SourceError(NAME, f"unexpected answer from {path}: {exc}") from None

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._valid_token()}"}

    def _valid_token(self) -> str:
        with self._lock:
            if self._token is not None and self._monotonic() < self._token_expires - self.renew_margin_s:
                return self._token
            # one login at a time; other threads wait for its token rather than logging in too
            issued_at = self._monotonic()
            if (
                self._login_refused is not None
                and issued_at < self._login_refused[0] + LOGIN_REFUSED_MEMORY_S
            ):
                raise self._login_refused[1]  # the same credentials would be refused again
            try:
                body = self._http.get_json(f"{self.base_url}/login", auth=(self._username, self._password))
            except SourceError as exc:
                if exc.auth:
                    self._login_refused = (issued_at, exc)
                raise
            token = body.get("token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise SourceError(NAME, "login answered without a token")
            self.logins += 1
            self._token = token
            self._token_expires = issued_at + self.token_lifetime_s
            return token

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None
            self._token_expires = 0.0
