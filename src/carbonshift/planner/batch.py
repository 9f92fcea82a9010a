"""Many job specs planned at once, with the plans `plan()` gives for each one.

    plan_batch(specs, candidates, now=now)  ==  [plan(spec, candidates_for(spec), now=now) for spec in specs]

The same options in the same order with the same figures, to the last bit, and the same errors (the
first failing spec's, raised by `plan()` itself); see "Exactness" for the one proviso. `candidates` is
one sequence of (region, series) pairs shared by every spec, or a function giving each spec its own;
`baseline` is likewise one pair, a function, or None.

What is shared, and why it is fast:

* Series. Each distinct series (by identity) is integrated once, C(t) = integral from its first edge,
  and series with the same edges are stacked into one matrix. Every spec whose window lies inside a
  series reuses it.
* Start times, by duration: `contiguous.py`'s search, the one `plan()` uses. Its candidate starts
  (`Starts`) and their F are listed once per group of series and duration, for every spec of that
  duration; its `StartTable` (range minima) answers every (spec, region) window of that duration in
  one pass of numpy calls. Where few specs share a duration the table costs more than it saves, and
  each spec's window is searched on its own (`window_search`, as `plan()` does).
* Interruptible specs: every window's exact programme runs together (`interruptible.cheapest_chunks_batch`,
  one programme for all windows of a slot length and chunk minimum; a flat series' plan is the run
  at earliest, as in `plan()`), and each plan's figures are summed over its chunks as `plan()` sums
  them. Ranking and options as for contiguous specs.
* Ranking: one sort over a (specs x regions) matrix.
* Options are built when read: `Plan.options` is a `RankedOptions`, a sequence that builds each
  `PlanOption` on first access. `plan.best`, `to_dict(top=N)` and the notes build only what they show.

Any spec whose inputs `plan()` would refuse (no candidates, an impossible window, a series with a gap
in the window, mixed signals, an unknown baseline, a PUE below 1) is handed to `plan()` itself, in
place: the refusal is then `plan()`'s own error.

Exactness. The figures a plan reports (means, kg, savings, baselines) are sums over each run
(`contiguous.run_integrals`), in `plan()` and here alike, so they agree to the last bit once the
start is the same; options are ranked by those figures wherever two kg are close enough for rounding
to matter. The start is chosen, in both, by the same search and tie rule (`contiguous.tie_limit`); both
find the least by differences of C, `plan()` of C from the window's start and the batch of C from the
series' first edge, so their rounding differs by about 1e-16 of the integral of |values| over the
whole series. Only a start whose emissions lie within that of the tie tolerance can be chosen by one
and not the other: runs whose emissions are below ~1e-15 of the series' integral (values near zero
next to ordinary ones), or adversarial data. Both starts are then optimal to within that rounding.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from carbonshift.config.jobspec import Hardware, JobSpec
from carbonshift.intensity.types import IntensitySeries, Kind, Signal
from carbonshift.planner.contiguous import (
    Block,
    Starts,
    StartTable,
    choose,
    locate,
    run_integrals,
    window_search,
)
from carbonshift.planner.energy import EnergyEstimate, EnergyModel, PowerBreakdown, default_model
from carbonshift.planner.footprints import (
    FootprintFigures,
    amortised_kgs,
    footprint_lists,
    hardware_key,
    reserved_kgs,
)
from carbonshift.planner.interruptible import ChunkProblem, cheapest_chunks_batch
from carbonshift.planner.option_columns import OptionColumns, shown_figures_of_arrays
from carbonshift.planner.options import FlagColumns, LazyOptions, OptionKeys, option_keys
from carbonshift.planner.placement import PlacementIndex, PlanRegion, region_ref
from carbonshift.planner.plan import (
    FALLBACK_KINDS,
    Baseline,
    Candidate,
    EnergyFor,
    NoteInputs,
    Plan,
    PlanningError,
    PlanOption,
    SourceShare,
    baseline_run,
    energy_by_pue,
    make_option,
    plan,
    pue_of,
    sources_of,
)
from carbonshift.timeutil import to_epoch_s

if TYPE_CHECKING:
    from carbonshift.planner.footprints import Footprints

__all__ = [
    "PlacementIndex",
    "RankedOptions",
    "RankedRuns",
    "own_region_baseline",
    "plan_batch",
    "ranked_runs",
]  # PlacementIndex: from placement.py

IntArray = npt.NDArray[np.int64]
JobT = TypeVar("JobT")
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CandidateLike = Candidate | tuple[PlanRegion, IntensitySeries]
CandidatesFor = Callable[[JobSpec], Sequence[CandidateLike]]
BaselineFor = Callable[[JobSpec], CandidateLike | None]
WindowFor = Callable[[JobSpec], tuple[datetime, datetime]]
FootprintsFor = Callable[[JobSpec], "Footprints"]

# a sparse table (levels x values) larger than this is not built: each job's window is evaluated
MAX_TABLE = 1 << 25
# (spec, region) pairs evaluated together: about 100 bytes each at the peak
MAX_PAIRS = 1 << 21
# options per plan whose figures are summed in the vectorised pass (`carbonshift plan --top 3`)
PRESUMMED = 3


def plan_batch(
    specs: Sequence[JobSpec],
    candidates: Sequence[CandidateLike] | CandidatesFor,
    *,
    now: datetime,
    baseline: CandidateLike | BaselineFor | None = None,
    energy_for: EnergyFor | None = None,
    model: EnergyModel | None = None,
    window_for: WindowFor | None = None,
    footprints_for: FootprintsFor | None = None,
) -> list[Plan]:
    """`plan()` for every spec, in order (see the module docstring for what is shared).

    `candidates`: the (region, series) pairs every spec plans over, or a function giving a spec its
    own (return the same sequence object for specs that share one: its regions are then prepared once).
    `baseline`: the baseline region's pair when it is not a candidate, or a function giving it per
    spec (None where not needed). `now`, `energy_for` and `model` are `plan()`'s.
    `window_for`: each spec's `resolve_window(now)`, where the caller has worked it out already (the
    advisor needs it for the span it fetches; resolving twice cost more than the planning of a spec).
    `footprints_for`: each plan's `footprints` (None: none), set as the plan is built rather than by a
    `dataclasses.replace` of every plan afterwards.
    """
    energy_model = model or default_model()
    if callable(candidates):
        cands_for: CandidatesFor = candidates
    else:
        shared = candidates

        def cands_for(_spec: JobSpec) -> Sequence[CandidateLike]:
            return shared

    if baseline is None or callable(baseline):
        base_for: BaselineFor | None = baseline
    else:
        shared_base = baseline

        def base_for(_spec: JobSpec) -> CandidateLike | None:
            return shared_base

    out: list[Plan | None] = [None] * len(specs)
    prep = _Prep(energy_model, energy_for, now)
    if window_for is not None:
        prep.window_for = window_for
    prep.footprints_for = footprints_for
    to_plan: list[tuple[int, CandidateLike | None]] = []  # specs plan() sees itself
    for i, spec in enumerate(specs):
        given = base_for(spec) if base_for is not None and spec.baseline is not None else None
        if not prep.add(i, spec, cands_for(spec), given):
            to_plan.append((i, given))
    if prep.jobs:
        prep.pool.build()
        for split in (False, True):
            jobs = [job for job in prep.jobs if job.spec.interruptible is split]
            for block in _blocks(jobs, MAX_PAIRS):  # bounded memory, however large the batch
                planned = (
                    _interruptible_plans(prep, block, now) if split else _contiguous_plans(prep, block, now)
                )
                for i, result in planned.items():
                    out[i] = result
        to_plan += [(job.index, job.given) for job in prep.demoted]
    # plan()'s own error for the first spec (in order) it refuses
    for i, given in sorted(to_plan, key=lambda item: item[0]):
        spec = specs[i]
        result = plan(spec, cands_for(spec), now=now, energy_for=energy_for, baseline=given, model=model)
        out[i] = result if footprints_for is None else replace(result, footprints=footprints_for(spec))
    plans = [p for p in out if p is not None]
    if len(plans) != len(specs):  # pragma: no cover - every spec is planned above
        raise AssertionError("a spec was left unplanned")
    return plans


def own_region_baseline(result: Plan, ref: str) -> Baseline | None:
    """The baseline `plan()` gives `result`'s spec planned over the region `ref` alone (its run at
    earliest there), read from a `plan_batch` plan that ranked that region among others: the figures
    `_finish` uses for the best region's, for another. None when `result` is not such a plan."""
    options = result.options
    if not isinstance(options, RankedOptions):
        return None
    return options.own_base(ref)


