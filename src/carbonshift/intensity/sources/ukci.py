"""The GB Carbon Intensity API (National Energy System Operator, api.carbonintensity.org.uk; no key;
data under CC BY 4.0, attribute "National Grid ESO Carbon Intensity API").

API as documented (https://carbon-intensity.github.io/api-definitions/), half-hour slots
`{from, to, intensity: {forecast, actual?, index}}` in gCO2/kWh:
- national: `GET /intensity/{from}/{to}` (history, and the forecast where it reaches) and
  `GET /intensity/{from}/fw48h` (48 h ahead) -> `{data: [slot, ...]}`; past slots carry `actual`
  (the outturn estimate) once published, `null` before that;
- regional, by region id (1..17 DNO regions; 18 England, 19 Scotland, 20 Wales):
  `GET /regional/intensity/{from}/{to}/regionid/{id}` and `.../{from}/fw48h/regionid/{id}`;
- regional, by outward postcode (e.g. NG1, RG10): the same with `/postcode/{outward}`.
Times in the path are ISO 8601 `YYYY-MM-DDThh:mmZ`. A `{from}/{to}` range may span at most 14 days
(documented for /intensity; the regional ranges are asked in the same chunks).
The regional bodies nest `data` differently from the national one, and from each other: a range by
region id or postcode answers `{data: {regionid, shortname, postcode?, data: [slot, ...]}}` (an
object), the current-postcode and all-regions forms answer `{data: [{regionid, ..., data: [...]}]}`
(a list of region objects); both are read. Regional values are forecasts only, also for past slots
(no regional outturn is published), so they are marked `forecast` with a note saying so.

Zone ids this source answers: `GB` (national), `GB-UKCI-<region id>` and `GB-UKCI-<OUTWARD POSTCODE>`
(e.g. `GB-UKCI-13` for London, `GB-UKCI-NG1`). Average signal only.
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

NAME = "ukci"
API = "the GB Carbon Intensity API"
DEFAULT_URL = "https://api.carbonintensity.org.uk"
NATIONAL_ZONE = "GB"
ZONE_PREFIX = "GB-UKCI-"
RANGE_MAX_S = 14 * 24 * 3600
FORWARD_S = 48 * 3600
SLOT_S = 1800
MAX_REGION_ID = 20
_OUTWARD = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
_REGIONAL_NOTE = "regional values are forecasts; no regional outturn is published"
_NO_ACTUAL_NOTE = "no outturn published yet; forecast value"


class UkCarbonIntensitySource:
    """Live national and regional GB intensity (average signal)."""

    name = NAME

    def __init__(
        self, *, base_url: str = DEFAULT_URL, http: HttpClient, max_g_per_kwh: float = 2500.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self.max_g_per_kwh = max_g_per_kwh

    def __repr__(self) -> str:
        return f"UkCarbonIntensitySource(base_url={self.base_url!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, http_factory: HttpFactory | None = None
    ) -> UkCarbonIntensitySource | None:
        """The source, or None when switched off (CARBONSHIFT_UKCI_ENABLED=false)."""
        if not settings.ukci_enabled:
            return None
        factory = http_factory or http_factory_from_settings(settings)
        return cls(
            base_url=settings.ukci_url,
            http=factory(NAME, None),
            max_g_per_kwh=settings.intensity.max_g_per_kwh,
        )

    @staticmethod
    def target(zone_id: str) -> tuple[str, str] | None:
        """("national", ""), ("regionid", "13") or ("postcode", "NG1") for a zone id; None if not ours."""
        zid = zone_id.strip().upper()
        if zid == NATIONAL_ZONE:
            return ("national", "")
        if not zid.startswith(ZONE_PREFIX):
            return None
        rest = zid[len(ZONE_PREFIX) :]
        if rest.isdigit():
            return ("regionid", str(int(rest))) if 1 <= int(rest) <= MAX_REGION_ID else None
        return ("postcode", rest) if _OUTWARD.match(rest) else None

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        return signal is Signal.AVERAGE and self.target(zone.id) is not None

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        target = self.target(zone.id)
        if signal is not Signal.AVERAGE or target is None:
            raise SourceError(NAME, f"zone {zone.id} is not a GB zone this API serves", unknown_zone=True)
        kind, key = target
        # "CO2 emissions related to electricity generation only" (NESO's methodology): direct
        out = SeriesAssembler(NAME, zone.id, signal, now, self.max_g_per_kwh, Basis.DIRECT)
        parts = Parts(NAME)
        now_s = to_epoch_s(now)
        # ask from a slot boundary: the API may also return the slot ending at {from}; extra slots are clipped
        start = span.start_s - span.start_s % SLOT_S
        with self._http.budget():
            if start < now_s:
                for lo, hi in chunks(start, min(span.end_s, now_s), RANGE_MAX_S):
                    path = f"{iso_z(lo, seconds=False)}/{iso_z(hi, seconds=False)}"
                    parts.run("history", partial(self._slots, zone, kind, key, path, now_s, out))
            if span.end_s > now_s:
                lo = max(start, now_s - now_s % SLOT_S)
                if lo < now_s + FORWARD_S:
                    path = f"{iso_z(lo, seconds=False)}/fw48h"
                    parts.run("forecast", partial(self._slots, zone, kind, key, path, now_s, out))
        parts.finish(out)
        return out.build(span)

    def _slots(
        self, zone: GridZone, kind: str, key: str, times: str, now_s: int, out: SeriesAssembler
    ) -> None:
        if kind == "national":
            url = f"{self.base_url}/intensity/{times}"
        else:
            url = f"{self.base_url}/regional/intensity/{times}/{kind}/{key}"
        try:
            body = as_dict(self._http.get_json(url), "the answer")
        except SourceError as exc:
            raise for_zone(exc, zone, API) from None
        if "data" not in body and "error" in body:
            raise SourceError(NAME, f"the API answered an error: {str(body['error'])[:100]}")
        if kind == "national":
            for slot in as_list(body.get("data"), "data"):
                self._add_national(as_dict(slot, "a slot"), now_s, out)
        else:
            for slot in regional_slots(body.get("data"), key):
                self._add_regional(as_dict(slot, "a slot"), now_s, out)

    @staticmethod
    def _add_national(slot: dict[str, Any], now_s: int, out: SeriesAssembler) -> None:
        start, end = parse_time_s(slot.get("from")), parse_time_s(slot.get("to"))
        intensity = as_dict(slot.get("intensity"), "intensity")
        actual = intensity.get("actual")
        if actual is not None and start < now_s:
            out.add(start, end, actual, Kind.MEASURED)
        else:
            out.add(
                start, end, intensity.get("forecast"), Kind.FORECAST, _NO_ACTUAL_NOTE if start < now_s else ""
            )

    @staticmethod
    def _add_regional(slot: dict[str, Any], now_s: int, out: SeriesAssembler) -> None:
        start, end = parse_time_s(slot.get("from")), parse_time_s(slot.get("to"))
        intensity = as_dict(slot.get("intensity"), "intensity")
        out.add(start, end, intensity.get("forecast"), Kind.FORECAST, _REGIONAL_NOTE if start < now_s else "")


def regional_slots(data: object, key: str) -> list[Any]:
    """The half-hour slots of one region from either regional body shape.

    `data` is an object `{regionid, ..., data: [slots]}` (range by region id or postcode), or a list
    of such region objects (current postcode; all regions), in which case the region asked for is
    picked by region id or postcode, falling back to the only one there is."""
    if isinstance(data, dict):
        return as_list(data.get("data"), "data.data")
    regions = [as_dict(r, "a region") for r in as_list(data, "data")]
    if not regions:
        return []
    if all("from" in r and "regions" in r for r in regions):  # all-regions form: slots holding regions
        slots: list[Any] = []
        for slot in regions:
            for region in as_list(slot.get("regions"), "regions"):
                r = as_dict(region, "a region")
                if str(r.get("regionid")) == key:
                    slots.append(
                        {"from": slot.get("from"), "to": slot.get("to"), "intensity": r.get("intensity")}
                    )
        return slots
    wanted = [
        r for r in regions if str(r.get("regionid")) == key or str(r.get("postcode", "")).upper() == key
    ]
    if not wanted and len(regions) == 1:
        wanted = regions
    if not wanted:
        raise BadBody(f"no region {key} in the answer")
    return as_list(wanted[0].get("data"), "data.data")
