"""`batch.own_region_baseline`: a batch plan's run at earliest in any of its regions is the baseline
`plan()` gives the same spec planned over that region alone (the advisor uses it for hardware
alternatives whose best option is in another region than alternative 0's best)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import numpy as np

from carbonshift.config.jobspec import JobSpec, parse_jobspec
from carbonshift.planner.batch import own_region_baseline, plan_batch
from carbonshift.planner.plan import plan

from .helpers import T0, T0_S, Reg, hourly, series

HOUR = 3600


def spec(rng: random.Random, i: int) -> JobSpec:
    duration_s = rng.choice([1800, 3600, 5400, 7261, 4 * HOUR])
    earliest_s = T0_S + rng.randint(0, 6 * HOUR)
    data: dict[str, Any] = {
        "name": f"job-{i}",
        "command": ["run"],
        "duration": f"{duration_s}s",
        "window": {
            "earliest": datetime.fromtimestamp(earliest_s, UTC).isoformat(),
            "deadline": datetime.fromtimestamp(
                earliest_s + duration_s + rng.randint(0, 20 * HOUR), UTC
            ).isoformat(),
        },
    }
    if rng.random() < 0.3:
        data.update(interruptible=True, min_chunk="30m")
    return parse_jobspec(data)


def test_a_batch_plans_run_at_earliest_in_each_region_is_plan_s_baseline_there() -> None:
    rng = random.Random(7)
    regions = [Reg("p", f"r{k}", zone=f"Z{k}", pue=1.0 + k / 10) for k in range(5)]
    cands = [(r, hourly([rng.uniform(50, 500) for _ in range(40)], zone=r.zone)) for r in regions[:4]]
    flat_edges = [T0_S, T0_S + 40 * HOUR]
    cands.append((regions[4], series(flat_edges, [321.5], zone="Z4")))  # one value: plan()'s quick path
    specs = [spec(rng, i) for i in range(40)]
    checked = 0
    for s, result in zip(specs, plan_batch(specs, cands, now=T0), strict=True):
        for region, found in cands:
            ref = f"{region.provider}:{region.region}"
            got = own_region_baseline(result, ref)
            assert got is not None
            assert got == plan(s, [(region, found)], now=T0).baseline
            checked += 1
        assert own_region_baseline(result, "p:elsewhere") is None
    assert checked == 200 and not np.isnan([c[1].values for c in cands[:4]]).any()
