"""The pure planning function: a job spec and each candidate region's intensity series in, a ranked
plan out. No I/O, no clock (``now`` is an argument), no scheduler or provider imports.

Energy and emissions, stated once so every number is read the same way:

* ``Plan.energy_kwh`` is the job's IT energy (the hardware's draw times the duration), the same in
  every region. Each option's and the baseline's ``energy_kwh`` include that region's PUE, and their
  ``kg_co2e = energy_kwh x mean_g_per_kwh / 1000``.
* The baseline is a contiguous run starting at earliest: in the spec's ``baseline`` region when it
  names one (every option's saving is against that one run), otherwise in each option's own region
  (the saving is then that of waiting, not of moving; the top-level baseline shown is the best
  option's own).
* Series of different signals (average, marginal) are never compared: mixing them raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from carbonshift.config.jobspec import JobSpec
from carbonshift.errors import CarbonshiftError, UserInputError
from carbonshift.intensity.types import Basis, IntensitySeries, Kind, Provenance, Signal
from carbonshift.planner.contiguous import (
    FloatArray,
    IntArray,
    best_starts_in_window,
    run_integrals,
    window_slice,
)
from carbonshift.planner.energy import EnergyEstimate, EnergyModel, PowerBreakdown, default_model
from carbonshift.planner.interruptible import cheapest_chunks_many
from carbonshift.planner.option_columns import OptionColumns, built_columns, columns_of, option_figures
from carbonshift.planner.placement import PlanRegion, region_ref
from carbonshift.timeutil import from_epoch_s, isoformat_epoch_s, isoformat_z, to_epoch_s

if TYPE_CHECKING:
    from carbonshift.planner.footprints import Footprints

FALLBACK_KINDS = frozenset({Kind.STATIC, Kind.MODELLED})
NO_TIME_PREFERENCE = "no time preference: only flat static values"


class PlanningError(CarbonshiftError):
    """Inputs the planner cannot use as given (mixed signals, a series with gaps): a caller's bug or
    a data problem, not something the user wrote."""


class Candidate(NamedTuple):
    region: PlanRegion
    series: IntensitySeries


EnergyFor = Callable[[PlanRegion], EnergyEstimate]


@dataclass(frozen=True, slots=True)
class SourceShare:
    """One provenance's share of the time a run uses."""

    source: str
    kind: Kind
    share: float
    note: str = ""
    basis: Basis | None = None
    fetched_at: datetime | None = None

    @property
    def stale(self) -> bool:
        """A cached live value used past its freshness because the live fetch failed."""
        return self.note.startswith("stale cache")

    def to_dict(self) -> dict[str, Any]:
        return dict(_share_dict(self))  # a copy: the cached one is shared by every plan that shows it


@lru_cache(maxsize=1 << 12)
def _share_dict(share: SourceShare) -> dict[str, Any]:
    """A share's dict, worked out once: a batch shows the same few (one per source, whole) over and
    over."""
    out: dict[str, Any] = {
        "source": share.source,
        "kind": share.kind.value,
        "basis": share.basis.value if share.basis is not None else None,
        "share": round(share.share, 4),
        "fetched_at": iso_dt(share.fetched_at) if share.fetched_at is not None else None,
        "stale": share.stale,
    }
    if share.note:
        out["note"] = share.note
    return out


@dataclass(frozen=True, slots=True)
class Baseline:
    provider: str
    region: str
    zone: str
    start: datetime
    end: datetime
    mean_g_per_kwh: float
    kg_co2e: float
    energy: EnergyEstimate
    sources: tuple[SourceShare, ...]
    static_fallback: bool
    basis: Literal["spec", "own-region"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "region": self.region,
            "zone": self.zone,
            "start": iso_dt(self.start),
            "end": iso_dt(self.end),
            "mean_g_per_kwh": round(self.mean_g_per_kwh, 3),
            "kg_co2e": round(self.kg_co2e, 6),
            "energy_kwh": round(self.energy.kwh, 6),
            "pue": self.energy.pue,
            "basis": self.basis,
            "emissions_basis": emissions_basis(self.sources),
            "sources": [s.to_dict() for s in self.sources],
            "static_fallback": self.static_fallback,
        }