class RankedRuns(NamedTuple):
    """Every option of some plans as arrays, plan by plan and best first in each, with `option_keys`'
    figures: what ranking options across plans (`alternatives.merge_many`) reads without building one.
    """

    plan: IntArray  # which of the plans given
    rank: IntArray  # the option's rank in that plan
    kg_co2e: FloatArray
    start_s: IntArray
    flat: BoolArray
    baseline_kg_co2e: FloatArray  # the option's own `baseline_kg_co2e`
    name: IntArray  # the option's (provider, region) as its index in `names`, which is sorted
    names: list[tuple[str, str]]


def ranked_runs(plans: Sequence[Plan]) -> RankedRuns:
    """The options of `plans` as `RankedRuns`: a batch's plans read from their ranking's arrays, all
    of one ranking at once (a Python pass per option cost more than the merge it feeds), any other
    plan's from its keys."""
    ids: dict[tuple[str, str], int] = {}  # names in order of first sight; sorted at the end
    parts: list[_RunColumns] = []
    batches: dict[int, tuple[_Ranking, list[int], list[int]]] = {}
    for k, planned in enumerate(plans):
        options = planned.options
        if isinstance(options, RankedOptions):
            ranking, ks, jrs = batches.setdefault(id(options._ranking), (options._ranking, [], []))
            ks.append(k)
            jrs.append(options._job)
            continue
        keys = option_keys(options)
        n = len(keys.kg_co2e)
        seen = zip(keys.provider, keys.region, strict=True)
        parts.append(
            (
                np.full(n, k, dtype=np.int64),
                np.arange(n, dtype=np.int64),
                np.array(keys.kg_co2e, dtype=np.float64),
                np.array(keys.start_s, dtype=np.int64),
                np.array(keys.flat, dtype=bool),
                np.array([o.baseline_kg_co2e for o in options], dtype=np.float64),
                np.array([ids.setdefault(name, len(ids)) for name in seen], dtype=np.int64),
            )
        )
    for ranking, ks, jrs in batches.values():
        parts.append(ranking.runs(np.array(ks, dtype=np.int64), jrs, ids))
    names = sorted(ids)
    sorted_id = np.empty(len(names), dtype=np.int64)
    sorted_id[np.array([ids[n] for n in names], dtype=np.int64)] = np.arange(len(names), dtype=np.int64)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        none = np.zeros(0, dtype=np.float64)
        return RankedRuns(empty, empty, none, empty, np.zeros(0, dtype=bool), none, empty, names)
    plan_of, rank, kg, start, flat, base, name = (np.concatenate(c) for c in zip(*parts, strict=True))
    return RankedRuns(plan_of, rank, kg, start, flat, base, sorted_id[name], names)


# ranked_runs' columns before the names are sorted: plan, rank, kg, start, flat, baseline kg, name id
_RunColumns = tuple[IntArray, IntArray, FloatArray, IntArray, BoolArray, FloatArray, IntArray]


# ---- the lazily built ranking -----------------------------------------------------------------------


class RankedOptions(LazyOptions):
    """A batch plan's options, best first, each built the first time it is read (see `LazyOptions`)."""

    __slots__ = ("_job", "_ranking")

    def __init__(self, ranking: _Ranking, job: int) -> None:
        super().__init__()
        self._ranking = ranking
        self._job = job

    def __len__(self) -> int:
        return self._ranking.jobs[self._job].count

    def note_inputs(self, no_time_preference: bool) -> NoteInputs:
        return self._ranking.note_inputs(self._job, no_time_preference)

    def keys(self) -> OptionKeys:
        return self._ranking.keys(self._job)

    def own_base(self, ref: str) -> Baseline | None:
        return self._ranking.own_base(self._job, ref)

    def flag_columns(self) -> FlagColumns:
        return self._ranking.flag_columns(self._job)

    def _make(self, ranks: list[int]) -> list[PlanOption]:
        return self._ranking.options(self._job, ranks)

    def columns(self, top: int | None = None) -> OptionColumns:
        return self._ranking.columns(self._job, top)


# ---- preparing specs --------------------------------------------------------------------------------


class _CandSet:
    """One candidate sequence as given (several specs usually share it), prepared once."""

    __slots__ = (
        "by_ref",
        "cands",
        "opt_refs",
        "providers",
        "pue",
        "pue_ok",
        "raw",
        "regions",
        "rows",
        "series",
        "signals",
        "stated",
        "zones",
    )

    def __init__(self, raw: Sequence[CandidateLike], pool: _Pool, default_pue: float) -> None:
        self.raw = raw  # kept alive: the set is found again by id(raw)
        self.cands = [c if isinstance(c, Candidate) else Candidate(*c) for c in raw]
        self.rows = np.array([pool.row(c.series) for c in self.cands], dtype=np.int64)
        self.signals = {c.series.signal for c in self.cands}
        self.opt_refs = [f"{c.region.provider}:{c.region.region}" for c in self.cands]
        # what an option's columns read of its candidate (`_Ranking.columns`)
        self.providers = [c.region.provider for c in self.cands]
        self.regions = [c.region.region for c in self.cands]
        self.zones = [c.region.zone for c in self.cands]
        self.series = [c.series for c in self.cands]
        self.by_ref: dict[str, int] = {}
        for j, c in enumerate(self.cands):
            self.by_ref.setdefault(region_ref(c.region), j)
        try:
            pues = [pue_of(c.region, default_pue) for c in self.cands]
        except PlanningError:  # plan() raises it, for the specs that use this set
            self.pue_ok = False
            pues = [(1.0, True)] * len(self.cands)
        else:
            self.pue_ok = True
        self.pue = [p for p, _ in pues]
        self.stated = [s for _, s in pues]


class _Job:
    """A contiguous spec the vectorised pass plans."""

    __slots__ = (
        "base",
        "base_energy",
        "base_row",
        "count",
        "cset",
        "custom",
        "d",
        "deadline",
        "earliest",
        "given",
        "hi",
        "index",
        "lo",
        "power",
        "pstart",
        "signal",
        "spec",
    )

    def __init__(self) -> None:
        self.index = 0
        self.spec: JobSpec
        self.cset: _CandSet
        self.earliest: datetime
        self.deadline: datetime
        self.lo = self.hi = self.d = 0
        self.signal: Signal
        self.given: CandidateLike | None = None
        self.base: Candidate | None = None
        self.base_row = -1
        self.base_energy: EnergyEstimate | None = None
        self.power: PowerBreakdown
        self.custom: list[EnergyEstimate] | None = None
        self.pstart = 0  # its pairs are pstart .. pstart + count - 1, in candidate order
        self.count = 0


class _Prep:
    def __init__(self, model: EnergyModel, energy_for: EnergyFor | None, now: datetime) -> None:
        self.model = model
        self.energy_for = energy_for
        self.now = now
        self.window_for: WindowFor = self._resolve_window
        self.footprints_for: FootprintsFor | None = None
        self.pool = _Pool()
        self.sets: dict[int, _CandSet] = {}
        self._by_items: dict[tuple[tuple[int, int], ...], _CandSet] = {}
        self._held: list[Sequence[CandidateLike]] = []
        self.jobs: list[_Job] = []
        self.demoted: list[_Job] = []
        self._it_energy: dict[tuple[int, int], EnergyEstimate] = {}

    def _resolve_window(self, spec: JobSpec) -> tuple[datetime, datetime]:
        return spec.resolve_window(self.now)

    def add(
        self, index: int, spec: JobSpec, raw: Sequence[CandidateLike], given: CandidateLike | None
    ) -> bool:
        """Queue the spec for the vectorised pass; False when plan() must see it itself."""
        job = self._job(index, spec, raw, given)
        if job is None:
            return False
        self.jobs.append(job)
        return True

    def _job(
        self, index: int, spec: JobSpec, raw: Sequence[CandidateLike], given: CandidateLike | None
    ) -> _Job | None:
        if not raw:
            return None
        cset = self.sets.get(id(raw))
        if cset is None:
            cset = self._set_of(raw)
        job = _Job()
        job.index, job.spec, job.cset, job.given = index, spec, cset, given
        try:
            job.earliest, job.deadline = self.window_for(spec)
            job.power = self.model.power(spec)
        except Exception:
            return None
        job.lo, job.hi, job.d = to_epoch_s(job.earliest), to_epoch_s(job.deadline), spec.duration_s
        if spec.baseline is not None:
            if given is not None:
                base = given if isinstance(given, Candidate) else Candidate(*given)
                if region_ref(base.region) != spec.baseline:
                    return None
            else:
                j = cset.by_ref.get(spec.baseline)
                if j is None:
                    return None
                base = cset.cands[j]
            job.base = base
            job.base_row = self.pool.row(base.series)
            signals = cset.signals | {base.series.signal}
        else:
            signals = cset.signals
        if len(signals) > 1:
            return None
        job.signal = next(iter(signals))
        try:
            if self.energy_for is None:
                if not cset.pue_ok:
                    return None
                if job.base is not None:
                    job.base_energy = energy_by_pue(self.model, job.power, job.d)(job.base.region)
            else:
                job.custom = [self.energy_for(c.region) for c in cset.cands]
                if job.base is not None:
                    job.base_energy = self.energy_for(job.base.region)
        except Exception:
            return None
        return job

    def _set_of(self, raw: Sequence[CandidateLike]) -> _CandSet:
        """The prepared set of a candidate sequence not seen by identity: that of an equal sequence
        (the same region and series objects, in order) when there is one, as callers that build a new
        list per spec give. Found by identity next time (the sequence is held, so its id stays its own)."""
        items = tuple((id(c[0]), id(c[1])) for c in raw)  # held by the set's candidates: ids stay theirs
        cset = self._by_items.get(items)
        if cset is None:
            cset = self._by_items[items] = _CandSet(raw, self.pool, self.model.host.default_pue)
        else:
            self._held.append(raw)
        self.sets[id(raw)] = cset
        return cset

    def it_energy(self, power: PowerBreakdown, d: int) -> EnergyEstimate:
        key = (id(power), d)  # powers are the model's cached objects, kept alive by the estimate
        found = self._it_energy.get(key)
        if found is None:
            found = self._it_energy[key] = self.model.at_pue(power, d, 1.0)
        return found


