"""The dry-run advisor: a job spec in, a ranked plan out, with the data it used.

This is where I/O meets the pure planner: it picks candidate regions from the catalog by the spec's
placement rules, asks the intensity service for each one's series over the window, and hands series
to `planner.plan.plan`. The CLI and the HTTP API both call `advise`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from carbonshift.catalog import Catalog, Region
from carbonshift.catalog.instances import describe_hardware, filter_offering, offers
from carbonshift.config import Settings
from carbonshift.config.jobspec import Hardware, JobSpec, Placement
from carbonshift.errors import CarbonshiftError, UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.types import GridZone, IntensitySeries, Signal, TimeSpan
from carbonshift.jsonwire import encode_json
from carbonshift.planner.alternatives import Alternatives, merge_many
from carbonshift.planner.batch import own_region_baseline, plan_batch
from carbonshift.planner.footprints import Footprints, alternative_spec
from carbonshift.planner.placement import PlacementIndex, filter_candidates, placement_problem, region_ref
from carbonshift.planner.plan import Plan, mixed_basis_notice, plan
from carbonshift.schedule import next_occurrence, occurrence_spec
from carbonshift.sizing import needs_sizing, sized_energy, sizing_notice

ALLOW_LIST_RULES = frozenset({"placement.providers", "placement.regions"})


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A catalog region the plan left out, and the rule that left it out (no region vanishes unsaid)."""

    region: str  # provider:region
    rule: str  # the spec field: placement.providers|regions|exclude|countries, or hardware
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"region": self.region, "rule": self.rule, "reason": self.reason}


@dataclass(frozen=True)
class Advice:
    """A plan plus what a person needs to trust it: the series it used, every fallback notice, and
    the regions it left out with why."""

    plan: Plan
    series: dict[str, IntensitySeries]  # by 'provider:region', candidates and the baseline
    notices: list[str] = field(default_factory=list)
    excluded: tuple[Exclusion, ...] = ()

    def to_dict(self, *, top: int | None = None) -> dict[str, object]:
        out = self.plan.to_dict(top=top)
        out["notices"] = list(self.notices)
        shown = _shown_exclusions(self.excluded)
        out["excluded"] = [e.to_dict() for e in shown.listed]
        out["excluded_counts"] = dict(shown.counts)
        return out

    def to_json_line(self, *, top: int | None = None) -> str:
        """`to_dict` as compact JSON (no newline): what `carbonshift plan DIR` prints per spec (see
        `json_line`)."""
        return self.json_line(top=top)[:-1].decode()

    def json_line(self, *, top: int | None = None) -> bytes:
        """`to_json_line` and a newline, as UTF-8: what a batch writes to a UTF-8 stream, without the
        text in between (a line of every option is 26 KB, decoded, spliced, joined and encoded again
        before). Written by `encode_json`, the API's encoder (orjson: a line of every option in 31
        us, where pydantic_core took 111 us and the standard library 455 us), so it reads as
        `json.dumps` of `to_dict` does: the same keys in the same order and the same values, a float
        perhaps spelled otherwise (`0.000057` for `5.7e-05`), a non-finite one as null. The
        exclusions (often 75 regions, most of a line) are encoded once per distinct set: a batch's
        specs share a handful."""
        out = self.plan.to_dict(top=top)
        out["notices"] = list(self.notices)
        head = encode_json(out)  # a non-empty object: b'{...}'; the exclusions are its last keys
        return b"".join((memoryview(head)[:-1], b",", _shown_exclusions(self.excluded).json, b"}\n"))


@dataclass(frozen=True, slots=True)
class _ShownExclusions:
    """How an advice shows its exclusions: every one counted by rule; listed one by one are those the
    spec did not name outright (hardware, residency, exclude), not the whole catalog outside an
    allow-list. `json` is both as the last two keys of the compact JSON object."""

    listed: tuple[Exclusion, ...]
    counts: dict[str, int]
    json: bytes


def _shown_exclusions(excluded: tuple[Exclusion, ...]) -> _ShownExclusions:
    """Worked out once per exclusions tuple: `exclusions()` hands specs of one placement and hardware
    the same tuple object, so the memo is by identity (the tuple is held, so its id stays its own)."""
    entry = _SHOWN.get(id(excluded))
    if entry is not None and entry[0] is excluded:
        return entry[1]
    listed = tuple(e for e in excluded if e.rule not in ALLOW_LIST_RULES)
    counts: dict[str, int] = {}
    for e in excluded:
        counts[e.rule] = counts.get(e.rule, 0) + 1
    text = b"".join(
        (
            b'"excluded":',
            encode_json([e.to_dict() for e in listed]),
            b',"excluded_counts":',
            encode_json(counts),
        )
    )
    shown = _ShownExclusions(listed, counts, text)
    _SHOWN[id(excluded)] = (excluded, shown)
    if len(_SHOWN) > 256:
        _SHOWN.pop(next(iter(_SHOWN)))
    return shown