@lru_cache(maxsize=1 << 16)
def iso_s(epoch_s: int) -> str:
    """`isoformat_z` of an epoch second, cached: a batch prints the same few thousand times over and
    over (starts on the data's grid, shared windows, one fetch time per source)."""
    return isoformat_epoch_s(epoch_s)


def iso_dt(value: datetime) -> str:
    return iso_s(int(value.timestamp())) if value.microsecond == 0 else isoformat_z(value)


@dataclass(frozen=True, slots=True)
class PlanOption:
    """One region's best run. Times are kept as epoch seconds and shown as datetimes on demand, and
    the provenance summary is worked out when asked for: a batch plans thousands of options and
    shows a few."""

    provider: str
    region: str
    zone: str
    start_s: int
    end_s: int
    chunks_s: tuple[tuple[int, int], ...]  # one (start, end) for a contiguous run
    mean_g_per_kwh: float
    kg_co2e: float
    energy_kwh: float  # IT energy x this region's PUE
    pue: float
    baseline_kg_co2e: float
    savings_kg: float
    savings_pct: float | None  # None when the baseline emits nothing
    flat: bool  # this region's intensity is the same all through the window
    exact: bool  # the guaranteed optimum (see interruptible.py for when it is not)
    series: IntensitySeries = field(repr=False, compare=False)
    power: PowerBreakdown = field(repr=False, compare=False)
    pue_stated: bool = field(default=True, repr=False, compare=False)
    # which hardware alternative the run is on: 0 the spec's own, i + 1 its hardware_options[i]
    alternative: int = 0

    @property
    def energy(self) -> EnergyEstimate:
        """The full estimate (power breakdown, assumptions) behind energy_kwh."""
        return EnergyEstimate(
            self.power,
            self.pue,
            sum(b - a for a, b in self.chunks_s),  # the job's duration, split or not
            self.pue_stated,
        )

    @property
    def start(self) -> datetime:
        return from_epoch_s(self.start_s)

    @property
    def end(self) -> datetime:
        return from_epoch_s(self.end_s)

    @property
    def chunks(self) -> tuple[tuple[datetime, datetime], ...]:
        return tuple((from_epoch_s(a), from_epoch_s(b)) for a, b in self.chunks_s)

    @property
    def sources(self) -> tuple[SourceShare, ...]:
        """Which sources the chosen time used, by share of time."""
        return sources_of(self.series, self.chunks_s)[0]

    @property
    def static_fallback(self) -> bool:
        """True when any of the chosen time is covered by static or modelled values."""
        provs = self.series.provenances
        if len(provs) == 1:
            return provs[0].kind in FALLBACK_KINDS
        return sources_of(self.series, self.chunks_s)[1]

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.region}"

    @property
    def basis(self) -> str | None:
        """The emissions basis of the chosen time's values: direct, lifecycle, or mixed."""
        return emissions_basis(self.sources)

    def to_dict(self, *, with_chunks: bool = False) -> dict[str, Any]:
        return option_dicts(built_columns((self,)), with_chunks=with_chunks)[0]


