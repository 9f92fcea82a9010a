"""The catalog's value types: a place one can run (a cloud region or a user's own location) and a grid
area with its static annual average. Both are plain frozen data so the planner can hold them freely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carbonshift.intensity.types import GridZone

CLOUD_PROVIDERS: tuple[str, ...] = ("aws", "azure", "gcp")

# ISO 3166-1 alpha-2 codes of the 27 EU member states, so a placement rule can say "EU".
EU_COUNTRIES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Region:
    """Where a job can run. `g_per_kwh` is the static annual grid average with its `source` and `year`;
    it is None only for a user location whose zone no table knows (live sources may still cover it)."""

    provider: str
    region: str
    location: str
    country: str | None
    lat: float | None
    lon: float | None
    zone: str
    watttime_region: str | None
    pue: float
    pue_source: str
    g_per_kwh: float | None
    source: str | None
    year: int | None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.region}"

    def grid_zone(self) -> GridZone:
        """The zone as the intensity sources need it, remembering which region it was resolved from."""
        return GridZone(
            id=self.zone,
            country=self.country,
            watttime_region=self.watttime_region,
            lat=self.lat,
            lon=self.lon,
            static_g_per_kwh=self.g_per_kwh,
            static_source=self.source,
            static_year=self.year,
            name=self.location,
            cloud_region=self.region,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "region": self.region,
            "location": self.location,
            "country": self.country,
            "lat": self.lat,
            "lon": self.lon,
            "zone": self.zone,
            "watttime_region": self.watttime_region,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "g_per_kwh": self.g_per_kwh,
            "source": self.source,
            "year": self.year,
        }


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    """A country or sub-national zone with its static annual average (`kind` says which table)."""

    id: str
    name: str
    country: str
    g_per_kwh: float
    source: str
    year: int
    kind: str  # "country" or "zone"