# ---- the series pool --------------------------------------------------------------------------------


class _Pool:
    """Every distinct series of the batch, integrated once, in flat arrays.

    Series with identical edges form a group (one matrix). Row r's C (len n + 1) starts at
    cflat[crow[r]] and its values (len n, NaN read as 0) at vflat[vrow[r]]. nan_pre and chg_pre are
    prefix counts over vflat of NaNs and of value changes between neighbours, so a window's gaps and
    flatness are two look-ups each.
    """

    def __init__(self) -> None:
        self.series: list[IntensitySeries] = []
        self._row_of: dict[int, int] = {}

    def row(self, series: IntensitySeries) -> int:
        r = self._row_of.get(id(series))
        if r is None:
            r = self._row_of[id(series)] = len(self.series)
            self.series.append(series)
        return r

    def build(self) -> None:
        keys: dict[bytes, int] = {}
        seen: dict[int, bytes] = {}
        members: list[list[int]] = []
        for r, s in enumerate(self.series):
            edges = s.edges_s
            key = seen.get(id(edges))
            if key is None:
                key = seen[id(edges)] = np.asarray(edges, dtype=np.int64).tobytes()
            g = keys.get(key)
            if g is None:
                g = keys[key] = len(members)
                members.append([])
            members[g].append(r)
        n_rows = len(self.series)
        self.group_of = np.empty(n_rows, dtype=np.int64)
        self.n_row = np.empty(n_rows)  # intervals per row
        self.abs_total = np.empty(n_rows)  # integral of |values| over the row
        self.local = np.empty(n_rows, dtype=np.int64)
        self.crow = np.empty(n_rows, dtype=np.int64)
        self.vrow = np.empty(n_rows, dtype=np.int64)
        self.groups: list[Block] = []
        c_parts: list[FloatArray] = []
        v_parts: list[FloatArray] = []
        nan_parts: list[BoolArray] = []
        c_off = v_off = 0
        for g, rows in enumerate(members):
            edges = np.asarray(self.series[rows[0]].edges_s, dtype=np.int64)
            n = len(edges) - 1
            values = np.array([self.series[r].values for r in rows], dtype=np.float64).reshape(len(rows), n)
            nan = np.isnan(values)
            if nan.any():
                values = np.where(nan, 0.0, values)
            block = Block.of(edges, values)
            cum = block.cum
            self.groups.append(block)
            idx = np.array(rows, dtype=np.int64)
            self.group_of[idx] = g
            self.n_row[idx] = n
            self.abs_total[idx] = np.abs(values) @ np.diff(edges).astype(np.float64)
            self.local[idx] = np.arange(len(rows))
            self.crow[idx] = c_off + (n + 1) * np.arange(len(rows))
            self.vrow[idx] = v_off + n * np.arange(len(rows))
            c_off += (n + 1) * len(rows)
            v_off += n * len(rows)
            c_parts.append(cum.ravel())
            v_parts.append(values.ravel())
            nan_parts.append(nan.ravel())
        self.cflat = np.concatenate(c_parts)
        self.vflat = np.concatenate(v_parts)
        nan_flat = np.concatenate(nan_parts)
        self.nan_pre = np.zeros(len(nan_flat) + 1, dtype=np.int64)
        np.cumsum(nan_flat, out=self.nan_pre[1:])
        changes = self.vflat[1:] != self.vflat[:-1]
        self.chg_pre = np.zeros(len(self.vflat) + 1, dtype=np.int64)
        np.cumsum(changes, out=self.chg_pre[1 : len(changes) + 1])
        self.chg_pre[len(changes) + 1 :] = self.chg_pre[len(changes)]


# ---- the vectorised pass ----------------------------------------------------------------------------

# what an option is built from: pair, candidate, start, mean, kWh, mean at earliest, flat
_Fields = tuple[int, int, int, float, float, float, bool]


@dataclass(frozen=True, slots=True)
class _Split:
    """An interruptible pass's runs: chunks per pair where not the run at earliest, and exactness."""

    chunks: dict[int, tuple[tuple[int, int], ...]]
    exact: BoolArray

    def chunks_of(self, pair: int, start: int, d: int) -> tuple[tuple[int, int], ...]:
        return self.chunks.get(pair) or ((start, start + d),)