def option_dicts(columns: OptionColumns, *, with_chunks: bool = False) -> list[dict[str, Any]]:
    """Each option's dict, from its columns (`columns_of`: a batch's are read out of its ranking
    for the whole batch at once, its figures already rounded; built options' are read off them), with
    each series' provenance summarised once (`_shown_sources`)."""
    out = []
    f = columns.shown
    for (
        provider,
        region,
        zone,
        start,
        end,
        chunks,
        series,
        mean,
        kg,
        pct,
        saved,
        base,
        kwh,
        pue,
        flat,
        exact,
    ) in zip(
        columns.provider,
        columns.region,
        columns.zone,
        columns.start_s,
        columns.end_s,
        columns.chunks_s,
        columns.series,
        f.mean_g_per_kwh,
        f.kg_co2e,
        f.savings_pct,
        f.savings_kg,
        f.baseline_kg_co2e,
        f.energy_kwh,
        columns.pue,
        columns.flat,
        columns.exact,
        strict=True,
    ):
        shown = _shown_sources(series, chunks)
        d: dict[str, Any] = {
            "provider": provider,
            "region": region,
            "zone": zone,
            "start": iso_s(start),
            "end": iso_s(end),
            "mean_g_per_kwh": mean,
            "kg_co2e": kg,
            "savings_pct": pct,
            "savings_kg": saved,
            "baseline_kg_co2e": base,
            "energy_kwh": kwh,
            "pue": pue,
            "basis": shown.basis,
            "sources": [dict(share) for share in shown.dicts],  # copies: the summary is shared
            "static_fallback": shown.fallback,
            "flat": flat,
        }
        if with_chunks:
            d["chunks"] = [{"start": iso_s(a), "end": iso_s(b)} for a, b in chunks]
        if not exact:
            d["exact"] = False
        out.append(d)
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    job: str
    signal: Signal
    generated_at: datetime
    earliest: datetime
    deadline: datetime
    duration_s: int
    interruptible: bool
    min_chunk_s: int
    it_energy: EnergyEstimate  # the hardware model at PUE 1: region-independent
    baseline: Baseline
    # kg_co2e ascending: a tuple from plan(); from plan_batch a sequence that builds each option
    # when it is first read (a batch ranks every region for thousands of specs and shows a few)
    options: Sequence[PlanOption]
    no_time_preference: bool
    # embodied, total and SCI per option, and which hardware alternative (added when shown)
    footprints: Footprints | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reader should know about this plan, in words (worked out when shown)."""
        inputs = note_inputs(self.options, self.no_time_preference)
        return tuple(_notes(inputs, self.no_time_preference, self.baseline))

    @property
    def energy_kwh(self) -> float:
        """IT energy, before any region's PUE (see the module docstring)."""
        return self.it_energy.it_kwh

    @property
    def best(self) -> PlanOption:
        return self.options[0]

    def to_dict(self, *, top: int | None = None) -> dict[str, Any]:
        columns = columns_of(self.options, top)
        shown = option_dicts(columns, with_chunks=self.interruptible)
        baseline = self.baseline.to_dict()
        fp = self.footprints
        if fp is not None:
            fp.add_fields(columns, shown, self.baseline)
            baseline.update(fp.baseline_fields(self.baseline))
        out = {
            "job": self.job,
            "signal": self.signal.value,
            "energy_kwh": round(self.energy_kwh, 6),
            "baseline": baseline,
            "options": shown,
            "generated_at": iso_dt(self.generated_at),
            "window": {"earliest": iso_dt(self.earliest), "deadline": iso_dt(self.deadline)},
            "duration_s": self.duration_s,
            "interruptible": self.interruptible,
            "min_chunk_s": self.min_chunk_s,
            "energy": _energy_shown(self.it_energy),
            "no_time_preference": self.no_time_preference,
            "notes": list(self.notes),
        }
        if fp is not None:
            out["footprint"] = fp.summary(self, columns)
        return out


ENERGY_BASIS = (
    "energy_kwh is the IT energy; each option's and the baseline's energy_kwh include their region's PUE"
)


def _energy_shown(energy: EnergyEstimate) -> dict[str, Any]:
    """A plan's `energy` object (its assumptions but the PUE's: options differ in PUE), a new dict
    each time. Worked out once per estimate: a batch's plans share one IT energy estimate per
    hardware and duration (about one per two specs of bench_cli_plan_dir's), and wording it (a
    duration formatted through a timedelta, six roundings) cost ~7 us a plan. The memo is by
    identity, as `_one_source`'s (the estimate is held, so its id stays its own)."""
    entry = _ENERGY_SHOWN.get(id(energy))
    if entry is None or entry[0] is not energy:
        d = energy.to_dict()
        words = tuple(a for a in d["assumptions"] if not a.startswith("PUE"))
        entry = (energy, (d["it_power_w"], d["power_w"], d["source"], words))
        if len(_ENERGY_SHOWN) >= MAX_ONE_SOURCE:
            _ENERGY_SHOWN.clear()  # plain and thread-safe: at worst an estimate is worded again
        _ENERGY_SHOWN[id(energy)] = entry
    it_power_w, power_w, source, words = entry[1]
    return {
        "basis": ENERGY_BASIS,
        "it_power_w": it_power_w,
        "power_w": dict(power_w),
        "source": source,
        "assumptions": list(words),
    }


