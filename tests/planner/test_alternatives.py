"""Merging hardware alternatives (planner/alternatives.py) by keys and lazily built options: the same
ranking, figures and notes as sorting every built option by its total kg."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from carbonshift.catalog.embodied import embodied_in_region
from carbonshift.config import load_settings
from carbonshift.config.jobspec import Hardware, parse_jobspec
from carbonshift.intensity.types import Kind
from carbonshift.planner.alternatives import Alternatives, embodied_kg, merge, merge_many, rebased
from carbonshift.planner.batch import plan_batch
from carbonshift.planner.footprints import Footprints, alternative_spec
from carbonshift.planner.plan import Candidate, Plan, note_inputs, plan
from carbonshift.runtime import build_catalog

from .helpers import T0, T0_S, Reg, series

HARDWARE = [
    {"gpu": "A100", "gpus": 8, "vcpus": 96, "memory_gb": 1152},
    {"gpu": "H100", "gpus": 8, "vcpus": 96, "memory_gb": 1152},
    {"gpu": "T4", "gpus": 1, "vcpus": 4, "memory_gb": 16},
    {"vcpus": 16, "memory_gb": 64},
]


def merged_by_building(
    first: Plan, offered: set[str], others: list[tuple[int, Plan]], fp: Footprints
) -> Plan:
    """The reference: every option built, re-based and sorted by (total kg, start, name, alternative)."""
    base_kg = {o.ref: o.baseline_kg_co2e for o in first.options}
    options = [o for o in first.options if o.ref in offered]
    for k, planned in others:
        options.extend(rebased(o, base_kg[o.ref], k) for o in planned.options)
    ranked = sorted(options, key=lambda o: (fp.total_kg(o), o.start_s, o.provider, o.region, o.alternative))
    return dataclasses.replace(
        first, options=tuple(ranked), no_time_preference=all(o.flat for o in ranked), footprints=fp
    )


def spec_with_options(duration_h: int, **extra: object) -> object:
    return parse_jobspec(
        {
            "name": "train",
            "command": ["run"],
            "duration": f"{duration_h}h",
            "hardware": HARDWARE[0],
            "window": {"earliest": T0.isoformat(), "deadline": (T0 + timedelta(hours=20)).isoformat()},
            "hardware_options": [{**HARDWARE[1], "speedup": 1.5}, {**HARDWARE[0], "duration": "5h7m"}],
            **extra,
        }
    )


@pytest.mark.parametrize("interruptible", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_merge_equals_sorting_every_built_option(interruptible: bool, batched: bool) -> None:
    rng = np.random.default_rng(5)
    edges = T0_S + 1800 * np.arange(49)
    kinds = [Kind.FORECAST, Kind.STATIC, Kind.MODELLED]
    cands = [
        Candidate(
            Reg("aws" if i % 2 else "gcp", f"r{i}", pue=1.0 + 0.05 * (i % 4)),
            series(edges, rng.uniform(50, 500, 48).round(0) if i % 3 else [200.0] * 48, kind=kinds[i % 3]),
        )
        for i in range(12)
    ]
    extra = {"interruptible": True, "min_chunk": "1h"} if interruptible else {}
    spec = spec_with_options(4, **extra)
    fp = Footprints.of(spec)  # type: ignore[arg-type]
    alts = [alternative_spec(spec, c) for c in fp.choices]  # type: ignore[arg-type]
    regions = [cands, cands[:8], cands[4:]]  # alternative 0 over the union; each other where offered
    if batched:
        plans = [plan_batch([s], r, now=T0)[0] for s, r in zip(alts, regions, strict=True)]
    else:
        plans = [plan(s, r, now=T0) for s, r in zip(alts, regions, strict=True)]
    offered = {f"{c.region.provider}:{c.region.region}" for c in cands[2:]}
    others = [(1, plans[1]), (2, plans[2])]
    got = merge(plans[0], offered, others, fp)
    want = merged_by_building(plans[0], offered, others, fp)
    assert got.no_time_preference == want.no_time_preference
    assert note_inputs(got.options, False) == note_inputs(tuple(want.options), False)
    assert note_inputs(got.options, True) == note_inputs(tuple(want.options), True)
    assert got.to_dict(top=3) == want.to_dict(top=3)
    assert got == want and got.to_dict() == want.to_dict() and got.notes == want.notes
    assert {o.alternative for o in got.options} == {0, 1, 2}
    assert pickle.loads(pickle.dumps(got)) == want


def test_embodied_kg_is_the_catalogs_own_figure() -> None:
    catalog = build_catalog(load_settings(None, ukci_enabled=False, cache={"enabled": False}))
    rng = np.random.default_rng(2)
    for region in catalog.regions()[::3]:
        for hw in HARDWARE:
            hardware = Hardware(**hw)
            for d in rng.integers(60, 40 * 3600, 3).tolist():
                want = embodied_in_region(region.provider, region.region, hardware, d).kg_co2e
                assert embodied_kg(region.provider, region.region, hardware, d) == want


def test_merged_options_are_built_when_read() -> None:
    edges = T0_S + 3600 * np.arange(25)
    cands = [Candidate(Reg("aws", f"r{i}"), series(edges, [100.0 + i] * 24)) for i in range(30)]
    spec = spec_with_options(4)
    fp = Footprints.of(spec)  # type: ignore[arg-type]
    plans = [plan_batch([alternative_spec(spec, c)], cands, now=T0)[0] for c in fp.choices]  # type: ignore[arg-type]
    offered = {f"aws:r{i}" for i in range(30)}
    got = merge(plans[0], offered, [(1, plans[1]), (2, plans[2])], fp)
    assert len(got.options) == 90
    assert got.best.ref == "aws:r0"
    assert sum(o is not None for o in got.options._built or ()) == 1  # type: ignore[attr-defined]
    with pytest.raises(IndexError):
        got.options[90]
    assert datetime.fromtimestamp(got.best.start_s, UTC) == T0


@pytest.mark.parametrize("batched", [False, True])
def test_merging_many_specs_at_once_equals_merging_each_with_ties_broken_by_start_and_name(
    batched: bool,
) -> None:
    """`merge_many` ranks every spec's runs in one sort: each spec's plan must be the one sorting its
    built options gives, also where totals are exactly equal (regions of one static value and PUE,
    under several providers), which the sort breaks by start, provider, region and alternative."""
    edges = T0_S + 1800 * np.arange(49)
    rng = np.random.default_rng(9)
    cands = [
        Candidate(
            Reg(("gcp", "aws", "azure")[i % 3], f"r{i // 3}", pue=1.1),
            series(edges, [300.0] * 48 if i < 9 else rng.uniform(100, 400, 48).round(0)),
        )
        for i in range(15)
    ]
    items, wants = [], []
    for hours in (2, 4, 7):
        spec = spec_with_options(hours)
        fp = Footprints.of(spec)  # type: ignore[arg-type]
        alts = [alternative_spec(spec, c) for c in fp.choices]  # type: ignore[arg-type]
        regions = [cands, cands[3:], cands[:12]]
        if batched:
            plans = plan_batch(alts, lambda s, a=alts, r=regions: r[a.index(s)], now=T0)
        else:
            plans = [plan(s, r, now=T0) for s, r in zip(alts, regions, strict=True)]
        offered = {f"{c.region.provider}:{c.region.region}" for c in cands[:10]}
        others = [(1, plans[1]), (2, plans[2])]
        items.append(Alternatives(plans[0], offered, others, fp))
        wants.append(merged_by_building(plans[0], offered, others, fp))
    results = merge_many(items)
    for (got, moved), want, item in zip(results, wants, items, strict=True):
        assert got == want and got.to_dict() == want.to_dict()
        assert got.no_time_preference == want.no_time_preference
        assert moved == (None if got.best.ref == item.first.best.ref else got.best.ref)
    totals = [
        (round(fp_total, 12)) for fp_total in (items[0].footprints.total_kg(o) for o in wants[0].options)
    ]
    assert len(totals) > len(set(totals))  # the fixture has exact ties to break