class _Ranking:
    """Per pair (spec, candidate) results and per spec ranks: what RankedOptions builds from.

    The start of each pair comes from the vectorised pass (differences of the shared C). The figures
    reported (mean, kg, the run at earliest) are summed over each run (`run_integrals`), as plan()
    reports them, when first needed: for the options built, each spec's best option (its own-region
    baseline) and options in near ties. Elsewhere the pass's figures only order the options: they
    differ from the sums by less than C's rounding, so the order is the same wherever two kg are
    further apart than that (plus 1e-7 of them, for safety).
    """

    def __init__(
        self,
        jobs: list[_Job],
        pool: _Pool,
        pair_job: IntArray,
        pair_row: IntArray,
        start: IntArray,
        mean: FloatArray,
        earliest_mean: FloatArray,
        kwh: FloatArray,
        flat: BoolArray,
        split: _Split | None = None,
    ) -> None:
        self.jobs = jobs
        self.pool = pool
        self.pair_row = pair_row
        self.pair_lo = np.array([job.lo for job in jobs], dtype=np.int64)[pair_job]
        self.pair_d = np.array([job.d for job in jobs], dtype=np.int64)[pair_job]
        self.start = start
        self.mean = mean
        self.earliest_mean = earliest_mean
        self.kwh = kwh
        self.kg = kwh * mean / 1000.0
        # mean, earliest_mean and kg are plan()'s (an interruptible pass gives only those)
        self.summed = np.full(len(start), split is not None, dtype=bool)
        self._all_summed = False  # summed.all(), once true (it stays so): `keys` asks per plan
        self.flat = flat
        self.split = split
        self.order = np.zeros((0, 0), dtype=np.int64)  # (jobs, max count): candidate at each rank
        self.base_kg: list[float | None] = [None] * len(jobs)
        self._kinds: tuple[BoolArray, BoolArray, BoolArray] | None = None
        self._top_rows: list[list[_Fields]] | None = None
        self._tables: dict[bool, _ShownTable] = {}  # by whether it holds every rank
        self.footprints: list[Footprints | None] = []  # each job's plan's (set as plans are built)

    def sum_runs(self, pairs: IntArray) -> None:
        """Replace the pass's figures of these pairs by the runs' sums (what plan() reports)."""
        pairs = pairs[~self.summed[pairs]]
        if not len(pairs):
            return
        rows, d = self.pair_row[pairs], self.pair_d[pairs]
        both = _run_integrals(
            self.pool,
            np.concatenate((rows, rows)),
            np.concatenate((self.start[pairs], self.pair_lo[pairs])),
            np.concatenate((d, d)),
        )
        self.mean[pairs] = both[: len(pairs)] / d
        self.earliest_mean[pairs] = both[len(pairs) :] / d
        self.kg[pairs] = self.kwh[pairs] * self.mean[pairs] / 1000.0
        self.summed[pairs] = True

    def rank(self, pair_job: IntArray, pstart: IntArray, counts: IntArray) -> IntArray:
        """Per job, candidate indices by (kg, start, provider, region), as plan() sorts its options:
        by the pass's kg, then again by the summed kg where two are within 1e-7 of each other."""
        jobs = self.jobs
        n_jobs = len(jobs)
        width = int(counts.max())
        col = np.arange(len(pair_job), dtype=np.int64) - pstart[pair_job]
        full = bool((counts == width).all())

        def matrix(values: npt.NDArray[np.generic], pad: float | int) -> npt.NDArray[np.generic]:
            if full:
                return values.reshape(n_jobs, width)
            out = np.full((n_jobs, width), pad, dtype=values.dtype)
            out[pair_job, col] = values
            return out

        kg2 = np.asarray(matrix(self.kg, np.inf), dtype=np.float64)
        order = np.argsort(kg2, axis=1, kind="stable")
        ranked = np.take_along_axis(kg2, order, axis=1)
        # how far the pass's kg may be from the summed one: C's rounding, a few ulps of the row's
        # integral of |values| per interval, spread over the run
        rows = self.pair_row
        slack = 4 * 2.3e-16 * self.pool.n_row[rows] * self.pool.abs_total[rows] / self.pair_d
        err = np.take_along_axis(
            np.asarray(matrix(slack * self.kwh / 1000.0, 0.0), dtype=np.float64), order, axis=1
        )
        with np.errstate(invalid="ignore"):  # inf - inf in the padding
            gap = np.abs(ranked[:, 1:] - ranked[:, :-1])
            near = gap <= 1e-7 * np.abs(ranked[:, 1:]) + err[:, 1:] + err[:, :-1]
        if not full:
            near &= np.arange(1, width)[None, :] < counts[:, None]
        tied = np.flatnonzero(near.any(axis=1))
        if len(tied):  # sum the runs of every option in a near tie, then sort those specs again
            in_tie = np.zeros((len(tied), width), dtype=bool)
            in_tie[:, 1:] |= near[tied]
            in_tie[:, :-1] |= near[tied]
            r, c = np.nonzero(in_tie)
            self.sum_runs(pstart[tied[r]] + order[tied[r], c])
            kg2 = np.asarray(matrix(self.kg, np.inf), dtype=np.float64)
            start2 = matrix(self.start, np.iinfo(np.int64).max)
            name2 = matrix(_name_ranks(jobs), np.iinfo(np.int64).max)
            order[tied] = np.lexsort((name2[tied], start2[tied], kg2[tied]), axis=-1)
        self.order = np.asarray(order, dtype=np.int64)
        return self.order

    def options(self, jr: int, ranks: Sequence[int]) -> list[PlanOption]:
        """The options of job `jr` at these ranks, as plan() builds them."""
        job = self.jobs[jr]
        cset, d, fixed = job.cset, job.d, self.base_kg[jr]
        top = self._top()
        if all(k < len(top[jr]) for k in ranks):  # already summed (the vectorised pass's top ranks)
            rows = [top[jr][k] for k in ranks]
        else:
            js = self.order[jr, list(ranks)]
            ps = job.pstart + js
            if len(ranks) > PRESUMMED:  # more than a few shown: likely every plan's, so every pair at once
                self._sum_all()
            else:
                self.sum_runs(ps)
            rows = list(zip(*self._fields(js, ps), strict=True))
        out = []
        split = self.split
        for p, j, start, mean, kwh_p, em, flat in rows:
            cand = cset.cands[j]
            if job.custom is None:
                kwh, pue, stated, power = kwh_p, cset.pue[j], cset.stated[j], job.power
            else:
                e = job.custom[j]
                kwh, pue, stated, power = e.kwh, e.pue, e.pue_stated, e.power
            out.append(
                make_option(
                    cand,
                    chunks=((start, start + d),) if split is None else split.chunks_of(p, start, d),
                    mean_g_per_kwh=mean,
                    energy_kwh=kwh,
                    pue=pue,
                    pue_stated=stated,
                    power=power,
                    baseline_kg_co2e=fixed if fixed is not None else kwh * em / 1000.0,
                    flat=flat,
                    exact=True if split is None else bool(split.exact[p]),
                )
            )
        return out

    def _fields(
        self, js: IntArray, ps: IntArray
    ) -> tuple[list[int], list[int], list[int], list[float], list[float], list[float], list[bool]]:
        """What an option is built from, for pairs ps (candidates js): as Python lists."""
        return (
            ps.tolist(),
            js.tolist(),
            self.start[ps].tolist(),
            self.mean[ps].tolist(),
            self.kwh[ps].tolist(),
            self.earliest_mean[ps].tolist(),
            self.flat[ps].tolist(),
        )

    def _top(self) -> list[list[_Fields]]:
        """Per job, the fields of its first PRESUMMED options (summed in the vectorised pass), read
        out of the arrays for every job at once the first time an option is built."""
        if self._top_rows is None:
            counts = np.array([job.count for job in self.jobs], dtype=np.int64)
            pstart = np.array([job.pstart for job in self.jobs], dtype=np.int64)
            shown = np.arange(min(PRESUMMED, self.order.shape[1]))
            keep = shown[None, :] < counts[:, None]
            js = self.order[:, shown][keep]
            flat_rows = list(
                zip(*self._fields(js, (pstart[:, None] + self.order[:, shown])[keep]), strict=True)
            )
            per_job = keep.sum(axis=1).tolist()
            self._top_rows, at = [], 0
            for n in per_job:
                self._top_rows.append(flat_rows[at : at + n])
                at += n
        return self._top_rows

    def columns(self, jr: int, top: int | None) -> OptionColumns:
        """Job jr's first `top` options (every one with None) as columns, with plan()'s figures, read
        out of a table of every job's (`_ShownTable`): the first PRESUMMED ranks' when no more are
        asked for (summed in the vectorised pass), else every rank's (every pair summed first)."""
        job = self.jobs[jr]
        n = len(range(job.count)[:top])
        every = n > PRESUMMED
        table = self._tables.get(every)
        if table is None:
            if every:
                self._sum_all()
            table = self._tables[every] = _ShownTable(self, self.order.shape[1] if every else PRESUMMED)
        lo = table.offset[jr]
        hi = lo + n
        cset, d = job.cset, job.d
        js = table.cand[lo:hi]
        starts = table.start[lo:hi]
        split = self.split
        chunks: list[tuple[tuple[int, int], ...]]
        if split is None:
            chunks = [((a, a + d),) for a in starts]
            ends = [a + d for a in starts]
        else:
            chunks = [split.chunks_of(p, a, d) for p, a in zip(table.pair[lo:hi], starts, strict=True)]
            ends = [c[-1][1] for c in chunks]
        providers, regions, zones, series = cset.providers, cset.regions, cset.zones, cset.series
        return OptionColumns(
            [providers[j] for j in js],
            [regions[j] for j in js],
            [zones[j] for j in js],
            starts,
            ends,
            chunks,
            [series[j] for j in js],
            table.pue[lo:hi],
            table.flat[lo:hi],
            [True] * n if split is None else table.exact[lo:hi],
            [0] * n,
            table.kg[lo:hi],
            table.base[lo:hi],
            table.shown.sliced(lo, hi),
            None
            if table.footprint is None
            else _sliced_footprint(self.footprints[jr], table.footprint, lo, hi),
        )

    def note_inputs(self, jr: int, no_pref: bool) -> NoteInputs:
        """plan.note_inputs for one job, from per-series flags (and per pair, whether the run is the
        exact optimum: a contiguous pass's always are)."""
        job = self.jobs[jr]
        js = self.order[jr, : job.count]
        rows = job.cset.rows[js]
        refs = job.cset.opt_refs
        split = self.split
        inexact = [] if split is None else [refs[j] for j in js[~split.exact[job.pstart + js]].tolist()]
        single, fallback_kind, static_kind = self._row_kinds()
        if no_pref:  # every option's sources are static: per series, or per run when it has several
            if bool((single[rows] & ~static_kind[rows]).any()):
                return NoteInputs(False, [], inexact)
            many = np.flatnonzero(~single[rows])
            only_static = all(
                s.kind is Kind.STATIC for i in many.tolist() for s in self._sources(jr, int(js[i]))[0]
            )
            return NoteInputs(only_static, [], inexact)
        at = np.flatnonzero(fallback_kind[rows])  # in rank order
        # a series of one provenance is a fallback all through; one of several, by the run's sources
        whole = single[rows[at]].tolist()
        fallback = [
            refs[j] for j, one in zip(js[at].tolist(), whole, strict=True) if one or self._sources(jr, j)[1]
        ]
        return NoteInputs(False, fallback, inexact)

    def own_base(self, jr: int, ref: str) -> Baseline | None:
        """Job jr's run at earliest in its candidate `ref`, as `_finish` makes the own-region baseline
        of its best candidate (None: not a candidate, or energy given per region)."""
        job = self.jobs[jr]
        j = job.cset.by_ref.get(ref)
        if j is None or job.custom is not None or job.base is not None:
            return None
        energy = EnergyEstimate(job.power, job.cset.pue[j], job.d, job.cset.stated[j])
        pair = job.pstart + j
        self.sum_runs(np.array([pair], dtype=np.int64))  # the pass's mean is plan()'s only once summed
        mean = float(self.earliest_mean[pair])
        return baseline_run(job.cset.cands[j], job.lo, job.d, mean, energy, "own-region")

    def keys(self, jr: int) -> OptionKeys:
        """Job jr's options' keys by rank, with plan()'s figures (every pair of the batch is summed
        the first time one is asked for: ranking alternatives by total reads them all)."""
        self._sum_all()
        job = self.jobs[jr]
        js = self.order[jr, : job.count]
        ps = job.pstart + js
        regions = [job.cset.cands[j].region for j in js.tolist()]
        return OptionKeys(
            [r.provider for r in regions],
            [r.region for r in regions],
            self.kg[ps].tolist(),
            self.start[ps].tolist(),
            self.flat[ps].tolist(),
        )

    def _sum_all(self) -> None:
        if not self._all_summed:
            if not self.summed.all():
                self.sum_runs(np.arange(len(self.start), dtype=np.int64))
            self._all_summed = True

    def runs(self, ks: IntArray, jrs: list[int], ids: dict[tuple[str, str], int]) -> _RunColumns:
        """`ranked_runs`' columns of jobs `jrs` (there plans `ks`), for all of them at once, with
        `keys`' figures (every pair summed first). Names get ids from `ids`, adding those not in it."""
        self._sum_all()
        jobs = [self.jobs[jr] for jr in jrs]
        counts = np.array([job.count for job in jobs], dtype=np.int64)
        width = self.order.shape[1]
        keep = np.arange(width, dtype=np.int64)[None, :] < counts[:, None]
        js = self.order[np.array(jrs, dtype=np.int64)][keep]
        rank = np.broadcast_to(np.arange(width, dtype=np.int64), keep.shape)[keep]
        ps = np.repeat(np.array([job.pstart for job in jobs], dtype=np.int64), counts) + js

        # each candidate set's names as ids, once per set
        def name_ids(job: _Job) -> IntArray:
            names = zip(job.cset.providers, job.cset.regions, strict=True)
            return np.array([ids.setdefault(name, len(ids)) for name in names], dtype=np.int64)

        name = _per_candidate(jobs, counts, js, lambda job: id(job.cset), name_ids)
        base = self.option_baselines(jrs, counts, ps)
        return np.repeat(ks, counts), rank, self.kg[ps], self.start[ps], self.flat[ps], base, name

    def option_baselines(self, jrs: Iterable[int], per_job: IntArray, ps: IntArray) -> FloatArray:
        """The baseline kg of options `ps` (`per_job` of each job of `jrs`, in turn) as `options`
        builds them: the job's fixed one (a spec baseline), else the option's run at earliest."""
        fixed = np.array(
            [np.nan if b is None else b for b in (self.base_kg[jr] for jr in jrs)], dtype=np.float64
        )
        base = np.repeat(fixed, per_job)
        own = np.isnan(base)
        base[own] = self.kwh[ps[own]] * self.earliest_mean[ps[own]] / 1000.0
        return base

    def flag_columns(self, jr: int) -> FlagColumns:
        """The note flags of every option of job jr, by rank (as `options.flags_of` reads a built one):
        read from the per-series arrays, and run by run only for a series of several provenances."""
        job = self.jobs[jr]
        js = self.order[jr, : job.count]
        rows = job.cset.rows[js]
        single, fallback_kind, static_kind = self._row_kinds()
        exact = np.ones(len(js), dtype=bool) if self.split is None else self.split.exact[job.pstart + js]
        fallback = fallback_kind[rows]
        static_only = static_kind[rows].copy()
        for at in np.flatnonzero(~single[rows]).tolist():
            sources, by_run = self._sources(jr, int(js[at]))
            fallback[at] = fallback[at] and by_run
            static_only[at] = all(s.kind is Kind.STATIC for s in sources)
        return FlagColumns(fallback, static_only, exact)

    def _sources(self, jr: int, j: int) -> tuple[tuple[SourceShare, ...], bool]:
        job = self.jobs[jr]
        p = job.pstart + j
        start = int(self.start[p])
        chunks = ((start, start + job.d),) if self.split is None else self.split.chunks_of(p, start, job.d)
        return sources_of(job.cset.cands[j].series, chunks)

    def _row_kinds(self) -> tuple[BoolArray, BoolArray, BoolArray]:
        """Per pool row: one provenance; any static or modelled one; all static."""
        if self._kinds is None:
            provs = [s.provenances for s in self.pool.series]
            self._kinds = (
                np.array([len(p) == 1 for p in provs], dtype=bool),
                np.array([any(x.kind in FALLBACK_KINDS for x in p) for p in provs], dtype=bool),
                np.array([all(x.kind is Kind.STATIC for x in p) for p in provs], dtype=bool),
            )
        return self._kinds


