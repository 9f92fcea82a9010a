"""A Carbon Aware SDK WebAPI that an organisation hosts (Green Software Foundation,
github.com/Green-Software-Foundation/carbon-aware-sdk; MIT).

API as documented (casdk-docs/docs/tutorial-basics/carbon-aware-webapi.md) and as the WebAPI's models
bind it (src/CarbonAware.WebApi/src/Models/Parameters.EmissionsDataForLocationsDTO.cs,
Parameters.EmissionsForecastCurrentDTO.cs, EmissionsDataDTO.cs):
- `GET /emissions/bylocations?location=L&time=T&toTime=T` -> `[{location, time, rating, duration}]`:
  observed values in g/kWh; `duration` is a .NET TimeSpan (`"00:05:00"`, `"1.00:00:00"`);
- `GET /emissions/forecasts/current?location=L&dataStartAt=T&dataEndAt=T` -> `[{location, generatedAt,
  forecastData: [{location, timestamp, duration (minutes), value}], optimalDataPoints, ...}]`.
  `dataStartAt`/`dataEndAt` "must be within the forecast data point timestamps", so when the asked
  span reaches beyond the forecast the WebAPI answers 400; the forecast is then asked for whole and
  clipped here.
Locations are the SDK's own names (cloud regions such as `eastus`, or whatever its location files
define), so the location sent is the zone's cloud region when the zone came from one, else the zone id.
The SDK serves whichever signal its data source gives (WattTime: marginal; Electricity Maps: average);
which one is a setting (CARBONSHIFT_CARBON_AWARE_SDK_SIGNAL), and the source answers only that signal.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.http import HttpClient, HttpError, HttpFactory, http_factory_from_settings
from carbonshift.intensity.sources._live import (
    BadBody,
    Parts,
    SeriesAssembler,
    as_dict,
    as_list,
    for_zone,
    iso_z,
    parse_time_s,
)
from carbonshift.intensity.types import Basis, GridZone, IntensitySeries, Kind, Signal, TimeSpan
from carbonshift.timeutil import to_epoch_s

if TYPE_CHECKING:
    from carbonshift.config.settings import Settings

NAME = "carbon_aware_sdk"
API = "the Carbon Aware SDK"
# .NET TimeSpan "[-][d.]hh:mm:ss[.fffffff]"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


class CarbonAwareSdkSource:
    """Live intensity from a hosted Carbon Aware SDK WebAPI (one signal, set in the settings)."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        *,
        signal: Signal = Signal.MARGINAL,
        basis: Basis | None = None,
        http: HttpClient,
        max_g_per_kwh: float = 2500.0,
    ) -> None:
        if not base_url:
            raise ValueError("the Carbon Aware SDK source needs the WebAPI's URL")
        self.base_url = base_url.rstrip("/")
        self.signal = signal
        # the SDK passes its data source's numbers on without saying what they count: WattTime's
        # marginal rates are direct, Electricity Maps' averages lifecycle; a setting overrides
        self.basis = basis or (Basis.DIRECT if signal is Signal.MARGINAL else Basis.LIFECYCLE)
        self._http = http
        self.max_g_per_kwh = max_g_per_kwh

    def __repr__(self) -> str:
        return f"CarbonAwareSdkSource(signal={self.signal.value})"

    @classmethod
    def from_settings(
        cls, settings: Settings, http_factory: HttpFactory | None = None
    ) -> CarbonAwareSdkSource | None:
        """The source, or None unless CARBONSHIFT_CARBON_AWARE_SDK_URL is set."""
        if not settings.carbon_aware_sdk_url:
            return None
        factory = http_factory or http_factory_from_settings(settings)
        return cls(
            settings.carbon_aware_sdk_url,
            signal=settings.carbon_aware_sdk_signal,
            basis=settings.carbon_aware_sdk_basis,
            http=factory(NAME, None),
            max_g_per_kwh=settings.intensity.max_g_per_kwh,
        )

    @staticmethod
    def location(zone: GridZone) -> str:
        return zone.cloud_region or zone.id

    @classmethod
    def place_key(cls, zone: GridZone) -> str:
        """The SDK is asked by location name, so that is what its cached answers are keyed by."""
        return cls.location(zone)

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        return signal is self.signal

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        if signal is not self.signal:
            raise SourceError(NAME, f"this Carbon Aware SDK serves the {self.signal.value} signal only")
        out = SeriesAssembler(NAME, zone.id, signal, now, self.max_g_per_kwh, self.basis)
        parts = Parts(NAME)
        now_s = to_epoch_s(now)
        with self._http.budget():
            if span.start_s < now_s:
                parts.run("history", partial(self._observed, zone, span.start_s, min(span.end_s, now_s), out))
            if span.end_s > now_s:
                parts.run(
                    "forecast", partial(self._forecast, zone, max(span.start_s, now_s), span.end_s, out)
                )
        parts.finish(out)
        return out.build(span)

    def _get(self, zone: GridZone, path: str, params: dict[str, str]) -> Any:
        try:
            return self._http.get_json(f"{self.base_url}{path}", params=params)
        except SourceError as exc:
            raise for_zone(exc, zone, API) from None

    def _observed(self, zone: GridZone, lo: int, hi: int, out: SeriesAssembler) -> None:
        params = {"location": self.location(zone), "time": iso_z(lo), "toTime": iso_z(hi)}
        items = [
            as_dict(i, "an emissions entry")
            for i in as_list(self._get(zone, "/emissions/bylocations", params), "the answer")
        ]
        starts = sorted(parse_time_s(i.get("time")) for i in items)
        fallback = _typical_step(starts)
        for item in items:
            start = parse_time_s(item.get("time"))
            step = _timespan_s(item.get("duration")) or fallback
            out.add(start, start + step, item.get("rating"), Kind.MEASURED)

    def _forecast(self, zone: GridZone, lo: int, hi: int, out: SeriesAssembler) -> None:
        loc = self.location(zone)
        params = {"location": loc, "dataStartAt": iso_z(lo), "dataEndAt": iso_z(hi)}
        try:
            body = self._get(zone, "/emissions/forecasts/current", params)
        except HttpError as exc:
            if exc.status != 400 or exc.unknown_zone:
                raise
            # the span reaches past the forecast's own ends: ask for all of it and clip here
            body = self._get(zone, "/emissions/forecasts/current", {"location": loc})
        forecasts = [as_dict(f, "a forecast") for f in as_list(body, "the answer")]
        for forecast in forecasts:
            for raw in as_list(forecast.get("forecastData", []), "forecastData"):
                point = as_dict(raw, "a forecast point")
                start = parse_time_s(point.get("timestamp"))
                minutes = point.get("duration")
                if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
                    raise BadBody("forecast point duration is not a positive number of minutes")
                out.add(start, start + int(minutes * 60), point.get("value"), Kind.FORECAST)


def _timespan_s(value: object) -> int | None:
    """Seconds in a .NET TimeSpan string ("00:05:00", "1.00:00:00"), or minutes as a number."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 60) if value > 0 else None
    if not isinstance(value, str):
        raise BadBody("duration is neither a TimeSpan nor a number")
    m = _TIMESPAN.match(value.strip())
    if not m:
        raise BadBody(f"duration {value[:20]!r} is not a TimeSpan")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total or None


def _typical_step(starts: list[int]) -> int:
    """When an entry has no duration: the usual spacing of the entries, else 5 minutes (WattTime's step)."""
    gaps = sorted(b - a for a, b in pairwise(starts) if b > a)
    return gaps[len(gaps) // 2] if gaps else 300
