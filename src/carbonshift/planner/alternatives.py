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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from carbonshift.planner.footprints import Footprints
from carbonshift.planner.plan import Plan, PlanOption


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
    base_kg = {o.ref: o.baseline_kg_co2e for o in first.options}
    options = [o for o in first.options if o.ref in first_offered]
    for k, planned in others:
        options.extend(rebased(o, base_kg[o.ref], k) for o in planned.options)
    if not options:  # pragma: no cover - the caller plans only alternatives offered somewhere
        raise ValueError("no option to rank")
    ranked = sorted(
        options, key=lambda o: (footprints.total_kg(o), o.start_s, o.provider, o.region, o.alternative)
    )
    return dataclasses.replace(
        first,
        options=tuple(ranked),
        no_time_preference=all(o.flat for o in ranked),
        footprints=footprints,
    )


__all__ = ["merge", "rebased"]