_ENERGY_SHOWN: dict[int, tuple[EnergyEstimate, tuple[float, dict[str, float], str, tuple[str, ...]]]] = {}


def plan(
    spec: JobSpec,
    candidates: Sequence[Candidate | tuple[PlanRegion, IntensitySeries]],
    *,
    now: datetime,
    energy_for: EnergyFor | None = None,
    baseline: Candidate | tuple[PlanRegion, IntensitySeries] | None = None,
    model: EnergyModel | None = None,
) -> Plan:
    """Rank every candidate region by the emissions of its best run in the spec's window.

    `candidates` are (region, series) pairs, already filtered by placement; each series must cover
    [earliest, deadline] without gaps, all in one signal. `baseline` supplies the series of the
    spec's baseline region when that region is not a candidate (e.g. excluded by placement).
    `energy_for` maps a region to its energy estimate; by default the hardware model at the region's
    PUE. Raises UserInputError (window cannot be met, no candidates) or PlanningError (bad inputs).
    """
    cands = [Candidate(*c) for c in candidates]
    if not cands:
        raise UserInputError("placement", "no candidate region to plan in")
    earliest, deadline = spec.resolve_window(now)
    lo, hi, d = to_epoch_s(earliest), to_epoch_s(deadline), spec.duration_s
    energy_model = model or default_model()
    it_power = energy_model.power(spec)
    energy_of = energy_for or energy_by_pue(energy_model, it_power, d)

    base_cand = _baseline_candidate(spec, cands, baseline)
    signal = _one_signal(cands, base_cand)

    found = _evaluate(cands, spec, lo, hi, d)

    base: Baseline | None = None
    if base_cand is not None:
        base_mean = _series_mean(base_cand, lo, lo + d)
        base_energy = energy_of(base_cand.region)
        base = baseline_run(base_cand, lo, d, base_mean, base_energy, "spec")

    ranked = _options(cands, found, energy_for, energy_model, it_power, d, base)
    options = [r[0] for r in ranked]

    if base is None:
        top, top_cand, top_earliest_mean = ranked[0]
        base = baseline_run(top_cand, lo, d, top_earliest_mean, top.energy, "own-region")

    no_pref = all(o.flat for o in options)
    return Plan(
        job=spec.name,
        signal=signal,
        generated_at=now.astimezone(UTC),
        earliest=earliest,
        deadline=deadline,
        duration_s=d,
        interruptible=spec.interruptible,
        min_chunk_s=spec.min_chunk_s,
        it_energy=energy_model.at_pue(it_power, d, 1.0),
        baseline=base,
        options=tuple(options),
        no_time_preference=no_pref,
    )


class NoteInputs(NamedTuple):
    """What a plan's notes say about its options (refs in rank order)."""

    only_static: bool  # every option's run uses static values only (read when no time preference)
    fallback: list[str]  # options whose run uses static or modelled values (when there is one)
    inexact: list[str]  # options that are not the guaranteed optimum


def note_inputs(options: Sequence[PlanOption], no_time_preference: bool) -> NoteInputs:
    # options built when read (plan_batch's RankedOptions) work these out without building options
    own: Callable[[bool], NoteInputs] | None = getattr(options, "note_inputs", None)
    if own is not None:
        return own(no_time_preference)
    if no_time_preference:
        only_static = all(s.kind is Kind.STATIC for o in options for s in o.sources)
        return NoteInputs(only_static, [], [o.ref for o in options if not o.exact])
    may: dict[int, bool] = {}  # series from one source share their provenance tuple
    fallback = []
    for o in options:
        provs = o.series.provenances
        flag = may.get(id(provs))
        if flag is None:
            flag = may[id(provs)] = any(p.kind in FALLBACK_KINDS for p in provs)
        if flag and o.static_fallback:
            fallback.append(o.ref)
    return NoteInputs(False, fallback, [o.ref for o in options if not o.exact])