def _sliced_footprint(
    fp: Footprints | None, lists: tuple[list[float], list[float], list[float], list[float]], lo: int, hi: int
) -> FootprintFigures | None:
    if fp is None:
        return None
    embodied, embodied_shown, total_shown, saved_shown = lists
    return FootprintFigures(
        fp, embodied[lo:hi], embodied_shown[lo:hi], total_shown[lo:hi], saved_shown[lo:hi]
    )


class _ShownTable:
    """The first `width` ranks of every job of a ranking as flat lists (job by job, best first), with
    their figures worked out and rounded for all of them at once: `_Ranking.columns` slices a plan's
    out. One numpy pass for the batch instead of one per plan (a plan shows ~23 options); so too the
    footprint figures, where every plan has footprints."""

    __slots__ = (
        "base",
        "cand",
        "exact",
        "flat",
        "footprint",
        "kg",
        "offset",
        "pair",
        "pue",
        "shown",
        "start",
    )

    def __init__(self, ranking: _Ranking, width: int) -> None:
        jobs = ranking.jobs
        counts = np.array([job.count for job in jobs], dtype=np.int64)
        pstart = np.array([job.pstart for job in jobs], dtype=np.int64)
        ranks = np.arange(min(width, ranking.order.shape[1]), dtype=np.int64)
        keep = ranks[None, :] < counts[:, None]
        js = ranking.order[:, ranks][keep]
        ps = (pstart[:, None] + ranking.order[:, ranks])[keep]
        per_job = keep.sum(axis=1)
        self.offset: list[int] = np.concatenate(([0], np.cumsum(per_job)[:-1])).tolist()
        self.cand: list[int] = js.tolist()
        split = ranking.split
        # pairs and exactness: only an interruptible pass's runs differ by pair (chunks, exact)
        self.pair: list[int] = [] if split is None else ps.tolist()
        self.exact: list[bool] = [] if split is None else split.exact[ps].tolist()
        self.start: list[int] = ranking.start[ps].tolist()
        self.flat: list[bool] = ranking.flat[ps].tolist()
        self.pue: list[float] = _pair_pue(jobs, counts)[ps].tolist()
        base = ranking.option_baselines(range(len(jobs)), per_job, ps)
        self.shown, kg = shown_figures_of_arrays(ranking.kwh[ps], ranking.mean[ps], base)
        self.kg: list[float] = kg.tolist()
        self.base: list[float] = base.tolist()
        self.footprint = _footprint_lists(ranking, js, per_job, kg, base)


