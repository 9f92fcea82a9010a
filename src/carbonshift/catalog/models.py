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
    """Where a job can run. `g_per_kwh` is its zone's static annual grid average with that value's
    `source`, `year` and emissions `basis` (so regions in one zone always share it); it is None only for
    a user location whose zone no table knows (live sources may still cover it). A provider's own
    published figure for the region (Google's) is kept apart in `provider_reported_*`: shown, never
    ranked by, because no table has the same figure for the other clouds' regions on that grid."""

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
    basis: str | None = None  # "direct" | "lifecycle": what the static value counts
    provider_reported_g_per_kwh: float | None = None
    provider_reported_source: str | None = None
    provider_reported_year: int | None = None
    provider_reported_basis: str | None = None

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
            static_basis=self.basis,
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
            "basis": self.basis,
            "provider_reported_g_per_kwh": self.provider_reported_g_per_kwh,
            "provider_reported_source": self.provider_reported_source,
            "provider_reported_year": self.provider_reported_year,
            "provider_reported_basis": self.provider_reported_basis,
        }


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    """A country or zone with its one static annual average (`kind` says which table). `level` and
    `geography` say what the value describes: the zone itself, a sub-national area standing for it
    (a US state, a NERC region) or its country, so a reader sees how specific the number is."""

    id: str
    name: str
    country: str
    g_per_kwh: float
    source: str
    year: int
    kind: str  # "country" or "zone"
    basis: str = "lifecycle"  # "direct" | "lifecycle"
    level: str = "zone"  # zone | area | country | world
    geography: str = ""
    method: str = ""

    @property
    def label(self) -> str:
        """The source as shown with a value: the table, and the geography when it is not the zone's own."""
        if self.level in ("area", "country") and self.geography and self.geography != self.id:
            return f"{self.source} ({self.level} {self.geography})"
        return self.source