def make_option(
    cand: Candidate,
    *,
    chunks: tuple[tuple[int, int], ...],
    mean_g_per_kwh: float,
    energy_kwh: float,
    pue: float,
    pue_stated: bool,
    power: PowerBreakdown,
    baseline_kg_co2e: float,
    flat: bool,
    exact: bool,
) -> PlanOption:
    """The one place an option is built (plan() and plan_batch() alike): kg, savings and their
    percentage are worked out here, the same way for both."""
    kg, saved = option_figures(energy_kwh, mean_g_per_kwh, baseline_kg_co2e)
    region = cand.region
    return PlanOption(  # by position, in field order: a plan builds one per region (139 for a CPU job)
        region.provider,
        region.region,
        region.zone,
        chunks[0][0],  # start_s
        chunks[-1][1],  # end_s
        chunks,
        mean_g_per_kwh,
        kg,  # kg_co2e
        energy_kwh,
        pue,
        baseline_kg_co2e,
        saved,  # savings_kg
        100.0 * saved / baseline_kg_co2e if baseline_kg_co2e > 0 else None,  # savings_pct
        flat,
        exact,
        cand.series,
        power,
        pue_stated,
    )


# ---- internals -------------------------------------------------------------------------------------

# per candidate: chunks [(start_s, end_s)], mean g/kWh, mean g/kWh of a run at earliest, flat, exact
_Found = tuple[tuple[tuple[int, int], ...], float, float, bool, bool]


def _options(
    cands: list[Candidate],
    found: list[_Found],
    energy_for: EnergyFor | None,
    model: EnergyModel,
    it_power: PowerBreakdown,
    d: int,
    base: Baseline | None,
) -> list[tuple[PlanOption, Candidate, float]]:
    """One option per candidate, ranked by kg CO2e (then earlier start, then name), each with the
    candidate and its mean at earliest (for an own-region baseline)."""
    if energy_for is None:  # the usual case: one hardware model, only the PUE differs
        it_kwh = it_power.it_w * d / 3.6e6
        per_region = [pue_of(c.region, model.host.default_pue) for c in cands]
        energies = [(it_kwh * pue, pue, stated, it_power) for pue, stated in per_region]
    else:
        estimates = [energy_for(c.region) for c in cands]
        energies = [(e.kwh, e.pue, e.pue_stated, e.power) for e in estimates]
    base_kg_fixed = base.kg_co2e if base is not None else None
    ranked: list[tuple[tuple[float, int, str, str], PlanOption, Candidate, float]] = []
    for cand, (chunks, mean, earliest_mean, flat, exact), (kwh, pue, stated, power) in zip(
        cands, found, energies, strict=True
    ):
        base_kg = base_kg_fixed if base_kg_fixed is not None else kwh * earliest_mean / 1000.0
        option = make_option(
            cand,
            chunks=chunks,
            mean_g_per_kwh=mean,
            energy_kwh=kwh,
            pue=pue,
            pue_stated=stated,
            power=power,
            baseline_kg_co2e=base_kg,
            flat=flat,
            exact=exact,
        )
        ranked.append(
            ((option.kg_co2e, option.start_s, option.provider, option.region), option, cand, earliest_mean)
        )
    ranked.sort(key=itemgetter(0))
    return [(option, cand, earliest_mean) for _, option, cand, earliest_mean in ranked]