def _footprint_lists(
    ranking: _Ranking, js: IntArray, per_job: IntArray, kg: FloatArray, base: FloatArray
) -> tuple[list[float], list[float], list[float], list[float]] | None:
    """`footprint_lists` of a table's entries, as `Footprints.add_fields` works them out plan by plan
    for a batch's options (each on the spec's own hardware, for its duration; the baseline's embodied
    kg the spec baseline's, else the option's own): None when no plan has footprints."""
    footprints = ranking.footprints
    if not any(fp is not None for fp in footprints):
        return None
    fixed = np.full(len(footprints), np.nan)
    own_d = np.empty(len(footprints), dtype=np.int64)
    # each job with its own hardware (None: a job plan() planned instead, its entries never read)
    owned: list[tuple[_Job, Hardware | None]] = []
    for jr, (job, fp) in enumerate(zip(ranking.jobs, footprints, strict=True)):
        own = None if fp is None else fp.choices[0]
        owned.append((job, None if own is None else own.hardware))
        own_d[jr] = job.d if own is None else own.duration_s
        if fp is not None and ranking.base_kg[jr] is not None and job.base is not None:
            # a spec baseline: its embodied kg
            fixed[jr] = fp.baseline_embodied_kg(job.base.region.provider, job.base.region.region)

    def key(item: tuple[_Job, Hardware | None]) -> Hashable:
        job, hardware = item
        return id(job.cset), None if hardware is None else hardware_key(hardware)

    def reserved_of(item: tuple[_Job, Hardware | None]) -> FloatArray:
        job, hardware = item
        if hardware is None:
            return np.zeros(len(job.cset.cands))
        return reserved_kgs(job.cset.providers, job.cset.regions, hardware)

    reserved = _per_candidate(owned, per_job, js, key, reserved_of)
    run_d = np.repeat(np.array([job.d for job in ranking.jobs], dtype=np.int64), per_job)
    embodied = amortised_kgs(reserved, run_d)
    entry_own_d = np.repeat(own_d, per_job)
    base_embodied = np.where(run_d == entry_own_d, embodied, amortised_kgs(reserved, entry_own_d))
    entry_fixed = np.repeat(fixed, per_job)
    spec_base = ~np.isnan(entry_fixed)
    base_embodied[spec_base] = entry_fixed[spec_base]
    return footprint_lists(kg, base, embodied, base_embodied)


def _per_candidate(
    jobs: Sequence[JobT],
    per_job: IntArray,
    js: IntArray,
    key: Callable[[JobT], Hashable],
    table: Callable[[JobT], npt.NDArray[Any]],
) -> npt.NDArray[Any]:
    """`table(job)[j]` for each entry (`per_job` of each job in turn, its candidates `js`), each
    table (one value per candidate of the job's set) built once per distinct `key(job)`: jobs share
    candidate sets, and the entries are read in one indexing."""
    offset_of: dict[Hashable, int] = {}
    tables: list[npt.NDArray[Any]] = []
    offsets = np.empty(len(jobs), dtype=np.int64)
    size = 0
    for n, job in enumerate(jobs):
        k = key(job)
        at = offset_of.get(k)
        if at is None:
            at = offset_of[k] = size
            tables.append(table(job))
            size += len(tables[-1])
        offsets[n] = at
    picked: npt.NDArray[Any] = np.concatenate(tables)[np.repeat(offsets, per_job) + js]
    return picked


def _blocks(jobs: list[_Job], max_pairs: int) -> Iterator[list[_Job]]:
    block: list[_Job] = []
    pairs = 0
    for job in jobs:
        n = len(job.cset.cands)
        if block and pairs + n > max_pairs:
            yield block
            block, pairs = [], 0
        block.append(job)
        pairs += n
    if block:
        yield block


class _Pairs:
    """Every (job, candidate) pair of a block of jobs, job by job in candidate order, and what plan()
    checks of each window: gaps and coverage (a job with a bad pair or baseline goes to plan()), its
    flatness, and the spec baseline's run."""

    def __init__(self, pool: _Pool, jobs: list[_Job]) -> None:
        n_jobs = len(jobs)
        self.counts = counts = np.array([len(job.cset.cands) for job in jobs], dtype=np.int64)
        self.pstart = pstart = np.zeros(n_jobs, dtype=np.int64)
        np.cumsum(counts[:-1], out=pstart[1:])
        for job, s, c in zip(jobs, pstart.tolist(), counts.tolist(), strict=True):
            job.pstart, job.count = s, c
        self.pair_job = pair_job = np.repeat(np.arange(n_jobs, dtype=np.int64), counts)
        self.pair_row = pair_row = _concat_rows([job.cset for job in jobs])
        self.lo = lo = np.array([job.lo for job in jobs], dtype=np.int64)
        self.hi = hi = np.array([job.hi for job in jobs], dtype=np.int64)
        self.dur = dur = np.array([job.d for job in jobs], dtype=np.int64)
        base_jobs = np.array([jr for jr, job in enumerate(jobs) if job.base is not None], dtype=np.int64)
        base_rows = np.array([jobs[jr].base_row for jr in base_jobs.tolist()], dtype=np.int64)
        self.recs = recs = _Records(pool, lo, hi, dur, pair_job, pair_row, base_jobs, base_rows)
        self.p_rec = p_rec = recs.of(pair_job, pair_row)
        vrow = pool.vrow[pair_row]
        self.i0, self.i1 = i0, i1 = recs.i0[p_rec], recs.i1[p_rec]
        bad = ~recs.cover[p_rec] | (pool.nan_pre[vrow + i1] > pool.nan_pre[vrow + i0])
        self.flat = pool.chg_pre[vrow + i1 - 1] == pool.chg_pre[vrow + i0]
        self.bad_job = np.logical_or.reduceat(bad, pstart)
        self.base_mean: dict[int, float] = {}
        if len(base_jobs):
            b_rec = recs.of(base_jobs, base_rows)
            bv = pool.vrow[base_rows]
            b0, b1 = recs.i0[b_rec], recs.i1b[b_rec]
            bad_b = ~recs.cover_b[b_rec] | (pool.nan_pre[bv + b1] > pool.nan_pre[bv + b0])
            self.bad_job[base_jobs[bad_b]] = True
            d_b = dur[base_jobs]
            b_mean = _run_integrals(pool, base_rows, lo[base_jobs], d_b) / d_b
            self.base_mean = dict(zip(base_jobs.tolist(), b_mean.tolist(), strict=True))


def _contiguous_plans(prep: _Prep, jobs: list[_Job], now: datetime) -> dict[int, Plan]:
    """Plans for these jobs, by the vectorised pass; jobs whose inputs plan() would refuse go to
    prep.demoted."""
    pool = prep.pool
    jobs = sorted(jobs, key=lambda job: job.d)  # each duration's pairs are then one slice
    n_jobs = len(jobs)
    pp = _Pairs(pool, jobs)
    counts, pstart, pair_row, dur, recs, p_rec = pp.counts, pp.pstart, pp.pair_row, pp.dur, pp.recs, pp.p_rec

    # per pair: runs at earliest and at the latest start, the window's integral (for the tie
    # tolerance)
    f_lo = recs.f_at(pair_row, p_rec, 0)
    f_last = recs.f_at(pair_row, p_rec, 2)
    crow = pool.crow[pair_row]
    c_win = pool.cflat[crow + pp.i1] - pool.cflat[crow + pp.i0]

    # the best start of every pair, duration by duration
    start = np.empty(len(pp.pair_job), dtype=np.int64)
    best_f = np.empty(len(pp.pair_job))
    cuts = [0, *(np.flatnonzero(np.diff(dur)) + 1).tolist(), n_jobs]  # jobs come sorted by duration
    for j0, j1 in itertools.pairwise(cuts):
        pairs = slice(int(pstart[j0]), int(pstart[j1 - 1] + counts[j1 - 1]))
        _best_for_duration(
            pool,
            recs,
            int(dur[j0]),
            pairs,
            counts[j0:j1],
            pair_row,
            p_rec,
            f_lo,
            f_last,
            c_win,
            start,
            best_f,
        )

    # energy, emissions, ranking
    d_pair = dur[pp.pair_job]
    ranking = _Ranking(
        jobs,
        pool,
        pp.pair_job,
        pair_row,
        start,
        best_f / d_pair,
        f_lo / d_pair,
        _pair_kwh(jobs, pp.pair_job, counts),
        pp.flat,
    )
    order = ranking.rank(pp.pair_job, pstart, counts)
    # the figures of the options most often shown (and the best one's run at earliest: the
    # own-region baseline), summed for every job at once rather than job by job when read
    shown = np.arange(min(PRESUMMED, order.shape[1]))
    top = (pstart[:, None] + order[:, shown])[shown[None, :] < counts[:, None]]
    ranking.sum_runs(top)
    return _finish(prep, jobs, pp, ranking, now)