_SHOWN: dict[int, tuple[tuple[Exclusion, ...], _ShownExclusions]] = {}


def exclusions(spec: JobSpec, catalog: Catalog) -> tuple[Exclusion, ...]:
    """Every catalog region `spec` may not use, with the first rule that refuses it: its placement
    (providers, allow-list, exclude, data residency), then the instance catalog (hardware not offered).
    Memoised per catalog, placement and hardware: a batch of specs shares a handful of them."""
    return _exclusions(catalog, _placement_key(spec.placement), spec.hardware)


# a placement's rules as a hashable key (a pydantic Placement is not): providers, regions, exclude, countries
_PlacementKey = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _placement_key(p: Placement) -> _PlacementKey:
    return tuple(p.providers), tuple(p.regions), tuple(p.exclude), tuple(p.countries)


def _placement_of(key: _PlacementKey) -> Placement:
    providers, regions, exclude, countries = key
    return Placement.model_construct(
        providers=list(providers), regions=list(regions), exclude=list(exclude), countries=list(countries)
    )


@lru_cache(maxsize=256)  # keyed by the catalog object itself (held here), not an id a new one could reuse
def _exclusions(catalog: Catalog, key: _PlacementKey, hardware: Hardware) -> tuple[Exclusion, ...]:
    placement = _placement_of(key)
    out = []
    for region in catalog.regions():
        problem = placement_problem(region, placement)
        if problem is None and not offers(region.provider, region.region, hardware):
            problem = ("hardware", f"no instance type with {describe_hardware(hardware)}")
        elif problem is not None:
            problem = (problem[0], problem[1].split(": ", 1)[-1])
        if problem is not None:
            out.append(Exclusion(region_ref(region), problem[0], problem[1]))
    return tuple(out)


def baseline_notice(spec: JobSpec, base: Region | None) -> str | None:
    """A baseline region that could not run the job still measures savings, but the reader must know."""
    if base is None or offers(base.provider, base.region, spec.hardware):
        return None
    return (
        f"baseline {region_ref(base)} offers no instance type with {describe_hardware(spec.hardware)}: "
        "the saving is measured against a region where this job could not run as specified"
    )


def candidate_regions(spec: JobSpec, catalog: Catalog) -> list[Region]:
    """The catalog's regions that the spec's placement rules allow (UserInputError when none).
    Memoised per catalog, placement and hardware, as `exclusions` is: a daemon plans the same few
    again and again, and asking the instance table about each of 139 regions hashes the (pydantic)
    hardware 139 times."""
    return list(_candidate_regions(catalog, _placement_key(spec.placement), spec.hardware))


@lru_cache(maxsize=256)  # as _exclusions
def _candidate_regions(catalog: Catalog, key: _PlacementKey, hardware: Hardware) -> tuple[Region, ...]:
    # only regions that offer the hardware: the planner and the launcher share the instance catalog
    return tuple(filter_offering(_placed_in(catalog, _placement_of(key)), hardware))


def placed_regions(spec: JobSpec, catalog: Catalog) -> list[Region]:
    """The catalog's regions the spec's placement rules allow, whatever hardware they offer."""
    return _placed_in(catalog, spec.placement)


def _placed_in(catalog: Catalog, placement: Placement) -> list[Region]:
    regions = catalog.regions()
    wants_local = "local" in placement.providers
    if wants_local and not any(r.provider == "local" for r in regions):
        raise UserInputError(
            "placement.providers",
            "'local' needs this machine's location: add it under `locations:` in the config file "
            "(provider: local, region: NAME, zone: ZONE)",
        )
    return filter_candidates(regions, placement)


def baseline_region(spec: JobSpec, catalog: Catalog) -> Region | None:
    if spec.baseline is None:
        return None
    provider, _, name = spec.baseline.partition(":")
    try:
        return catalog.region(provider, name)
    except UserInputError as exc:
        raise UserInputError("baseline", f"{spec.baseline!r}: {exc.problem}") from None


