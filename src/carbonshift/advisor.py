"""The dry-run advisor: a job spec in, a ranked plan out, with the data it used.

This is where I/O meets the pure planner: it picks candidate regions from the catalog by the spec's
placement rules, asks the intensity service for each one's series over the window, and hands series
to `planner.plan.plan`. The CLI and the HTTP API both call `advise`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from carbonshift.catalog import Catalog, Region
from carbonshift.config import Settings
from carbonshift.config.jobspec import JobSpec
from carbonshift.errors import UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.types import IntensitySeries, Signal, TimeSpan
from carbonshift.planner.placement import filter_candidates, region_ref
from carbonshift.planner.plan import Plan, plan
from carbonshift.schedule import next_occurrence, occurrence_spec


@dataclass(frozen=True)
class Advice:
    """A plan plus what a person needs to trust it: the series it used and every fallback notice."""

    plan: Plan
    series: dict[str, IntensitySeries]  # by 'provider:region', candidates and the baseline
    notices: list[str] = field(default_factory=list)

    def to_dict(self, *, top: int | None = None) -> dict[str, object]:
        out = self.plan.to_dict(top=top)
        out["notices"] = list(self.notices)
        return out


def candidate_regions(spec: JobSpec, catalog: Catalog) -> list[Region]:
    """The catalog's regions that the spec's placement rules allow (UserInputError when none)."""
    regions = catalog.regions()
    wants_local = "local" in spec.placement.providers
    if wants_local and not any(r.provider == "local" for r in regions):
        raise UserInputError(
            "placement.providers",
            "'local' needs this machine's location: add it under `locations:` in the config file "
            "(provider: local, region: NAME, zone: ZONE)",
        )
    return filter_candidates(regions, spec.placement)


def baseline_region(spec: JobSpec, catalog: Catalog) -> Region | None:
    if spec.baseline is None:
        return None
    provider, _, name = spec.baseline.partition(":")
    try:
        return catalog.region(provider, name)
    except UserInputError as exc:
        raise UserInputError("baseline", exc.problem) from None


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
    candidates = candidate_regions(spec, catalog)
    base = baseline_region(spec, catalog)
    earliest, deadline = spec.resolve_window(now)
    span = TimeSpan(earliest, deadline)
    regions: list[Region] = list(candidates)
    if base is not None and base not in regions:
        regions.append(base)
    by_zone = service.series_many([r.grid_zone() for r in regions], span, signal)
    series = {region_ref(r): by_zone[r.grid_zone()] for r in regions}
    baseline_pair = (base, series[region_ref(base)]) if base is not None and base not in candidates else None
    result = plan(
        spec,
        [(r, series[region_ref(r)]) for r in candidates],
        now=now,
        baseline=baseline_pair,
    )
    return Advice(result, series, list(service.notices))


def advise_many(
    specs: Sequence[JobSpec],
    *,
    catalog: Catalog,
    service: IntensityService,
    now: datetime,
    signal: Signal = Signal.AVERAGE,
) -> list[Advice]:
    """A batch: one service (so one cache and one fetch per zone and window) for every spec."""
    return [advise(s, catalog=catalog, service=service, now=now, signal=signal) for s in specs]


def settings_signal(settings: Settings, override: Signal | None) -> Signal:
    return override if override is not None else settings.signal