def _interruptible_plans(prep: _Prep, jobs: list[_Job], now: datetime) -> dict[int, Plan]:
    """Plans for these interruptible jobs: the exact programme of every window with a series to search
    run together (`interruptible.cheapest_chunks_batch`; a flat series' plan is the run at earliest),
    each plan's figures summed over its chunks as plan() sums them, then ranked and built as the
    contiguous pass does. Jobs whose inputs plan() would refuse go to prep.demoted."""
    pool = prep.pool
    pp = _Pairs(pool, jobs)
    pair_job, pair_row = pp.pair_job, pp.pair_row
    d_pair = pp.dur[pair_job]
    at_lo = _run_integrals(pool, pair_row, pp.lo[pair_job], d_pair)
    earliest_mean = at_lo / d_pair
    mean = np.add(0.0, at_lo) / d_pair  # plan() adds a plan's chunks to 0.0
    start = pp.lo[pair_job]
    exact = np.ones(len(pair_job), dtype=bool)
    chunks: dict[int, tuple[tuple[int, int], ...]] = {}
    searched = np.flatnonzero(~pp.flat & ~pp.bad_job[pair_job])
    if len(searched):
        # one problem per (job, series group): its series to search, on the group's edges
        n_groups = len(pool.groups)
        key = pair_job[searched] * n_groups + pool.group_of[pair_row[searched]]
        by_key = np.argsort(key, kind="stable")
        owners = np.split(searched[by_key], np.flatnonzero(np.diff(key[by_key])) + 1)
        problems: list[ChunkProblem] = []
        for sel in owners:
            job = jobs[int(pair_job[sel[0]])]
            block = pool.groups[int(pool.group_of[pair_row[sel[0]]])]
            rows = pool.local[pair_row[sel]]
            problems.append((block.edges, block.values[rows], job.lo, job.hi, job.d, job.spec.min_chunk_s))
        piece_pair: list[int] = []
        piece_lo: list[int] = []
        piece_hi: list[int] = []
        for sel, found in zip(owners, cheapest_chunks_batch(problems), strict=True):
            for p, cp in zip(sel.tolist(), found, strict=True):
                chunks[p] = cp.chunks
                start[p] = cp.chunks[0][0]
                exact[p] = cp.exact
                for a, b in cp.chunks:
                    piece_pair.append(p)
                    piece_lo.append(a)
                    piece_hi.append(b)
        pieces = np.array(piece_pair, dtype=np.int64)
        starts = np.array(piece_lo, dtype=np.int64)
        parts = _run_integrals(pool, pair_row[pieces], starts, np.array(piece_hi, dtype=np.int64) - starts)
        totals: dict[int, float] = {}
        for p, part in zip(piece_pair, parts.tolist(), strict=True):  # in time order, as plan() adds them
            totals[p] = totals.get(p, 0.0) + part
        for p, total in totals.items():
            mean[p] = total / int(d_pair[p])
    ranking = _Ranking(
        jobs,
        pool,
        pair_job,
        pair_row,
        start,
        mean,
        earliest_mean,
        _pair_kwh(jobs, pair_job, pp.counts),
        pp.flat,
        _Split(chunks, exact),
    )
    ranking.rank(pair_job, pp.pstart, pp.counts)
    return _finish(prep, jobs, pp, ranking, now)


def _finish(prep: _Prep, jobs: list[_Job], pp: _Pairs, ranking: _Ranking, now: datetime) -> dict[int, Plan]:
    """Each job's plan from its ranking (jobs plan() must see go to prep.demoted)."""
    order = ranking.order
    earliest_mean = ranking.earliest_mean
    no_pref = np.logical_and.reduceat(pp.flat, pp.pstart)
    generated_at = now.astimezone(UTC)
    plans: dict[int, Plan] = {}
    bad_list = pp.bad_job.tolist()
    no_pref_list = no_pref.tolist()
    footprints_for = prep.footprints_for
    ranking.footprints = [None] * len(jobs)
    for jr, job in enumerate(jobs):
        if bad_list[jr]:
            prep.demoted.append(job)
            continue
        spec, d = job.spec, job.d
        if job.base is not None and job.base_energy is not None:
            base = baseline_run(job.base, job.lo, d, pp.base_mean[jr], job.base_energy, "spec")
            ranking.base_kg[jr] = base.kg_co2e
        else:  # the best option's own region, as plan() does
            j = int(order[jr, 0])
            if job.custom is None:
                top_energy = EnergyEstimate(job.power, job.cset.pue[j], d, job.cset.stated[j])
            else:
                e = job.custom[j]
                top_energy = EnergyEstimate(e.power, e.pue, d, e.pue_stated)
            base = baseline_run(
                job.cset.cands[j], job.lo, d, float(earliest_mean[job.pstart + j]), top_energy, "own-region"
            )
        footprints = ranking.footprints[jr] = None if footprints_for is None else footprints_for(spec)
        plans[job.index] = Plan(
            job=spec.name,
            signal=job.signal,
            generated_at=generated_at,
            earliest=job.earliest,
            deadline=job.deadline,
            duration_s=d,
            interruptible=spec.interruptible,
            min_chunk_s=spec.min_chunk_s,
            it_energy=prep.it_energy(job.power, d),
            baseline=base,
            options=RankedOptions(ranking, jr),
            no_time_preference=bool(no_pref_list[jr]),
            footprints=footprints,
        )
    return plans


def _concat_rows(sets: list[_CandSet]) -> IntArray:
    if all(s is sets[0] for s in sets):
        return np.tile(sets[0].rows, len(sets))
    return np.concatenate([s.rows for s in sets])


