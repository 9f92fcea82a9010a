"""Region x start time x hardware, ranked together (issue 14): one plan per hardware alternative,
merged into one ranking by total kg CO2e (operational + embodied).

Each alternative is planned by the ordinary planner as a spec of its own (its hardware, duration and
measured power: `footprints.alternative_spec`), over the regions that offer it, so its best start in
each region is exact for its own duration and energy. Within one region the best start is the same
whether ranked by operational or total kg (the embodied share depends on the hardware and duration, not
on the start), so taking each region's best run per alternative and sorting them all by total is the
joint optimum.

Savings stay measured against one baseline, the spec's own hardware (alternative 0) started at
earliest: in the spec's `baseline` region, or else in each option's own region. Alternative 0 is
therefore planned over every region any alternative is offered in, which gives that per-region
baseline even where the spec's own hardware is not offered; its options in such regions are dropped.
Pure: no I/O (the caller chooses regions and fetches series).

Merging ranks arrays of every option's figures (`batch.ranked_runs`), not options: a batch's plans
build an option only when it is read, and the merged plan builds (and re-bases) only the options it
shows. A batch of specs is merged in one pass (`merge_many`). The embodied share of a run is the
hardware's reserved kg in that region (per region and hardware, worked out once) times the run's
share of the server's lifespan, as `catalog.embodied.embodied_in_region` charges it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from carbonshift.catalog.embodied import LIFESPAN_H, amortised_kg
from carbonshift.config.jobspec import Hardware
from carbonshift.planner.batch import FloatArray, IntArray, ranked_runs
from carbonshift.planner.footprints import Footprints, hardware_key, reserved_kg
from carbonshift.planner.options import (
    FlagColumns,
    LazyOptions,
    OptionKeys,
    flag_columns,
    option_keys,
)
from carbonshift.planner.plan import NoteInputs, Plan, PlanOption


def rebased(option: PlanOption, baseline_kg_co2e: float, alternative: int) -> PlanOption:
    """`option` on hardware `alternative`, its saving measured against `baseline_kg_co2e`."""
    saved = baseline_kg_co2e - option.kg_co2e
    return dataclasses.replace(
        option,
        baseline_kg_co2e=baseline_kg_co2e,
        savings_kg=saved,
        savings_pct=100.0 * saved / baseline_kg_co2e if baseline_kg_co2e > 0 else None,
        alternative=alternative,
    )


class Alternatives(NamedTuple):
    """One spec's plans to merge: `first` is alternative 0's plan over every region any alternative is
    offered in, of whose options only those in `first_offered` (refs) are kept; `others` are
    (alternative, plan) for the rest, each over the regions that offer it."""

    first: Plan
    first_offered: Collection[str]
    others: Sequence[tuple[int, Plan]]
    footprints: Footprints


def merge(
    first: Plan,
    first_offered: Collection[str],
    others: Sequence[tuple[int, Plan]],
    footprints: Footprints,
) -> Plan:
    """One plan of every alternative's options, best total first (`merge_many` of one spec)."""
    return merge_many([Alternatives(first, first_offered, others, footprints)])[0].plan


class Merged(NamedTuple):
    """A spec's merged plan, and the region (ref) of its best option when alternative 0's own best is
    in another region (None when it is the same): where an own-region baseline is measured again."""

    plan: Plan
    best_moved_to: str | None