def _evaluate(cands: list[Candidate], spec: JobSpec, lo: int, hi: int, d: int) -> list[_Found]:
    """Best run per candidate, vectorised over the candidates whose series share edges (the usual
    case: one service, one grid), so 150 regions cost a handful of numpy calls. A contiguous run in a
    series of one value all through the window (static tables) needs no search at all."""
    groups: dict[bytes, list[int]] = {}
    seen: dict[int, bytes] = {}  # edges arrays shared by identity need hashing once
    out: list[_Found | None] = [None] * len(cands)
    one_value = not spec.interruptible and lo <= hi - d
    for i, c in enumerate(cands):
        if one_value:
            quick = _one_value_run(c.series, lo, hi, d)
            if quick is not None:
                out[i] = quick
                continue
        edges = c.series.edges_s
        key = seen.get(id(edges))
        if key is None:
            key = seen[id(edges)] = edges.tobytes()
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        edges = cands[members[0]].series.edges_s
        # copy only the window of each series (a 72 h forecast for a 6 h window is mostly not needed)
        i0 = max(int(np.searchsorted(edges, lo, side="right")) - 1, 0)
        i1 = max(int(np.searchsorted(edges, hi, side="left")), i0 + 1)
        values = np.array([cands[i].series.values[i0:i1] for i in members])
        edges = edges[i0 : i1 + 1]
        try:
            window_edges, window_vals = window_slice(edges, values, lo, hi)
        except ValueError as exc:
            names = ", ".join(region_ref(cands[i].region) for i in members)
            raise PlanningError(f"intensity series for {names}: {exc}") from None
        flat = (window_vals.max(axis=1) == window_vals.min(axis=1)).tolist()
        # the figures reported are summed over each run itself (run_integrals): the same whatever
        # span the series was fetched for
        rows = np.arange(len(members))
        earliest_means = _run_means(edges, values, rows, np.full(len(members), lo), d)
        if spec.interruptible:
            chunk_plans = cheapest_chunks_many(edges, values, lo, hi, d, spec.min_chunk_s)
            pieces = [(r, a, b) for r, cp in enumerate(chunk_plans) for a, b in cp.chunks]
            parts = run_integrals(
                edges, values, *(np.array(col, dtype=np.int64) for col in zip(*pieces, strict=True))
            ).tolist()
            totals = [0.0] * len(members)
            for (r, _, _), part in zip(pieces, parts, strict=True):  # in time order, row by row
                totals[r] += part
            found: list[_Found] = [
                (cp.chunks, total / d, em, f, cp.exact)
                for cp, total, em, f in zip(chunk_plans, totals, earliest_means, flat, strict=True)
            ]
        else:
            res = best_starts_in_window(window_edges, window_vals, lo, hi - d, d)
            means = _run_means(edges, values, rows, res.start_s, d)
            found = [
                (((s, s + d),), m, em, f, True)
                for s, m, em, f in zip(res.start_s.tolist(), means, earliest_means, flat, strict=True)
            ]
        if len(members) == len(cands):
            return found  # one group of all candidates: already in their order
        for i, item in zip(members, found, strict=True):
            out[i] = item
    return [o for o in out if o is not None]


def _one_value_run(series: IntensitySeries, lo: int, hi: int, d: int) -> _Found | None:
    """The best contiguous run when the series is a single interval covering the window (a static
    value): earliest, at that value, flat. The figures are the ones the search and `run_integrals`
    give, the same floating-point operations in the same order: F = value x d, mean = F / d. None
    when the series is anything else (the search decides, and reports gaps or short coverage)."""
    edges = series.edges_s
    if len(edges) != 2 or series.values.dtype != np.float64:  # the search's arithmetic is float64's
        return None
    first, last = edges.tolist()
    value = float(series.values[0])
    if first > lo or last < hi or math.isnan(value):
        return None
    mean = value * float(d) / d
    return ((lo, lo + d),), mean, mean, True, True


def pue_of(region: PlanRegion, default_pue: float) -> tuple[float, bool]:
    pue = region.pue
    if pue is None:
        return default_pue, False
    if pue < 1.0:
        raise PlanningError(f"{region_ref(region)}: a PUE below 1 ({pue}) is not physical")
    return pue, True


def energy_by_pue(model: EnergyModel, power: PowerBreakdown, duration_s: int) -> EnergyFor:
    def energy_for(region: PlanRegion) -> EnergyEstimate:
        pue, stated = pue_of(region, model.host.default_pue)
        return EnergyEstimate(power, pue, duration_s, stated)

    return energy_for


def _baseline_candidate(
    spec: JobSpec, cands: list[Candidate], given: Candidate | tuple[PlanRegion, IntensitySeries] | None
) -> Candidate | None:
    if spec.baseline is None:
        return None
    if given is not None:
        cand = Candidate(*given)
        if region_ref(cand.region) != spec.baseline:
            raise PlanningError(
                f"baseline series is for {region_ref(cand.region)}, the spec says {spec.baseline}"
            )
        return cand
    for c in cands:
        if region_ref(c.region) == spec.baseline:
            return c
    raise PlanningError(f"baseline {spec.baseline} is not a candidate and no series was given for it")