def advise(
    spec: JobSpec,
    *,
    catalog: Catalog,
    service: IntensityService,
    now: datetime,
    signal: Signal = Signal.AVERAGE,
) -> Advice:
    """Plan `spec` over every allowed region with the intensity the service has for the window. A
    recurring spec is planned for its next occurrence."""
    nominal = next_occurrence(spec, now)
    if nominal is not None:
        spec = occurrence_spec(spec, nominal)
    if spec.hardware_options:
        return _advise_alternatives(spec, catalog=catalog, service=service, now=now, signal=signal)
    candidates = candidate_regions(spec, catalog)
    base = baseline_region(spec, catalog)
    earliest, deadline = spec.resolve_window(now)
    span = TimeSpan(earliest, deadline)
    regions: list[Region] = list(candidates)
    base_apart = base is not None and not _holds(candidates, base)  # not a candidate: fetched besides
    if base is not None and base_apart:
        regions.append(base)
    placed = [_placed(r) for r in regions]
    in_order = service.series_list([z for _, z in placed], span, signal)
    series = {ref: found for (ref, _), found in zip(placed, in_order, strict=True)}
    baseline_pair = (base, in_order[-1]) if base is not None and base_apart else None  # fetched last
    result = plan(
        spec,
        list(zip(candidates, in_order, strict=False)),  # regions: the candidates first
        now=now,
        baseline=baseline_pair,
        energy_for=sized_energy(spec),  # a host size the spec leaves open: the launch type's, per region
    )
    notices = _with_basis_notice(list(service.notices), series)
    sizing = sizing_notice(spec, list(candidates))
    if sizing is not None:
        notices.append(sizing)
    return Advice(
        with_footprints(result, spec),
        series,
        _with_baseline_notice(notices, spec, base),
        exclusions(spec, catalog),
    )


def _holds(regions: Sequence[Region], region: Region) -> bool:
    """`region in regions`, by identity first: the catalog hands out the same objects, and comparing
    two frozen dataclasses field by field, for up to 139 regions, cost more than the rest of a check."""
    return any(r is region for r in regions) or region in regions


def _placed(region: Region) -> tuple[str, GridZone]:
    """A catalog region's ref and grid zone, made once per region (both are derived from its frozen
    fields): a daemon's plans ask for the same 139 regions again and again. By identity: a catalog
    holds its regions for its life, and the entry holds the region, so its id stays its own."""
    entry = _PLACED.get(id(region))
    if entry is not None and entry[0] is region:
        return entry[1]
    placed = (region_ref(region), region.grid_zone())
    if len(_PLACED) >= MAX_PLACED:
        _PLACED.clear()  # plain and thread-safe: at worst a zone is made again
    _PLACED[id(region)] = (region, placed)
    return placed


MAX_PLACED = 1 << 14
_PLACED: dict[int, tuple[Region, tuple[str, GridZone]]] = {}


def with_footprints(result: Plan, spec: JobSpec) -> Plan:
    """The plan with its options' embodied, total and SCI figures (added to its JSON when shown)."""
    return dataclasses.replace(result, footprints=Footprints.of(spec))


def _hardware_key(hardware: Hardware) -> tuple[object, ...]:
    """A Hardware's values, with their types (64 and 64.0 compare equal but print apart), as a key
    that hashes and compares fast (a pydantic model does neither, thousands of times a batch)."""
    return (
        type(hardware),
        hardware.gpu,
        hardware.gpus,
        hardware.vcpus,
        type(hardware.memory_gb),
        hardware.memory_gb,
    )


class _FootprintsOf:
    """`Footprints.of`, one object per distinct (hardware, duration, power, functional unit) of a batch's
    specs without alternatives: building it per spec was a third of the advisor's own time."""

    def __init__(self) -> None:
        self._known: dict[tuple[object, ...], Footprints] = {}

    def __call__(self, spec: JobSpec) -> Footprints:
        if spec.hardware_options:
            return Footprints.of(spec)
        unit = spec.functional_unit
        power = spec.power_watts
        key = (
            _hardware_key(spec.hardware),
            spec.duration_s,
            type(power),
            power,
            None if unit is None else (unit.name, type(unit.count), unit.count),
        )
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = Footprints.of(spec)
        return found


def _with_baseline_notice(notices: list[str], spec: JobSpec, base: Region | None) -> list[str]:
    notice = baseline_notice(spec, base)
    return [*notices, notice] if notice is not None else notices


def _with_basis_notice(notices: list[str], series: dict[str, IntensitySeries]) -> list[str]:
    notice = mixed_basis_notice(series)
    return [*notices, notice] if notice is not None else notices