def merge_many(specs: Sequence[Alternatives]) -> list[Merged]:
    """Per spec, one plan of every alternative's options, best total first.

    Savings of alternatives past the first are re-measured against `first`'s baseline for the same
    region. The plan's baseline stays `first`'s: with the spec's `baseline` region it is every
    option's; otherwise (own-region) the caller replaces it with alternative 0's run in the best
    option's region when that is another (`Merged.best_moved_to`).

    Every spec's options are ranked in one sort of arrays (`batch.ranked_runs`): by total kg, start,
    provider, region, then alternative and rank in its plan, as sorting the built options would.
    A Python pass per option cost as much as planning the alternatives (issue 14's goal is batch
    planning at the speed of plain specs per (spec, alternative))."""
    plans: list[Plan] = []
    alternative: list[int] = []  # per plan
    time_share: list[float] = []  # per plan: its duration as a share of the server's lifespan
    hardware_of: list[int] = []  # per plan: its hardware, as an index in `hardware`
    shapes: dict[tuple[object, ...], int] = {}  # hardware by its values: its index in `hardware`
    hardware: list[Hardware] = []
    counts: list[int] = []  # per spec: its plans
    offered_of: list[int] = []  # per spec: its first_offered, as an index in `offered`
    offered: dict[int, tuple[int, Collection[str]]] = {}  # by id: (index, refs)
    for spec in specs:
        choices = spec.footprints.choices
        own = [(0, spec.first), *spec.others]
        counts.append(len(own))
        entry = offered.setdefault(id(spec.first_offered), (len(offered), spec.first_offered))
        offered_of.append(entry[0])
        for alt, planned in own:
            shape = choices[alt].hardware
            index = shapes.setdefault(hardware_key(shape), len(shapes))
            if index == len(hardware):
                hardware.append(shape)
            plans.append(planned)
            alternative.append(alt)
            # every run of the plan, split or not, adds up to its duration: one time-share for all
            time_share.append(planned.duration_s / 3600.0 / LIFESPAN_H)
            hardware_of.append(index)
    runs = ranked_runs(plans)
    n_names = max(len(runs.names), 1)
    at = runs.plan
    spec_of_plan = np.repeat(np.arange(len(specs), dtype=np.int64), counts)
    first_plan = np.concatenate(([0], np.cumsum(counts)))
    spec_at = spec_of_plan[at]
    # the embodied kg of a run: its hardware's reserved kg in its region, times its time-share
    combos, which = np.unique(np.asarray(hardware_of)[at] * n_names + runs.name, return_inverse=True)
    pairs = [(runs.names[c % n_names], hardware[c // n_names]) for c in combos.tolist()]
    reserved = np.array(
        [reserved_kg(provider, region, shape) for (provider, region), shape in pairs], dtype=np.float64
    )
    total = runs.kg_co2e + reserved[which] * np.asarray(time_share)[at]
    # alternative 0's options are kept only where its own hardware is offered
    is_first = at == first_plan[spec_at]
    first = np.flatnonzero(is_first)
    keep = np.ones(len(at), dtype=bool)
    refs = [refs for _, refs in offered.values()]
    combos, which = np.unique(
        np.asarray(offered_of)[spec_at[first]] * n_names + runs.name[first], return_inverse=True
    )
    inside = [_ref(runs.names[c % n_names]) in refs[c // n_names] for c in combos.tolist()]
    keep[first] = np.array(inside, dtype=bool)[which]
    kept = np.flatnonzero(keep)
    order = kept[
        _ranked(spec_at[kept], total[kept], runs.start_s[kept], runs.name[kept], at[kept], runs.rank[kept])
    ]
    # alternatives past the first are re-based on alternative 0's baseline in the same region
    # (alternative 0 is planned over every region any alternative is, so each finds one there)
    first_keys = spec_at[first] * n_names + runs.name[first]
    by_key = np.argsort(first_keys, kind="stable")
    found = np.searchsorted(first_keys[by_key], spec_at[order] * n_names + runs.name[order])
    base_kg_at = runs.baseline_kg_co2e[first[by_key[found]]]
    # alternative 0's best region per spec (its rank 0), to tell whether the merged best moved
    zero = first[runs.rank[first] == 0]
    first_best = np.full(len(specs), -1, dtype=np.int64)
    first_best[spec_at[zero]] = runs.name[zero]
    ends = np.cumsum(np.bincount(spec_at[kept], minlength=len(specs))).tolist()
    flat = (np.bincount(spec_at[kept][~runs.flat[kept]], minlength=len(specs)) == 0).tolist()
    plan_at = at[order]
    local_at = plan_at - first_plan[spec_at[order]]
    alternative_at = np.asarray(alternative, dtype=np.int64)[plan_at]
    rank_at = runs.rank[order]
    name_at = runs.name[order]
    starts = first_plan.tolist()
    out = []
    lo = 0
    for g, spec in enumerate(specs):
        hi = ends[g]
        if lo == hi:  # pragma: no cover - the caller plans only alternatives offered somewhere
            raise ValueError("no option to rank")
        merged = MergedOptions(
            [planned.options for planned in plans[starts[g] : starts[g + 1]]],
            local_at[lo:hi],
            alternative_at[lo:hi],
            rank_at[lo:hi],
            base_kg_at[lo:hi],
            name_at[lo:hi],
            runs.names,
        )
        best = int(name_at[lo])
        moved = None if best == first_best[g] else _ref(runs.names[best])
        result = dataclasses.replace(
            spec.first, options=merged, no_time_preference=flat[g], footprints=spec.footprints
        )
        out.append(Merged(result, moved))
        lo = hi
    return out


def _ranked(
    spec: IntArray, total: FloatArray, start: IntArray, name: IntArray, plan: IntArray, rank: IntArray
) -> IntArray:
    """The order that sorts by (spec, total, start, name, plan, rank). A spec's plans are consecutive,
    alternative 0's first, so the plan's index orders its alternatives.

    Sorted by total (numpy's default sort: several times faster than a stable one), then stably by
    spec (a radix sort while specs fit in 16 bits), then again by all the keys only where two totals
    are equal, so the first sort need not be stable: exact ties are few (regions of one static value,
    hardware alike). A six-key lexsort cost about seven times as much."""
    order = np.argsort(total)
    by_spec = spec[order]
    if len(by_spec) and by_spec.max() < np.iinfo(np.int16).max:
        by_spec = by_spec.astype(np.int16)
    order = order[np.argsort(by_spec, kind="stable")]
    s, t = spec[order], total[order]
    same = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    if same.any():
        tied = np.zeros(len(order), dtype=bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        run = np.cumsum(~np.concatenate(([False], same)))[at]  # which run of equal totals
        sub = order[at]
        order[at] = sub[np.lexsort((rank[sub], plan[sub], name[sub], start[sub], run))]
    return order


def _ref(name: tuple[str, str]) -> str:
    return f"{name[0]}:{name[1]}"


class MergedOptions(LazyOptions):
    """The options of several alternatives' plans in one ranking, each built (and, past alternative
    0, re-based on alternative 0's baseline in its region) when first read."""

    __slots__ = ("_alternative", "_baseline_kg", "_name", "_names", "_plan", "_plans", "_rank")

    def __init__(
        self,
        plans: list[Sequence[PlanOption]],
        plan: IntArray,
        alternative: IntArray,
        rank: IntArray,
        baseline_kg: FloatArray,
        name: IntArray,
        names: list[tuple[str, str]],
    ) -> None:
        super().__init__()
        self._plans = plans  # alternative 0's first
        # by merged rank: the option's plan (an index in `plans`), its alternative, its rank there,
        # alternative 0's baseline in its region (what an option past alternative 0 is re-based on)
        # and its (provider, region) as an index in `names`
        self._plan = plan
        self._alternative = alternative
        self._rank = rank
        self._baseline_kg = baseline_kg
        self._name = name
        self._names = names

    def __len__(self) -> int:
        return len(self._plan)

    def _make(self, ranks: list[int]) -> list[PlanOption]:
        out = []
        for r in ranks:
            k, i = int(self._plan[r]), int(self._rank[r])
            option = self._plans[k][i]
            if k:
                option = rebased(option, float(self._baseline_kg[r]), int(self._alternative[r]))
            out.append(option)
        return out

    def keys(self) -> OptionKeys:
        """The options' keys (re-basing changes only savings)."""
        keys = [option_keys(p) for p in self._plans]
        at = list(zip(self._plan.tolist(), self._rank.tolist(), strict=True))
        return OptionKeys(
            [keys[k].provider[i] for k, i in at],
            [keys[k].region[i] for k, i in at],
            [keys[k].kg_co2e[i] for k, i in at],
            [keys[k].start_s[i] for k, i in at],
            [keys[k].flat[i] for k, i in at],
        )

    def flag_columns(self) -> FlagColumns:
        """Each plan's flag columns, gathered in merged order."""
        fallback = np.zeros(len(self), dtype=bool)
        static_only = np.zeros(len(self), dtype=bool)
        exact = np.zeros(len(self), dtype=bool)
        for k, planned in enumerate(self._plans):
            here = self._plan == k
            columns = flag_columns(planned)
            ranks = self._rank[here]
            fallback[here] = columns.fallback[ranks]
            static_only[here] = columns.static_only[ranks]
            exact[here] = columns.exact[ranks]
        return FlagColumns(fallback, static_only, exact)

    def note_inputs(self, no_time_preference: bool) -> NoteInputs:
        """`plan.note_inputs` of every option, from flag columns: refs are written only for the
        options a note names."""
        columns = self.flag_columns()
        inexact = self._refs(~columns.exact)
        if no_time_preference:
            return NoteInputs(bool(columns.static_only.all()), [], inexact)
        return NoteInputs(False, self._refs(columns.fallback), inexact)

    def _refs(self, where: npt.NDArray[np.bool_]) -> list[str]:
        names = self._names
        return [_ref(names[n]) for n in self._name[where].tolist()]


def embodied_kg(provider: str, region: str, hardware: Hardware, duration_s: int) -> float:
    """`catalog.embodied.embodied_in_region(...).kg_co2e`, the same float, from the reserved kg per
    region and hardware (worked out once each: a batch's durations differ to the minute)."""
    return amortised_kg(reserved_kg(provider, region, hardware), duration_s)


__all__ = ["Alternatives", "Merged", "MergedOptions", "embodied_kg", "merge", "merge_many", "rebased"]
