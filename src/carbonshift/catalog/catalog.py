"""Lookups over the bundled regions, countries and zones plus the user's own locations.

A Catalog never changes after it is built, so one instance can be shared by every caller; user
locations produce a new Catalog (cheap: a few dict comprehensions over ~140 rows).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from carbonshift.catalog.models import EU_COUNTRIES, Region, ZoneInfo
from carbonshift.errors import UnknownLocationError
from carbonshift.intensity.types import GridZone

if TYPE_CHECKING:
    from carbonshift.config.settings import LocationSetting

USER_PUE_SOURCE = "config: locations"
WORLD = "WORLD"


def _norm(text: str) -> str:
    """Region ids are lowercase everywhere; Azure's display names ('West Europe') differ only by spaces."""
    return text.strip().lower().replace(" ", "")


class Catalog:
    def __init__(
        self, regions: Iterable[Region], countries: Iterable[ZoneInfo], zones: Iterable[ZoneInfo]
    ) -> None:
        by_key: dict[str, Region] = {}
        for r in regions:  # a later entry (a user location) replaces an earlier one with the same key
            by_key[f"{r.provider.lower()}:{_norm(r.region)}"] = r
        self._regions = dict(sorted(by_key.items()))
        self._countries = {c.id.upper(): c for c in countries}
        self._zones = {z.id.upper(): z for z in zones}
        self._world = self._zones.pop(WORLD, None)  # a fallback, not a zone one lists or runs in
        self._by_id: dict[str, list[Region]] = {}
        self._by_zone: dict[str, list[Region]] = {}
        for r in self._regions.values():
            self._by_id.setdefault(_norm(r.region), []).append(r)
            self._by_zone.setdefault(r.zone.upper(), []).append(r)

    # ---- listing ----------------------------------------------------------------------------------
    def regions(self, provider: str | None = None, country: str | None = None) -> list[Region]:
        """Regions sorted by provider and id; `country` is an ISO 3166-1 alpha-2 code, or 'EU' for the
        27 member states."""
        wanted_provider = provider.strip().lower() if provider else None
        wanted_country = country.strip().upper() if country else None
        countries = EU_COUNTRIES if wanted_country == "EU" else {wanted_country}
        return [
            r
            for r in self._regions.values()
            if (wanted_provider is None or r.provider.lower() == wanted_provider)
            and (wanted_country is None or r.country in countries)
        ]

    def providers(self) -> list[str]:
        return sorted({r.provider.lower() for r in self._regions.values()})

    def countries(self) -> list[ZoneInfo]:
        return sorted(self._countries.values(), key=lambda c: c.id)

    def zones(self) -> list[ZoneInfo]:
        return sorted(self._zones.values(), key=lambda z: z.id)

    # ---- lookups ----------------------------------------------------------------------------------
    def region(self, provider: str, region: str) -> Region:
        wanted = provider.strip().lower()
        if wanted not in self.providers():
            raise UnknownLocationError(
                f"{provider}:{region}", f"unknown provider {provider!r}; known: {', '.join(self.providers())}"
            )
        found = self._regions.get(f"{wanted}:{_norm(region)}")
        if found is not None:
            return found
        ids = [r.region for r in self._regions.values() if r.provider.lower() == wanted]
        raise UnknownLocationError(
            f"{wanted}:{region}",
            f"unknown {wanted} region{_suggest(region, ids)} (see `carbonshift regions`)",
        )

    def resolve(self, text: str) -> Region:
        """'provider:region', or a bare region id (or user location name) when only one provider has it."""
        query = text.strip()
        if ":" in query:
            provider, _, region = query.partition(":")
            return self.region(provider, region)
        matches = self._by_id.get(_norm(query), [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            keys = " or ".join(r.key for r in matches)
            raise UnknownLocationError(
                query, f"ambiguous: more than one provider has this region; write {keys}"
            )
        names = [r.region for r in self._regions.values()]
        raise UnknownLocationError(query, f"unknown region or location{_suggest(query, names)}")

    def zone(self, zone_id: str) -> GridZone:
        """The zone with its one static annual value (zones table: every zone a region sits in has a row,
        chosen by the precedence in data/SOURCES.md), else its country's (the ISO code before the first
        '-'); otherwise no static value. Never a region's row: two regions in a zone share its value."""
        query = zone_id.strip()
        key = query.upper()
        in_zone = self._by_zone.get(key, [])
        watttime = next((r.watttime_region for r in in_zone if r.watttime_region), None)
        table = self._zones.get(key) or (self._world if key == WORLD else None)
        if table is not None:
            return _table_zone(table, watttime)
        country = self._countries.get(key.split("-", 1)[0])
        if country is not None:
            zone = _country_zone(query, country, name=country.name if key == country.id else None)
            return replace(zone, watttime_region=watttime) if watttime else zone
        return GridZone(id=query)

    def world_zone(self) -> GridZone:
        """The world average: the last fallback for a run whose place nothing tells."""
        if self._world is None:
            raise UnknownLocationError(WORLD, "this catalog has no world average")
        return _table_zone(self._world, None)

    def country(self, code: str) -> ZoneInfo | None:
        return self._countries.get(code.strip().upper())

    # ---- user locations ---------------------------------------------------------------------------
    def with_locations(self, locations: Iterable[LocationSetting]) -> Catalog:
        """A catalog that also holds the user's own locations; each takes its zone's static value."""
        extra = [self._user_region(loc) for loc in locations]
        zones = [*self._zones.values(), *([self._world] if self._world is not None else [])]
        return Catalog([*self._regions.values(), *extra], self._countries.values(), zones)

    def _user_region(self, loc: LocationSetting) -> Region:
        zone = self.zone(loc.zone)
        country = loc.country.upper() if loc.country else zone.country
        declared = self._countries.get(country) if loc.country and country else None
        guessed = zone.static_source is not None and zone.static_source.startswith("country average")
        if declared is not None and (zone.static_g_per_kwh is None or (guessed and zone.country != country)):
            # a zone name of the user's own ('LAB-ZONE', or 'MY-LAB' that merely looks like Malaysia):
            # the country they declared is the better static fallback than a guess from the name
            zone = _country_zone(loc.zone, declared)
        return Region(
            provider=loc.provider.strip().lower(),
            region=loc.region.strip(),
            location=loc.location or loc.region,
            country=country,
            lat=loc.lat,
            lon=loc.lon,
            zone=loc.zone,
            watttime_region=loc.watttime_region or zone.watttime_region,
            pue=loc.pue,
            pue_source=USER_PUE_SOURCE,
            g_per_kwh=zone.static_g_per_kwh,
            source=f"zone {loc.zone}: {zone.static_source}" if zone.static_source else None,
            year=zone.static_year,
            basis=zone.static_basis,
        )


def _table_zone(table: ZoneInfo, watttime: str | None) -> GridZone:
    return GridZone(
        id=table.id,
        country=table.country or None,
        watttime_region=watttime,
        static_g_per_kwh=table.g_per_kwh,
        static_source=table.label,
        static_year=table.year,
        static_basis=table.basis,
        name=table.name,
    )


def _country_zone(zone_id: str, country: ZoneInfo, name: str | None = None) -> GridZone:
    """A zone whose static value is its country's annual average, saying so in its source."""
    return GridZone(
        id=zone_id,
        country=country.id,
        static_g_per_kwh=country.g_per_kwh,
        static_source=f"country average {country.id}: {country.source}",
        static_year=country.year,
        static_basis=country.basis,
        name=name,
    )


def _suggest(text: str, candidates: Iterable[str]) -> str:
    by_norm = {_norm(c): c for c in candidates}
    close = [by_norm[c] for c in difflib.get_close_matches(_norm(text), sorted(by_norm), n=3, cutoff=0.6)]
    if not close:
        return ""
    listed = ", ".join(close[:-1]) + f" or {close[-1]}" if len(close) > 1 else close[0]
    return f"; did you mean {listed}?"
