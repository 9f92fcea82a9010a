"""Electricity Maps v3: average (consumption-based, lifecycle) carbon intensity per zone.

API as documented (https://portal.electricitymaps.com/docs/api, v3; shapes checked against the
docs' examples and the Green Software Foundation Carbon Aware SDK's Electricity Maps client test data,
src/CarbonAware.DataSources/CarbonAware.DataSources.ElectricityMaps/test/Client/TestData.cs):
- auth: header `auth-token: <token>` on every request;
- `GET /carbon-intensity/latest?zone=Z` -> `{zone, carbonIntensity, datetime, isEstimated,
  estimationMethod?, temporalGranularity?}`: the current interval;
- `GET /carbon-intensity/history?zone=Z` -> `{zone, history: [{carbonIntensity, datetime,
  isEstimated, estimationMethod, ...}]}`: the last 24 hours, hourly;
- `GET /carbon-intensity/past-range?zone=Z&start=T&end=T` -> `{zone, data: [...], temporalGranularity}`:
  older history; at most 10 days per request at hourly granularity (100 days daily), so longer ranges
  are asked in 10-day chunks;
- `GET /carbon-intensity/forecast?zone=Z[&horizonHours=6|24|48|72]` -> `{zone, forecast:
  [{carbonIntensity, datetime}], updatedAt}`: 24 hours by default, up to 72.
`datetime` is the start of an interval whose length is `temporalGranularity` (hourly unless said
otherwise). Electricity Maps serves the average signal only, so a marginal request is not supported.
Plans differ in what a token may call: a 401/403 on one endpoint (say the forecast on a free plan)
leaves the others' values in place, with the reason in their notes.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.http import HttpClient, HttpFactory, http_factory_from_settings
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
from carbonshift.timeutil import to_epoch_s

if TYPE_CHECKING:
    from carbonshift.config.settings import Settings

NAME = "electricitymaps"
API = "Electricity Maps"
DEFAULT_URL = "https://api.electricitymaps.com/v3"
TOKEN_SETTING = "CARBONSHIFT_ELECTRICITYMAPS_TOKEN"
HISTORY_WINDOW_S = 24 * 3600
PAST_RANGE_MAX_S = 10 * 24 * 3600
FORECAST_HORIZONS_H = (24, 48, 72)
ZONE_KEY = re.compile(r"^[A-Z]{2}(-[A-Z0-9]+)*$")
GRANULARITY_S = {
    "5_minutes": 300,
    "15_minutes": 900,
    "hourly": 3600,
    "daily": 86400,
}


class ElectricityMapsSource:
    """Live Electricity Maps v3 intensity (average signal)."""

    name = NAME

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_URL,
        http: HttpClient,
        max_g_per_kwh: float = 2500.0,
    ) -> None:
        if not token:
            raise ValueError("Electricity Maps needs a token")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._http = http
        self.max_g_per_kwh = max_g_per_kwh

    def __repr__(self) -> str:  # never the token
        return f"ElectricityMapsSource(base_url={self.base_url!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, http_factory: HttpFactory | None = None
    ) -> ElectricityMapsSource | None:
        """The source, or None when no token is configured (the source is then off)."""
        if settings.electricitymaps_token is None:
            return None
        token = settings.electricitymaps_token.get_secret_value()
        if not token:
            return None
        factory = http_factory or http_factory_from_settings(settings)
        return cls(
            token,
            base_url=settings.electricitymaps_url,
            http=factory(NAME, TOKEN_SETTING),
            max_g_per_kwh=settings.intensity.max_g_per_kwh,
        )

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        # Electricity Maps zone keys look like DE, US-CAL-CISO, IN-NO; a user's own zone name
        # (madrid-lab) or the GB API's GB-UKCI-* zones are not worth a request
        return (
            signal is Signal.AVERAGE
            and bool(ZONE_KEY.match(zone.id))
            and not zone.id.upper().startswith("GB-UKCI-")
        )

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        if signal is not Signal.AVERAGE:
            raise SourceError(NAME, "Electricity Maps serves the average signal only")
        # lifecycle unless the answer says otherwise (emissionFactorType), as Electricity Maps documents
        out = SeriesAssembler(NAME, zone.id, signal, now, self.max_g_per_kwh, Basis.LIFECYCLE)
        parts = Parts(NAME)
        now_s = to_epoch_s(now)
        start, end = span.start_s, span.end_s
        recent_from = now_s - HISTORY_WINDOW_S
        with self._http.budget():
            if start < min(end, recent_from):  # older than the last 24 h: past-range, in chunks
                for lo, hi in chunks(start, min(end, recent_from), PAST_RANGE_MAX_S):
                    parts.run("history", partial(self._past_range, zone, lo, hi, out))
                    if parts.errors and parts.errors[-1][1].auth:
                        break  # the plan has no past-range; the other chunks would fail alike
            if start < now_s and end > recent_from:
                parts.run("recent history", lambda: self._history(zone, out))
            current = now_s - now_s % 3600
            if start < current + 3600 and end > current:
                parts.run("latest value", lambda: self._latest(zone, out))
            if end > now_s:
                hours = -(-(end - now_s) // 3600)
                parts.run("forecast", lambda: self._forecast(zone, hours, out))
        parts.finish(out)  # raises when nothing came back
        return out.build(span)

    # ---- endpoints ------------------------------------------------------------------------------
    def _get(self, zone: GridZone, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            body = self._http.get_json(
                f"{self.base_url}{path}",
                params={"zone": zone.id, **params},
                headers={"auth-token": self._token},
            )
        except SourceError as exc:
            raise for_zone(exc, zone, API) from None
        return as_dict(body, "the answer")

    def _past_range(self, zone: GridZone, lo: int, hi: int, out: SeriesAssembler) -> None:
        body = self._get(zone, "/carbon-intensity/past-range", {"start": iso_z(lo), "end": iso_z(hi)})
        self._add_all(as_list(body.get("data"), "data"), body, Kind.MEASURED, out)

    def _history(self, zone: GridZone, out: SeriesAssembler) -> None:
        body = self._get(zone, "/carbon-intensity/history", {})
        self._add_all(as_list(body.get("history"), "history"), body, Kind.MEASURED, out)

    def _latest(self, zone: GridZone, out: SeriesAssembler) -> None:
        body = self._get(zone, "/carbon-intensity/latest", {})
        self._add_all([body], body, Kind.MEASURED, out)

    def _forecast(self, zone: GridZone, hours: int, out: SeriesAssembler) -> None:
        params: dict[str, str] = {}
        if hours > FORECAST_HORIZONS_H[0]:  # the default (24 h) needs no parameter, which every plan accepts
            params["horizonHours"] = str(
                next((h for h in FORECAST_HORIZONS_H if h >= hours), FORECAST_HORIZONS_H[-1])
            )
        body = self._get(zone, "/carbon-intensity/forecast", params)
        self._add_all(as_list(body.get("forecast"), "forecast"), body, Kind.FORECAST, out)

    def _add_all(self, items: list[Any], body: dict[str, Any], kind: Kind, out: SeriesAssembler) -> None:
        default_step = _granularity_s(body.get("temporalGranularity"))
        for raw in items:
            item = as_dict(raw, "an entry")
            start = parse_time_s(item.get("datetime"))
            step = _granularity_s(item.get("temporalGranularity"), default_step)
            note = ""
            if item.get("isEstimated") is True:
                method = item.get("estimationMethod")
                note = (
                    f"estimated by Electricity Maps ({method})"
                    if isinstance(method, str)
                    else "estimated by Electricity Maps"
                )
            stated = _basis(item)
            if stated is not None:  # the account's factors: entries that do not say (forecasts) share them
                out.basis = stated
            out.add(start, start + step, item.get("carbonIntensity"), kind, note, stated)


def _basis(item: dict[str, Any]) -> Basis | None:
    """An entry's `emissionFactorType` (lifecycle or direct); absent means the account's default."""
    value = item.get("emissionFactorType")
    if value is None:
        return None
    if value not in ("lifecycle", "direct"):
        raise BadBody(f"emissionFactorType {str(value)[:20]!r} is neither lifecycle nor direct")
    return Basis(value)


def _granularity_s(value: object, default: int = 3600) -> int:
    if value is None:
        return default
    if not isinstance(value, str) or value not in GRANULARITY_S:
        raise BadBody(f"temporalGranularity {str(value)[:20]!r} is not one this client knows")
    return GRANULARITY_S[value]