class _Records:
    """Per (job, series group) used: where the job's times fall among the group's edges.

    Times: 0 = earliest, 1 = earliest + d, 2 = latest start, 3 = deadline. i0 .. i1 is the window's
    slice of intervals (as `window_slice` cuts it), i1b that of [earliest, earliest + d) (the baseline
    run); cover and cover_b say the group's edges span them.
    """

    def __init__(
        self,
        pool: _Pool,
        lo: IntArray,
        hi: IntArray,
        dur: IntArray,
        pair_job: IntArray,
        pair_row: IntArray,
        base_jobs: IntArray,
        base_rows: IntArray,
    ) -> None:
        self.pool = pool
        n_groups = len(pool.groups)
        n_jobs = len(lo)
        self.n_groups = n_groups
        if n_groups == 1:
            self.keys = np.arange(n_jobs, dtype=np.int64)
        else:
            self.keys = np.unique(
                np.concatenate(
                    (
                        pair_job * n_groups + pool.group_of[pair_row],
                        base_jobs * n_groups + pool.group_of[base_rows],
                    )
                )
            )
        rec_job = self.keys // n_groups
        rec_group = self.keys % n_groups
        n_rec = len(self.keys)
        self.k = np.empty((4, n_rec), dtype=np.int64)
        self.v = np.empty((4, n_rec), dtype=np.int64)
        self.o = np.empty((4, n_rec))
        self.i0 = np.empty(n_rec, dtype=np.int64)
        self.i1 = np.empty(n_rec, dtype=np.int64)
        self.i1b = np.empty(n_rec, dtype=np.int64)
        self.cover = np.empty(n_rec, dtype=bool)
        self.cover_b = np.empty(n_rec, dtype=bool)
        self.one = np.empty((2, n_rec), dtype=bool)  # the run at earliest / at the latest start
        self.lo, self.hi, self.dur = lo[rec_job], hi[rec_job], dur[rec_job]
        self.group = rec_group
        by_group = np.argsort(rec_group, kind="stable")
        cuts = np.flatnonzero(np.diff(rec_group[by_group])) + 1
        for sel in np.split(by_group, cuts):
            if not len(sel):
                continue
            g = pool.groups[int(rec_group[sel[0]])]
            edges, n = g.edges, g.n
            t_lo, t_hi, d = self.lo[sel], self.hi[sel], self.dur[sel]
            for j, t in enumerate((t_lo, t_lo + d, t_hi - d, t_hi)):
                k, v, o = locate(edges, n, t)
                self.k[j, sel], self.v[j, sel], self.o[j, sel] = k, v, o
            start = np.maximum(np.searchsorted(edges, t_lo, side="right") - 1, 0)
            self.i0[sel] = np.minimum(start, n - 1)
            self.i1[sel] = np.clip(np.searchsorted(edges, t_hi, side="left"), start + 1, n)
            self.i1b[sel] = np.clip(np.searchsorted(edges, t_lo + d, side="left"), start + 1, n)
            self.cover[sel] = (edges[0] <= t_lo) & (edges[-1] >= t_hi)
            self.one[0, sel] = edges[np.minimum(self.k[0, sel] + 1, n)] >= t_lo + d
            self.one[1, sel] = edges[np.minimum(self.k[2, sel] + 1, n)] >= t_hi
            self.cover_b[sel] = (edges[0] <= t_lo) & (edges[-1] >= t_lo + d)

    def of(self, jobs: IntArray, rows: IntArray) -> IntArray:
        if self.n_groups == 1:
            return jobs
        key = jobs * self.n_groups + self.pool.group_of[rows]
        return np.asarray(np.searchsorted(self.keys, key), dtype=np.int64)

    def c_at(self, rows: IntArray, rec: IntArray, which: int) -> FloatArray:
        """C at time `which` of each (row, record)."""
        pool = self.pool
        c = pool.cflat[pool.crow[rows] + self.k[which, rec]]
        return np.asarray(c + pool.vflat[pool.vrow[rows] + self.v[which, rec]] * self.o[which, rec])

    def f_at(self, rows: IntArray, rec: IntArray, which: int) -> FloatArray:
        """F of the run starting at time `which` (0: earliest, 2: latest start), as contiguous.Starts computes
        it: the interval's value times d when the run lies inside one interval."""
        f = self.c_at(rows, rec, which + 1) - self.c_at(rows, rec, which)
        one = self.one[which // 2, rec]
        if one.any():
            flat = self.pool.vflat[self.pool.vrow[rows] + self.v[which, rec]] * self.dur[rec].astype(
                np.float64
            )
            f = np.where(one, flat, f)
        return np.asarray(f, dtype=np.float64)


def _best_for_duration(
    pool: _Pool,
    recs: _Records,
    d: int,
    pairs: slice,
    job_counts: IntArray,
    pair_row: IntArray,
    p_rec: IntArray,
    f_lo: FloatArray,
    f_last: FloatArray,
    c_win: FloatArray,
    start_out: IntArray,
    f_out: FloatArray,
) -> None:
    """Best start and its F for these pairs (all of duration d; `job_counts` pairs per job, job by
    job), written into start_out and f_out: contiguous.py's search, by its start table when many
    specs share the duration, else window by window."""
    rows = pair_row[pairs]
    rec = p_rec[pairs]
    groups = pool.group_of[rows]
    used = np.unique(groups).tolist() if len(pool.groups) > 1 else [0]
    starts = {g: Starts.of(pool.groups[g], d) for g in used}
    n_pairs = pairs.stop - pairs.start
    a_loc = np.empty(n_pairs, dtype=np.int64)
    b_loc = np.empty(n_pairs, dtype=np.int64)
    for g in used:
        sel = np.flatnonzero(groups == g) if len(used) > 1 else slice(None)
        r = rec[sel]
        a_loc[sel], b_loc[sel] = starts[g].span(recs.lo[r], recs.hi[r] - d)
    length = np.maximum(b_loc - a_loc + 1, 0)
    fl, fe, cw = f_lo[pairs], f_last[pairs], c_win[pairs]
    longest = int(length.max()) if len(length) else 0
    top = int(np.frexp(longest)[1]) - 1 if longest else -1
    parts = [(pool.groups[g], starts[g]) for g in used]
    table_size = StartTable.size(parts)
    if top >= 0 and _use_table(table_size, top, n_pairs, int(length.sum()), len(job_counts)):
        part_of = np.zeros(len(pool.groups), dtype=np.int64)
        part_of[used] = np.arange(len(used))
        table = StartTable(parts, top)
        found = table.search(part_of[groups], pool.local[rows], a_loc, length, fl, fe, cw)
    else:
        found = _by_job(pool, starts, job_counts, groups, rows, a_loc, b_loc, fl, fe, cw)
    start_out[pairs], f_out[pairs] = choose(recs.lo[rec], recs.hi[rec] - d, fl, fe, *found)


def _by_job(
    pool: _Pool,
    starts: dict[int, Starts],
    job_counts: IntArray,
    groups: IntArray,
    rows: IntArray,
    a_loc: IntArray,
    b_loc: IntArray,
    f_lo: FloatArray,
    f_last: FloatArray,
    c_win: FloatArray,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """`window_search` job by job, each over its own window's candidates: for durations few specs
    share, where a table over the whole series would cost more."""
    n = len(rows)
    limit = np.empty(n)
    found_t = np.full(n, -1, dtype=np.int64)
    found_f = np.zeros(n)
    one_group = len(starts) == 1
    bounds = np.zeros(len(job_counts) + 1, dtype=np.int64)
    np.cumsum(job_counts, out=bounds[1:])
    local = pool.local[rows]
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if one_group or bool((groups[s:e] == groups[s]).all()):
            parts: list[tuple[slice | IntArray, int]] = [(slice(s, e), int(groups[s]))]
        else:
            gs = groups[s:e]
            parts = [(s + np.flatnonzero(gs == g), int(g)) for g in np.unique(gs).tolist()]
        for sel, g in parts:
            first_pair = sel.start if isinstance(sel, slice) else int(sel[0])
            a, b = int(a_loc[first_pair]), int(b_loc[first_pair])  # one window per (job, group)
            block = pool.groups[g]
            rows_g = local[sel]
            every = len(rows_g) == block.rows and bool((rows_g == np.arange(len(rows_g))).all())
            limit[sel], found_t[sel], found_f[sel] = window_search(
                block, starts[g], None if every else rows_g, a, b, f_lo[sel], f_last[sel], c_win[sel]
            )
    return limit, found_t, found_f


def _use_table(table_size: int, top: int, n_pairs: int, total_length: int, n_jobs: int) -> bool:
    """The sparse table where it costs less than evaluating each job's window (rough counts of array
    element operations, a numpy call costing ~1000), and where it fits in memory."""
    cost_table = table_size * (top + 3) + n_pairs * (6 * (top + 1) + 20) + 40_000
    cost_by_job = total_length * 6 + n_pairs * 10 + n_jobs * 15_000
    return cost_table < cost_by_job and table_size * (top + 1) <= MAX_TABLE


def _pair_kwh(jobs: list[_Job], pair_job: IntArray, counts: IntArray) -> FloatArray:
    """Energy of each pair's run: the IT energy times the region's PUE, as plan() multiplies it (or
    the custom energy function's figure)."""
    if jobs[0].custom is not None:  # energy_for is given for the whole batch
        return np.concatenate([np.array([e.kwh for e in job.custom or ()], dtype=np.float64) for job in jobs])
    it_kwh = np.array([job.power.it_w * job.d / 3.6e6 for job in jobs])
    pue = _concat_floats([job.cset for job in jobs], counts)
    return np.asarray(it_kwh[pair_job] * pue, dtype=np.float64)


def _pair_pue(jobs: list[_Job], counts: IntArray) -> FloatArray:
    """Each pair's PUE, as an option states it: its region's (or the custom energy function's)."""
    if jobs[0].custom is not None:  # energy_for is given for the whole batch
        return np.concatenate([np.array([e.pue for e in job.custom or ()], dtype=np.float64) for job in jobs])
    return _concat_floats([job.cset for job in jobs], counts)


def _concat_floats(sets: list[_CandSet], counts: IntArray) -> FloatArray:
    arrays: dict[int, FloatArray] = {}
    parts = []
    for s in sets:
        a = arrays.get(id(s))
        if a is None:
            a = arrays[id(s)] = np.array(s.pue, dtype=np.float64)
        parts.append(a)
    if len(arrays) == 1:
        return np.tile(parts[0], len(parts))
    return np.concatenate(parts)


def _run_integrals(pool: _Pool, rows: IntArray, starts: IntArray, d: IntArray) -> FloatArray:
    """contiguous.run_integrals for runs on the pool's series (group by group)."""
    out = np.empty(len(rows))
    groups = pool.group_of[rows]
    for g in np.unique(groups).tolist():
        sel = np.flatnonzero(groups == g) if len(pool.groups) > 1 else slice(None)
        group = pool.groups[g]
        out[sel] = run_integrals(
            group.edges, group.values, pool.local[rows[sel]], starts[sel], starts[sel] + d[sel]
        )
    return out


def _name_ranks(jobs: list[_Job]) -> IntArray:
    """Each pair's (provider, region) as its rank among every name in the batch."""
    by_set: dict[int, list[tuple[str, str]]] = {}
    for job in jobs:
        if id(job.cset) not in by_set:
            by_set[id(job.cset)] = [(c.region.provider, c.region.region) for c in job.cset.cands]
    names = sorted({name for names in by_set.values() for name in names})
    rank = {name: i for i, name in enumerate(names)}
    per_set = {k: np.array([rank[n] for n in v], dtype=np.int64) for k, v in by_set.items()}
    return np.concatenate([per_set[id(job.cset)] for job in jobs])