def advise_many(
    specs: Sequence[JobSpec],
    *,
    catalog: Catalog,
    service: IntensityService,
    now: datetime,
    signal: Signal = Signal.AVERAGE,
) -> list[Advice]:
    """`advise` for each spec, in order, planned together: the same advice, faster.

    Each spec's regions are chosen as `advise` chooses them (by placement masks, once per distinct
    placement). Each grid zone is fetched once, over the union of every spec's window (the service
    keeps fetched data by span, so one span is one fetch per zone), in spec order, so that each
    advice's notices are those `advise` reports at that point. `plan_batch` then plans every spec,
    slicing its window out of the shared series; an advice's `series` cover the union span.

    When a spec is refused or data is missing, the specs are advised one by one instead (notices from
    the attempt are dropped), so the error, and what was fetched and noticed before it, are `advise`'s.
    """
    return _advise_many(specs, catalog=catalog, service=service, now=now, signal=signal)


def _advise_many(
    specs: Sequence[JobSpec], *, catalog: Catalog, service: IntensityService, now: datetime, signal: Signal
) -> list[Advice]:
    if not specs:
        return []

    def many(chosen: Sequence[JobSpec]) -> list[Advice]:
        return _advise_many(chosen, catalog=catalog, service=service, now=now, signal=signal)

    if any(s.hardware_options for s in specs):
        # hardware alternatives: each (spec, alternative) over its own regions, then merged per spec
        return _partitioned(
            specs,
            [bool(s.hardware_options) for s in specs],
            lambda chosen: _advise_alternatives_many(
                chosen, catalog=catalog, service=service, now=now, signal=signal
            ),
            many,
        )
    if any(needs_sizing(s) for s in specs):
        # host size by each region's launch type: per spec and region, which plan_batch's one
        # energy function cannot say; these (few) specs are advised one by one, the rest together
        return _partitioned(
            specs,
            [needs_sizing(s) for s in specs],
            lambda chosen: [
                advise(s, catalog=catalog, service=service, now=now, signal=signal) for s in chosen
            ],
            many,
        )
    noticed = len(service.notices)
    try:
        return _advise_together(specs, catalog=catalog, service=service, now=now, signal=signal)
    except CarbonshiftError:
        del service.notices[noticed:]
        return [advise(s, catalog=catalog, service=service, now=now, signal=signal) for s in specs]


def _partitioned(
    specs: Sequence[JobSpec],
    chosen: list[bool],
    these: Callable[[list[JobSpec]], list[Advice]],
    others: Callable[[list[JobSpec]], list[Advice]],
) -> list[Advice]:
    """Advice for `specs`, in order: the `chosen` ones by `these`, the rest by `others` (asked first)."""
    rest = iter(others([s for s, c in zip(specs, chosen, strict=True) if not c]))
    picked = iter(these([s for s, c in zip(specs, chosen, strict=True) if c]))
    return [next(picked) if c else next(rest) for c in chosen]


@dataclass
class _Regions:
    """The regions one placement (and baseline) gives, and their series once fetched."""

    candidates: list[Region]
    base: Region | None
    regions: list[Region]  # candidates, then the baseline region when it is not one
    series: dict[str, IntensitySeries] = field(default_factory=dict)
    pairs: list[tuple[Region, IntensitySeries]] = field(default_factory=list)
    base_pair: tuple[Region, IntensitySeries] | None = None
    basis_notice: str | None = None