def _one_signal(cands: list[Candidate], base: Candidate | None) -> Signal:
    signals = {c.series.signal for c in cands}
    if base is not None:
        signals.add(base.series.signal)
    if len(signals) > 1:
        raise PlanningError(
            "candidates mix average and marginal intensity; they measure different things and are "
            "never compared: ask the intensity service for one signal"
        )
    return signals.pop()


def _series_mean(cand: Candidate, start_s: int, end_s: int) -> float:
    edges, values = cand.series.edges_s, cand.series.values[None, :]
    try:
        window_slice(edges, values, start_s, end_s)  # covered, without gaps
    except ValueError as exc:
        raise PlanningError(f"intensity series for {region_ref(cand.region)}: {exc}") from None
    return _run_means(edges, values, np.zeros(1, dtype=np.int64), np.array([start_s]), end_s - start_s)[0]


def _run_means(edges: IntArray, values: FloatArray, rows: IntArray, starts: IntArray, d: int) -> list[float]:
    starts = np.asarray(starts, dtype=np.int64)
    means: list[float] = (run_integrals(edges, values, rows, starts, starts + d) / d).tolist()
    return means


def baseline_run(
    cand: Candidate,
    lo: int,
    d: int,
    mean: float,
    energy: EnergyEstimate,
    basis: Literal["spec", "own-region"],
) -> Baseline:
    sources, fallback = sources_of(cand.series, ((lo, lo + d),))
    return Baseline(
        provider=cand.region.provider,
        region=cand.region.region,
        zone=cand.region.zone,
        start=from_epoch_s(lo),
        end=from_epoch_s(lo + d),
        mean_g_per_kwh=mean,
        kg_co2e=energy.kg_co2e(mean),
        energy=energy,
        sources=sources,
        static_fallback=fallback,
        basis=basis,
    )


def emissions_basis(sources: Sequence[SourceShare]) -> str | None:
    """direct | lifecycle when every value used says so; mixed when they differ; None when unstated."""
    bases = {s.basis for s in sources}
    if len(bases) > 1:
        return "mixed"
    only = bases.pop() if bases else None
    return only.value if only is not None else None


def series_bases(series: IntensitySeries) -> frozenset[Basis | None]:
    """Every emissions basis a series' values state."""
    provs = series.provenances
    if len(provs) == 1:
        return _one_source(provs).bases
    return frozenset(p.basis for p in provs)


def mixed_basis_notice(series_by_ref: Mapping[str, IntensitySeries]) -> str | None:
    """A plan's notice when the regions it compares hold values of different emissions bases.

    They are ranked as given, not converted: no documented factor turns a grid's direct intensity into
    its lifecycle one (the gap is near zero for coal and most of the value for hydro or nuclear), so
    the plan says which regions are on which basis instead."""
    by_basis: dict[str, list[str]] = {}
    for ref, series in series_by_ref.items():
        provs = series.provenances
        for name in _one_source(provs).basis_names if len(provs) == 1 else _basis_names(series_bases(series)):
            refs = by_basis.get(name)
            if refs is None:
                by_basis[name] = [ref]
            else:
                refs.append(ref)
    if len(by_basis) < 2:
        return None
    parts = []
    for name, refs in sorted(by_basis.items(), key=lambda kv: len(kv[1])):
        shown = ", ".join(refs[:4]) + (f" and {len(refs) - 4} more" if len(refs) > 4 else "")
        parts.append(f"{name}: {shown}")
    return (
        "emissions bases differ (" + "; ".join(parts) + "): ranked as given, not converted (no single "
        "factor converts direct to lifecycle; lifecycle adds upstream and construction emissions, most "
        "for low-carbon grids), so compare regions of different bases with care"
    )


def _basis_names(bases: frozenset[Basis | None]) -> tuple[str, ...]:
    return tuple(b.value if b is not None else "unstated" for b in bases)


