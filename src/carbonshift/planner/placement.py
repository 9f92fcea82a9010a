"""Which regions a job may run in: the spec's placement rules applied to region-like objects.

The planner needs only a few attributes of a region, so it states them as Protocols instead of
importing the catalog: any object with these read-only attributes works (the catalog's `Region`, a
test's dataclass). Region ids compare case-insensitively as ``provider:region``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np

from carbonshift.config.jobspec import Placement
from carbonshift.errors import UserInputError

# ISO 3166-1 alpha-2 codes of the EU member states (Greece is GR; the EU's own "EL" is accepted too).
EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "EL",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)


class PlaceableRegion(Protocol):
    @property
    def provider(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def country(self) -> str | None: ...


class PlanRegion(PlaceableRegion, Protocol):
    """What the planner reads from a region: its grid zone (for the series) and its PUE (None: the
    energy model's stated default)."""

    @property
    def zone(self) -> str: ...

    @property
    def pue(self) -> float | None: ...


R = TypeVar("R", bound=PlaceableRegion)


def region_ref(region: PlaceableRegion) -> str:
    return f"{region.provider}:{region.region}".lower()


def country_code(region: PlaceableRegion) -> str | None:
    """'US-CA' and 'us' are both the US for data residency."""
    if not region.country:
        return None
    return region.country.split("-")[0].strip().upper()


def find_region(regions: Iterable[R], ref: str, *, field: str) -> R:
    """The region named `ref` ('provider:region'), or a UserInputError on `field` with close matches."""
    by_ref = {region_ref(r): r for r in regions}
    found = by_ref.get(ref.lower())
    if found is None:
        raise UserInputError(field, _unknown(ref, by_ref))
    return found


def filter_candidates(regions: Sequence[R], placement: Placement) -> list[R]:
    """The regions the placement rules allow, in their original order.

    Rules, applied in this order: `providers` (empty: all), `regions` allow-list (empty: all),
    `exclude`, `countries` (ISO codes; 'EU' = the member states; a region with no known country never
    passes a country rule, since residency cannot be shown). A name that matches no region at all is
    an error rather than a silent no-op, and so is an empty result; the message says which rule
    emptied the set.
    """
    by_ref = {region_ref(r): r for r in regions}
    known_providers = sorted({r.provider.lower() for r in regions})
    for p in placement.providers:
        if p not in known_providers:
            raise UserInputError(
                "placement.providers", f"unknown provider {p!r}; known: {', '.join(known_providers)}"
            )
    for field, refs in (("placement.regions", placement.regions), ("placement.exclude", placement.exclude)):
        for ref in refs:
            if ref.lower() not in by_ref:
                raise UserInputError(field, _unknown(ref, by_ref))

    left = list(regions)
    trail = [f"{len(left)} regions in the catalog"]
    if placement.providers:
        wanted = set(placement.providers)
        left = [r for r in left if r.provider.lower() in wanted]
        trail.append(f"{len(left)} from providers {', '.join(placement.providers)}")
    if placement.regions:
        allowed = {ref.lower() for ref in placement.regions}
        left = [r for r in left if region_ref(r) in allowed]
        trail.append(f"{len(left)} in the regions allow-list")
    if placement.exclude:
        excluded = {ref.lower() for ref in placement.exclude}
        left = [r for r in left if region_ref(r) not in excluded]
        trail.append(f"{len(left)} after exclude")
    if placement.countries:
        codes = expand_countries(placement.countries)
        left = [r for r in left if country_code(r) in codes]
        trail.append(f"{len(left)} in countries {', '.join(placement.countries)}")
    if not left:
        raise UserInputError("placement", "no candidate region is left: " + " -> ".join(trail))
    return left


def placement_problem(region: PlaceableRegion, placement: Placement) -> tuple[str, str] | None:
    """Why `placement` does not allow `region`, as (the rule's field, a sentence), or None when it does.

    The same rules as `filter_candidates`, asked of one region: for a launch that skips planning and
    for plans that list what they left out, so both say which rule refused a region.
    """
    ref = region_ref(region)
    if placement.providers and region.provider.lower() not in set(placement.providers):
        return "placement.providers", f"{ref}: provider not in {', '.join(placement.providers)}"
    if placement.regions and ref not in {r.lower() for r in placement.regions}:
        return "placement.regions", f"{ref}: not in the regions allow-list"
    if placement.exclude and ref in {r.lower() for r in placement.exclude}:
        return "placement.exclude", f"{ref}: excluded"
    if placement.countries and country_code(region) not in expand_countries(placement.countries):
        where = country_code(region) or "unknown"
        return (
            "placement.countries",
            f"{ref}: country {where} is not in {', '.join(placement.countries)} (data residency)",
        )
    return None


def expand_countries(codes: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for code in codes:
        c = code.upper()
        out |= EU_COUNTRIES if c == "EU" else {c}
    if "GR" in out or "EL" in out:
        out |= {"GR", "EL"}
    return frozenset(out)


def _unknown(ref: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(ref.lower(), list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown region {ref!r} (write provider:region, e.g. gcp:us-central1){hint}"


class PlacementIndex(Generic[R]):
    """`filter_candidates` for many specs over one region list: numpy masks per rule, and one answer
    per distinct placement (the same list object each time: do not modify it). Names it does not know
    and empty results are left to `filter_candidates`, so errors are its own."""

    def __init__(self, regions: Sequence[R]) -> None:
        self.regions = list(regions)
        self._providers = np.array([r.provider.lower() for r in self.regions], dtype=object)
        self._refs = np.array([region_ref(r) for r in self.regions], dtype=object)
        self._countries = np.array([country_code(r) for r in self.regions], dtype=object)
        self._known_providers = frozenset(self._providers.tolist())
        self._known_refs = frozenset(self._refs.tolist())
        self._memo: dict[tuple[tuple[str, ...], ...], list[R]] = {}

    def filter(self, placement: Placement) -> list[R]:
        key = (
            tuple(placement.providers),
            tuple(placement.regions),
            tuple(placement.exclude),
            tuple(placement.countries),
        )
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._filter(placement)
        return found

    def _filter(self, placement: Placement) -> list[R]:
        unknown = any(p not in self._known_providers for p in placement.providers) or any(
            ref.lower() not in self._known_refs for ref in (*placement.regions, *placement.exclude)
        )
        if unknown:
            return filter_candidates(self.regions, placement)  # raises, naming the field
        mask = np.ones(len(self.regions), dtype=bool)
        if placement.providers:
            mask &= np.isin(self._providers, list(placement.providers))
        if placement.regions:
            mask &= np.isin(self._refs, [ref.lower() for ref in placement.regions])
        if placement.exclude:
            mask &= ~np.isin(self._refs, [ref.lower() for ref in placement.exclude])
        if placement.countries:
            mask &= np.isin(self._countries, list(expand_countries(placement.countries)))
        if not mask.any():
            return filter_candidates(self.regions, placement)  # raises, saying which rule emptied it
        return [self.regions[i] for i in np.flatnonzero(mask).tolist()]