def _advise_together(
    specs: Sequence[JobSpec], *, catalog: Catalog, service: IntensityService, now: datetime, signal: Signal
) -> list[Advice]:
    all_regions = catalog.regions()
    index = PlacementIndex(all_regions)
    has_local = any(r.provider == "local" for r in all_regions)
    bases: dict[str, Region | None] = {}
    sets: dict[tuple[int, int], _Regions] = {}
    placed_by: dict[_PlacementKey, list[Region]] = {}
    offering: dict[tuple[int, tuple[object, ...]], list[Region]] = {}
    excluded: dict[tuple[_PlacementKey, tuple[object, ...]], tuple[Exclusion, ...]] = {}
    prepared: list[tuple[JobSpec, _Regions]] = []
    excluded_s: list[tuple[Exclusion, ...]] = []
    windows: dict[int, tuple[datetime, datetime]] = {}  # by id(spec): plan_batch's window_for
    for given in specs:  # what advise() does before it fetches, in its order
        nominal = next_occurrence(given, now)
        spec = given if nominal is None else occurrence_spec(given, nominal)
        if "local" in spec.placement.providers and not has_local:
            candidate_regions(spec, catalog)  # raises advise()'s error
        placement_key = _placement_key(spec.placement)
        placed = placed_by.get(placement_key)
        if placed is None:  # the index's masks once per distinct placement (~10 µs a spec)
            placed = placed_by[placement_key] = index.filter(spec.placement)
        hw_key = _hardware_key(spec.hardware)
        offering_key = (id(placed), hw_key)
        candidates = offering.get(offering_key)
        if candidates is None:  # one list per placement and hardware, so the id-keyed sets below hold
            candidates = offering[offering_key] = filter_offering(placed, spec.hardware)
        ref = spec.baseline or ""
        if ref not in bases:
            bases[ref] = baseline_region(spec, catalog)
        base = bases[ref]
        windows[id(spec)] = spec.resolve_window(now)
        key = (id(candidates), id(base))
        chosen = sets.get(key)
        if chosen is None:
            regions = list(candidates)
            if base is not None and base not in regions:
                regions.append(base)
            chosen = sets[key] = _Regions(candidates, base, regions)
        prepared.append((spec, chosen))
        # exclusions() once per placement and hardware (its memo hashes the pydantic hardware)
        excluded_key = (placement_key, hw_key)
        shut = excluded.get(excluded_key)
        if shut is None:
            shut = excluded[excluded_key] = exclusions(spec, catalog)
        excluded_s.append(shut)

    span = TimeSpan(min(w[0] for w in windows.values()), max(w[1] for w in windows.values()))
    zones: dict[int, GridZone] = {}
    fetched: dict[GridZone, IntensitySeries] = {}
    notices: list[list[str]] = []
    for _, chosen in prepared:  # fetch in spec order: each advice sees the notices advise() would
        if not chosen.series:
            wanted = [zones.setdefault(id(r), r.grid_zone()) for r in chosen.regions]
            new = [z for z in dict.fromkeys(wanted) if z not in fetched]
            if new:
                fetched.update(service.series_many(new, span, signal))
            chosen.series = {region_ref(r): fetched[z] for r, z in zip(chosen.regions, wanted, strict=True)}
            chosen.pairs = [(r, chosen.series[region_ref(r)]) for r in chosen.candidates]
            base = chosen.base
            if base is not None and base not in chosen.candidates:
                chosen.base_pair = (base, chosen.series[region_ref(base)])
            chosen.basis_notice = mixed_basis_notice(chosen.series)
        seen = list(service.notices)
        notices.append([*seen, chosen.basis_notice] if chosen.basis_notice else seen)

    by_spec = {id(spec): chosen for spec, chosen in prepared}
    plans = plan_batch(
        [spec for spec, _ in prepared],
        lambda spec: by_spec[id(spec)].pairs,
        now=now,
        baseline=lambda spec: by_spec[id(spec)].base_pair,
        window_for=lambda spec: windows[id(spec)],
        footprints_for=_FootprintsOf(),
    )
    # specs of one placement share their series dict (read only, as every advice's is)
    return [
        Advice(result, item[1].series, _with_baseline_notice(seen, item[0], item[1].base), shut)
        for result, item, seen, shut in zip(plans, prepared, notices, excluded_s, strict=True)
    ]


_Pairs = list[tuple[Region, IntensitySeries]]


@dataclass
class _Alternatives:
    """A spec with `hardware_options`, made ready to plan: each alternative as a spec of its own and
    the allowed regions that offer it. Each alternative is planned over those regions and the plans
    merged by total kg (planner/alternatives.py says why that is exact, and how savings stay against
    the spec's own hardware); one too slow for the window, or offered nowhere the placement allows, is
    left out with a notice."""

    spec: JobSpec
    shared: _Offering  # what the batch's specs share: region lists, series dicts, candidate pairs
    footprints: Footprints
    specs: list[JobSpec]  # per choice; all but the first without a baseline (re-measured on merging)
    offered: list[list[Region]]  # per choice: the allowed regions offering it ([]: left out)
    union: list[Region]  # the allowed regions offering any choice: where the first is planned
    base: Region | None
    regions: list[Region]  # union, then the baseline region when it is not one
    span: TimeSpan
    notices: list[str]
    series: dict[str, IntensitySeries] = field(default_factory=dict)

    def jobs(self) -> list[tuple[JobSpec, _Pairs, tuple[Region, IntensitySeries] | None]]:
        """(spec, candidates, baseline pair) to plan: the first choice over the union, then each
        other choice offered somewhere over its own regions."""
        base = self.base
        base_pair = (
            (base, self.series[_placed(base)[0]])
            if base is not None and not _holds(self.union, base)
            else None
        )
        out = [(self.specs[0], self._pairs(self.union), base_pair)]
        for alt, regions in zip(self.specs[1:], self.offered[1:], strict=True):
            if regions:
                out.append((alt, self._pairs(regions), None))
        return out

    def planned(self) -> list[int]:
        """The choices `jobs()` plans, in its order."""
        later = zip(self.footprints.choices[1:], self.offered[1:], strict=True)
        return [0, *(choice.index for choice, regions in later if regions)]

    def _pairs(self, regions: list[Region]) -> _Pairs:
        return self.shared.pairs(regions, self.series)


