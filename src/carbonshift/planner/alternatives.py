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

Merging ranks by keys (`options.option_keys`), not options: a batch's plans build an option only when
it is read, and the merged plan builds (and re-bases) only the options it shows. The embodied share of
a run is the hardware's reserved kg in that region (per region and hardware, worked out once) times
the run's share of the server's lifespan, as `catalog.embodied.embodied_in_region` charges it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from carbonshift.catalog.embodied import LIFESPAN_H, ccf_server_kg, embodied_table
from carbonshift.catalog.instances import candidates
from carbonshift.config.jobspec import Hardware
from carbonshift.planner.footprints import Footprints
from carbonshift.planner.options import (
    LazyOptions,
    OptionFlags,
    OptionKeys,
    notes_from_flags,
    option_flags,
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


# an option as merge ranks it: total kg, start, provider, region, then alternative, plan, rank in it
Ranked = tuple[float, int, str, str, int, int, int]


def merge(
    first: Plan,
    first_offered: Collection[str],
    others: Sequence[tuple[int, Plan]],
    footprints: Footprints,
) -> Plan:
    """One plan of every alternative's options, best total first.

    `first` is alternative 0's plan over every region any alternative is offered in; only its options
    in `first_offered` (refs) are kept. `others` are (alternative, plan) for the rest, each over the
    regions that offer it; their savings are re-measured against `first`'s baseline for the same
    region. The plan's baseline stays `first`'s: with the spec's `baseline` region it is every
    option's; otherwise (own-region) the caller replaces it with alternative 0's run in the best
    option's region when that is another."""
    plans = [(0, first), *others]
    ranked: list[Ranked] = []
    base_rank: dict[str, int] = {}  # alternative 0's rank per region ref: its baseline there
    flat = True
    for k, (alternative, planned) in enumerate(plans):
        hardware = footprints.choices[alternative].hardware
        reserved = _reserved_table(hardware)
        # every run of the plan, split or not, adds up to its duration: one time-share for all
        time_share = planned.duration_s / 3600.0 / LIFESPAN_H
        keys = option_keys(planned.options)
        for i, (provider, region, kg, start, is_flat) in enumerate(zip(*keys, strict=True)):
            if k == 0:
                ref = f"{provider}:{region}"
                base_rank[ref] = i
                if ref not in first_offered:
                    continue
            here = reserved.get((provider, region))
            if here is None:
                here = reserved[provider, region] = _reserved_kg(provider, region, hardware)
            ranked.append((kg + here * time_share, start, provider, region, alternative, k, i))
            flat = flat and is_flat
    if not ranked:  # pragma: no cover - the caller plans only alternatives offered somewhere
        raise ValueError("no option to rank")
    ranked.sort()
    merged = MergedOptions([planned.options for _, planned in plans], ranked, base_rank)
    return dataclasses.replace(first, options=merged, no_time_preference=flat, footprints=footprints)


class MergedOptions(LazyOptions):
    """The options of several alternatives' plans in one ranking, each built (and, past alternative
    0, re-based on alternative 0's baseline in its region) when first read."""

    __slots__ = ("_base_rank", "_order", "_plans")

    def __init__(
        self,
        plans: list[Sequence[PlanOption]],
        order: Sequence[Ranked],
        base_rank: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self._plans = plans  # alternative 0's first
        # by merged rank, entries ending (alternative, plan, rank in that plan): merge's sorted keys,
        # held as they are (a list of 3-tuples made from them cost a tenth of merging)
        self._order = order
        # alternative 0's rank per region ref (None: worked out when first needed)
        self._base_rank: dict[str, int] | None = base_rank

    def __len__(self) -> int:
        return len(self._order)

    def _make(self, ranks: list[int]) -> list[PlanOption]:
        out = []
        for entry in (self._order[r] for r in ranks):
            alternative, k, i = entry[4], entry[5], entry[6]
            option = self._plans[k][i]
            if k:
                option = rebased(option, self._baseline_kg(option.ref), alternative)
            out.append(option)
        return out

    def _baseline_kg(self, ref: str) -> float:
        """Alternative 0's baseline in region `ref` (its option there says it)."""
        if self._base_rank is None:
            keys = option_keys(self._plans[0])
            refs = zip(keys.provider, keys.region, strict=True)
            self._base_rank = {f"{provider}:{region}": i for i, (provider, region) in enumerate(refs)}
        return self._plans[0][self._base_rank[ref]].baseline_kg_co2e

    def keys(self) -> OptionKeys:
        """The options' keys (re-basing changes only savings)."""
        keys = [option_keys(p) for p in self._plans]
        at = [(e[5], e[6]) for e in self._order]
        return OptionKeys(
            [keys[k].provider[i] for k, i in at],
            [keys[k].region[i] for k, i in at],
            [keys[k].kg_co2e[i] for k, i in at],
            [keys[k].start_s[i] for k, i in at],
            [keys[k].flat[i] for k, i in at],
        )

    def flags(self, ranks: Sequence[int]) -> list[OptionFlags]:
        out: list[OptionFlags | None] = [None] * len(ranks)
        by_plan: dict[int, list[tuple[int, int]]] = {}
        for at, r in enumerate(ranks):
            entry = self._order[r]
            k, i = entry[5], entry[6]
            by_plan.setdefault(k, []).append((at, i))
        for k, wanted in by_plan.items():
            for (at, _), flags in zip(
                wanted, option_flags(self._plans[k], [i for _, i in wanted]), strict=True
            ):
                out[at] = flags
        return [f for f in out if f is not None]

    def note_inputs(self, no_time_preference: bool) -> NoteInputs:
        keys = self.keys()
        refs = [f"{provider}:{region}" for provider, region in zip(keys.provider, keys.region, strict=True)]
        return notes_from_flags(refs, self.flags(range(len(refs))), no_time_preference)


def embodied_kg(provider: str, region: str, hardware: Hardware, duration_s: int) -> float:
    """`catalog.embodied.embodied_in_region(...).kg_co2e`, the same float, from the reserved kg per
    region and hardware (worked out once each: a batch's durations differ to the minute)."""
    reserved = _reserved_table(hardware)
    here = reserved.get((provider, region))
    if here is None:
        here = reserved[provider, region] = _reserved_kg(provider, region, hardware)
    return here * (duration_s / 3600.0 / LIFESPAN_H)


def _reserved_table(hardware: Hardware) -> dict[tuple[str, str], float]:
    """The reserved kg per (provider, region) worked out so far for this hardware (by its values: a
    pydantic model hashes slowly)."""
    key = (hardware.gpu, hardware.gpus, hardware.vcpus, hardware.memory_gb)
    table = _RESERVED.get(key)
    if table is None:
        table = _RESERVED[key] = {}
        if len(_RESERVED) > MAX_REMEMBERED:
            _RESERVED.pop(next(iter(_RESERVED)))
    return table


def _reserved_kg(provider: str, region: str, hardware: Hardware) -> float:
    """What `embodied_in_region` amortises: the picked instance type's share of its host, else a whole
    server built from the hardware by CCF's method."""
    found = candidates(provider, region, hardware)
    if found:
        return embodied_table()[(found[0].provider, found[0].key)].reserved_kg_co2e
    return ccf_server_kg(memory_gb=hardware.memory_gb, gpus=hardware.gpus)[0]


MAX_REMEMBERED = 1 << 10  # hardware shapes; each with at most every catalog region
_RESERVED: dict[tuple[object, ...], dict[tuple[str, str], float]] = {}

__all__ = ["MergedOptions", "embodied_kg", "merge", "rebased"]