def sources_of(
    series: IntensitySeries, chunks: Sequence[tuple[int, int]]
) -> tuple[tuple[SourceShare, ...], bool]:
    """Which provenances the chosen time used, by share of time; and whether any was static or
    modelled (the `static_fallback` flag)."""
    provs = series.provenances
    if len(provs) == 1:
        one = _one_source(provs)
        return one.shares, one.fallback
    edges = series.edges_s
    weights = np.zeros(len(provs))
    for a, b in chunks:
        i0 = int(np.searchsorted(edges, a, side="right")) - 1
        i1 = int(np.searchsorted(edges, b, side="left"))
        seg = edges[i0 : i1 + 1]
        overlap = np.minimum(seg[1:], b) - np.maximum(seg[:-1], a)
        idx = series.prov_index[i0:i1]
        keep = idx >= 0
        weights += np.bincount(idx[keep], weights=overlap[keep], minlength=len(provs))
    total = weights.sum()
    shares = []
    fallback = False
    for k in np.flatnonzero(weights > 0):
        p = provs[int(k)]
        shares.append(SourceShare(p.source, p.kind, float(weights[k] / total), p.note, p.basis, p.fetched_at))
        fallback = fallback or p.kind in FALLBACK_KINDS
    shares.sort(key=lambda s: -s.share)
    return tuple(shares), fallback


def _notes(inputs: NoteInputs, no_pref: bool, base: Baseline) -> list[str]:
    notes: list[str] = []
    if no_pref:
        notes.append(
            NO_TIME_PREFERENCE
            if inputs.only_static
            else "no time preference: every candidate's intensity is flat over the window"
        )
        notes.append("each region starts at earliest; regions are ranked by their (annual) intensity and PUE")
    fallback = inputs.fallback
    if fallback and not no_pref:
        shown = ", ".join(fallback[:5]) + (f" and {len(fallback) - 5} more" if len(fallback) > 5 else "")
        notes.append(f"static or modelled values fill part of the window for {shown}")
    inexact = inputs.inexact
    if inexact:
        notes.append(
            "interruptible schedule is the best single run, not the best split one (min_chunk off the "
            "data's step makes the exact programme too large) for " + ", ".join(inexact[:5])
        )
    if base.basis == "own-region":
        notes.append("savings are against starting at earliest in each option's own region (no baseline set)")
    return notes


class _SourcesShown(NamedTuple):
    """What an option shows of the provenances its run used."""

    shares: tuple[SourceShare, ...]
    dicts: tuple[dict[str, Any], ...]  # each share's dict (shared: copy before handing out)
    basis: str | None  # emissions_basis(shares)
    fallback: bool  # any share static or modelled
    bases: frozenset[Basis | None]  # every basis the series states (series_bases)
    basis_names: tuple[str, ...]  # how mixed_basis_notice names them


def _shown_sources(series: IntensitySeries, chunks: Sequence[tuple[int, int]]) -> _SourcesShown:
    provs = series.provenances
    if len(provs) == 1:
        return _one_source(provs)
    shares, fallback = sources_of(series, chunks)
    bases = frozenset(p.basis for p in provs)
    return _SourcesShown(
        shares,
        tuple(_share_dict(s) for s in shares),
        emissions_basis(shares),
        fallback,
        bases,
        _basis_names(bases),
    )


def _one_source(provs: tuple[Provenance, ...]) -> _SourcesShown:
    """A series of one provenance (static tables, one live source) shows it whole whatever the run:
    worked out once per provenance tuple. Series read out of one merged series share its tuple, so
    the memo is by identity (the tuple is held, so its id stays its own) and lasts across plans."""
    entry = _ONE_SOURCE.get(id(provs))
    if entry is not None and entry[0] is provs:
        return entry[1]
    p = provs[0]
    share = SourceShare(p.source, p.kind, 1.0, p.note, p.basis, p.fetched_at)
    shown = _SourcesShown(
        (share,),
        (_share_dict(share),),
        emissions_basis((share,)),
        p.kind in FALLBACK_KINDS,
        frozenset((p.basis,)),
        _basis_names(frozenset((p.basis,))),
    )
    if len(_ONE_SOURCE) >= MAX_ONE_SOURCE:
        _ONE_SOURCE.clear()  # plain and thread-safe: at worst a summary is worked out again
    _ONE_SOURCE[id(provs)] = (provs, shown)
    return shown


MAX_ONE_SOURCE = 1 << 13
_ONE_SOURCE: dict[int, tuple[tuple[Provenance, ...], _SourcesShown]] = {}