class _Offering:
    """The allowed regions per placement, and those of them offering each hardware, worked out once for
    the specs of a batch that share them (a pydantic Hardware is slow to compare, 139 times a spec)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._placed: dict[tuple[object, ...], list[Region]] = {}
        self._offering: dict[tuple[int, tuple[object, ...]], list[Region]] = {}
        # the rest are by id of lists held here (or by the offering lists above): their ids stay theirs
        self._unions: dict[tuple[int, ...], list[Region]] = {}
        self._regions: dict[tuple[int, str], list[Region]] = {}
        self._bases: dict[str, Region | None] = {}
        # within one fetch (one batch, one span): the series, candidate pairs and notice per list
        self._series: dict[int, dict[str, IntensitySeries]] = {}
        self._pairs: dict[int, _Pairs] = {}
        self._refs: dict[int, frozenset[str]] = {}  # by id of a list from `offering`
        self._basis: dict[int, tuple[dict[str, IntensitySeries], str | None]] = {}
        self._excluded: dict[tuple[int, int], tuple[tuple[Exclusion, ...], tuple[Exclusion, ...]]] = {}

    def placed(self, spec: JobSpec) -> list[Region]:
        p = spec.placement
        key = (tuple(p.providers), tuple(p.regions), tuple(p.exclude), tuple(p.countries))
        found = self._placed.get(key)
        if found is None:
            found = self._placed[key] = placed_regions(spec, self.catalog)
        return found

    def offering(self, placed: list[Region], hardware: Hardware) -> list[Region]:
        key = (id(placed), _hardware_key(hardware))  # placed lists are held in self._placed
        found = self._offering.get(key)
        if found is None:
            found = self._offering[key] = [r for r in placed if offers(r.provider, r.region, hardware)]
        return found

    def union(self, placed: list[Region], offered: list[list[Region]]) -> list[Region]:
        """The placed regions offering any of the choices (`offered`: lists from `offering`, or
        empty), one list per distinct set of choices."""
        key = (id(placed), *(id(regions) if regions else 0 for regions in offered))
        found = self._unions.get(key)
        if found is None:
            refs = {_placed(r)[0] for regions in offered for r in regions}
            found = self._unions[key] = [r for r in placed if _placed(r)[0] in refs]
        return found

    def base(self, spec: JobSpec) -> Region | None:
        ref = spec.baseline or ""
        if ref not in self._bases:
            self._bases[ref] = baseline_region(spec, self.catalog)
        return self._bases[ref]

    def regions(self, union: list[Region], base: Region | None, base_ref: str) -> list[Region]:
        """`union`, then the baseline region when it is not one."""
        key = (id(union), base_ref)
        found = self._regions.get(key)
        if found is None:
            extra = [base] if base is not None and not _holds(union, base) else []
            found = self._regions[key] = union + extra
        return found

    def series(
        self, regions: list[Region], by_zone: Mapping[GridZone, IntensitySeries]
    ) -> dict[str, IntensitySeries]:
        """The series of `regions` by ref, one dict per list (read only, as every advice's is)."""
        found = self._series.get(id(regions))
        if found is None:
            found = self._series[id(regions)] = {ref: by_zone[z] for ref, z in map(_placed, regions)}
        return found

    def pairs(self, regions: list[Region], series: Mapping[str, IntensitySeries]) -> _Pairs:
        """(region, series) per region, one list per region list: plan_batch then prepares each
        candidate list once, not once per (spec, alternative)."""
        found = self._pairs.get(id(regions))
        if found is None:
            found = self._pairs[id(regions)] = [(r, series[_placed(r)[0]]) for r in regions]
        return found

    def refs(self, regions: list[Region]) -> frozenset[str]:
        found = self._refs.get(id(regions))
        if found is None:
            found = self._refs[id(regions)] = frozenset(_placed(r)[0] for r in regions)
        return found

    def basis_notice(self, series: dict[str, IntensitySeries]) -> str | None:
        found = self._basis.get(id(series))
        if found is None or found[0] is not series:
            found = self._basis[id(series)] = (series, mixed_basis_notice(series))
        return found[1]

    def excluded(self, spec: JobSpec, union: list[Region]) -> tuple[Exclusion, ...]:
        """`exclusions`, less the regions offering an alternative, the rest said to offer none of
        them: one tuple per placement, hardware and union, so `to_json_line` encodes it once."""
        shut = exclusions(spec, self.catalog)
        key = (id(shut), id(union))
        found = self._excluded.get(key)
        if found is None or found[0] is not shut:
            offered_refs = {_placed(r)[0] for r in union}
            rest = tuple(
                Exclusion(e.region, e.rule, f"{e.reason}, nor any of hardware_options")
                if e.rule == "hardware"
                else e
                for e in shut
                if not (e.rule == "hardware" and e.region in offered_refs)
            )
            found = self._excluded[key] = (shut, rest)
        return found[1]


def _prepare_alternatives(spec: JobSpec, offering: _Offering, now: datetime) -> _Alternatives:
    footprints = Footprints.of(spec)
    # alternative 0 is the spec itself (the planner reads no `hardware_options`); the others without
    # a baseline of their own, as merging re-measures their savings against alternative 0's
    specs = [spec, *(alternative_spec(spec, c, baseline=None) for c in footprints.choices[1:])]
    placed = offering.placed(spec)
    notices: list[str] = []
    offered: list[list[Region]] = []
    for choice, alt in zip(footprints.choices, specs, strict=True):
        name = "hardware" if choice.index == 0 else f"hardware_options[{choice.index - 1}]"
        if choice.index > 0:
            try:
                alt.resolve_window(now)
            except UserInputError as exc:
                notices.append(f"{name} ({choice.label}) left out: {exc.problem}")
                offered.append([])
                continue
        offered.append(offering.offering(placed, alt.hardware))
        if not offered[-1]:
            notices.append(f"{name} ({choice.label}) left out: no allowed region offers it")
    union = offering.union(placed, offered)
    if not union:
        raise UserInputError(
            "hardware_options",
            "no allowed region offers the spec's hardware or any of its hardware_options; see "
            "`carbonshift providers instances`",
        )
    base = offering.base(spec)
    earliest, deadline = spec.resolve_window(now)
    regions = offering.regions(union, base, spec.baseline or "")
    return _Alternatives(
        spec,
        offering,
        footprints,
        specs,
        offered,
        union,
        base,
        regions,
        TimeSpan(earliest, deadline),
        notices,
    )


def _advise_alternatives(
    spec: JobSpec, *, catalog: Catalog, service: IntensityService, now: datetime, signal: Signal
) -> Advice:
    """`advise` for a spec with `hardware_options` (see `_Alternatives`)."""
    prep = _prepare_alternatives(spec, _Offering(catalog), now)
    by_zone = service.series_many([_placed(r)[1] for r in prep.regions], prep.span, signal)
    prep.series = prep.shared.series(prep.regions, by_zone)
    plans = [plan(s, pairs, now=now, baseline=b, energy_for=sized_energy(s)) for s, pairs, b in prep.jobs()]
    ((merged, region),) = _merged_alternatives([prep], [plans])
    if region is not None:
        merged = _with_own_base(prep, merged, region, now)
    return _finish_alternatives(prep, merged, list(service.notices))


def _advise_alternatives_many(
    specs: Sequence[JobSpec], *, catalog: Catalog, service: IntensityService, now: datetime, signal: Signal
) -> list[Advice]:
    """`_advise_alternatives` for each spec, every (spec, alternative) planned by one `plan_batch` (one
    by one where an alternative's host is sized per region). Each grid zone is fetched once, over the
    union of the windows, in spec order, as `_advise_together` does."""
    preps = []
    offering = _Offering(catalog)
    for given in specs:
        nominal = next_occurrence(given, now)
        preps.append(
            _prepare_alternatives(
                given if nominal is None else occurrence_spec(given, nominal), offering, now
            )
        )
    span = TimeSpan(min(p.span.start for p in preps), max(p.span.end for p in preps))
    fetched: dict[GridZone, IntensitySeries] = {}
    seen: list[list[str]] = []
    for prep in preps:
        if id(prep.regions) not in offering._series:  # a list of regions not fetched yet
            wanted = [_placed(r)[1] for r in prep.regions]
            new = [z for z in dict.fromkeys(wanted) if z not in fetched]
            if new:
                fetched.update(service.series_many(new, span, signal))
        prep.series = offering.series(prep.regions, fetched)
        seen.append(list(service.notices))
    jobs = [job for prep in preps for job in prep.jobs()]
    # plan_batch takes one energy model for all: an alternative sized per region is planned alone
    together = {id(s): (pairs, base) for s, pairs, base in jobs if sized_energy(s) is None}
    # every alternative planned has its spec's window (resolve_window depends on the window alone, and
    # raises for an alternative too slow for it, which _prepare_alternatives then left out)
    windows = {id(s): (prep.span.start, prep.span.end) for prep in preps for s in prep.specs}
    batched = plan_batch(
        [s for s, _, _ in jobs if id(s) in together],
        lambda s: together[id(s)][0],
        now=now,
        baseline=lambda s: together[id(s)][1],
        window_for=lambda s: windows[id(s)],
    )
    # in `jobs`' order (a spec given twice is planned twice: its ids agree, so do its entries)
    from_batch = iter(batched)
    plans = [
        next(from_batch)
        if id(s) in together
        else plan(s, pairs, now=now, baseline=b, energy_for=sized_energy(s))
        for s, pairs, b in jobs
    ]
    groups: list[Sequence[Plan]] = []
    at = 0
    for prep in preps:
        count = len(prep.planned())
        groups.append(plans[at : at + count])
        at += count
    firsts = [group[0] for group in groups]  # alternative 0's plan of each spec
    merged = _merged_alternatives(preps, groups)
    # alternative 0's own-region baselines in the best options' regions: one plan() each (tried: one
    # plan_batch of these single-region specs, of a few hundred durations, cost about three times more)
    for k, (prep, (result, region)) in enumerate(zip(preps, merged, strict=True)):
        if region is not None:
            found = (
                own_region_baseline(firsts[k], _placed(region)[0])
                if sized_energy(prep.specs[0]) is None
                else None
            )
            if found is None:
                merged[k] = (_with_own_base(prep, result, region, now), None)
            else:
                merged[k] = (dataclasses.replace(result, baseline=found), None)
    return [
        _finish_alternatives(prep, result, notices)
        for prep, (result, _), notices in zip(preps, merged, seen, strict=True)
    ]


def _merged_alternatives(
    preps: Sequence[_Alternatives], groups: Sequence[Sequence[Plan]]
) -> list[tuple[Plan, Region | None]]:
    """Per spec, the merged plan of `prep.jobs()`'s plans (in that order), all merged in one pass, and
    the region where alternative 0's own-region baseline must be measured again (the best option's,
    when it is not alternative 0's best region; None: the plan's baseline stands)."""
    specs = [
        Alternatives(
            plans[0],
            prep.shared.refs(prep.offered[0]),
            list(zip(prep.planned()[1:], plans[1:], strict=True)),
            prep.footprints,
        )
        for prep, plans in zip(preps, groups, strict=True)
    ]
    out: list[tuple[Plan, Region | None]] = []
    for prep, (merged, moved) in zip(preps, merge_many(specs), strict=True):
        if moved is not None and merged.baseline.basis == "own-region":
            out.append((merged, next(r for r in prep.union if _placed(r)[0] == moved)))
        else:
            out.append((merged, None))
    return out


def _with_own_base(prep: _Alternatives, merged: Plan, region: Region, now: datetime) -> Plan:
    """`merged` with alternative 0's own-region baseline in `region` (see `_merged_alternatives`)."""
    own = prep.specs[0]
    pairs = [(region, prep.series[_placed(region)[0]])]
    own_base = plan(own, pairs, now=now, energy_for=sized_energy(own)).baseline
    return dataclasses.replace(merged, baseline=own_base)


def _finish_alternatives(prep: _Alternatives, merged: Plan, seen: list[str]) -> Advice:
    """The advice of a merged plan: its notices and exclusions."""
    # what is ranked by, and against which hardware, is in the plan's `footprint` (and the table's head)
    basis = prep.shared.basis_notice(prep.series)
    notices = [*seen, *([basis] if basis is not None else []), *prep.notices]
    for choice, alt, regions in zip(prep.footprints.choices, prep.specs, prep.offered, strict=True):
        sizing = sizing_notice(alt, list(regions)) if regions else None
        if sizing is not None:
            notices.append(sizing if choice.index == 0 else f"hardware_options[{choice.index - 1}]: {sizing}")
    excluded = prep.shared.excluded(prep.spec, prep.union)
    return Advice(merged, prep.series, _with_baseline_notice(notices, prep.spec, prep.base), excluded)


def settings_signal(settings: Settings, override: Signal | None) -> Signal:
    return override if override is not None else settings.signal
