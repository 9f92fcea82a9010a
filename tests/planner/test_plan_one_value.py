"""A series of one value over the whole window (a static table) is planned without the search: its
run and figures must be the search's, to the last bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from carbonshift.config.jobspec import JobSpec, parse_jobspec
from carbonshift.planner.contiguous import best_start, run_integrals
from carbonshift.planner.plan import Candidate, PlanningError, plan

from .helpers import T0, T0_S, Reg, series

DAY_S = 86_400


def spec(**extra: Any) -> JobSpec:
    data: dict[str, Any] = {"name": "static", "command": ["x"], "duration": "4h", "hardware": {"vcpus": 8}}
    data.update(extra)
    return parse_jobspec(data)


@pytest.mark.parametrize("value", [0.0, 1.5, 123.456, 437.123456789, 1e-3, 2 / 3])
@pytest.mark.parametrize("duration", ["4h", "1h13m7s", "23h59m59s"])
def test_a_static_series_gives_the_searchs_run_and_figures(value: float, duration: str) -> None:
    now = T0.replace(minute=3, second=27)  # earliest off any step
    job = spec(duration=duration)
    earliest, deadline = job.resolve_window(now)
    lo, hi, d = int(earliest.timestamp()), int(deadline.timestamp()), job.duration_s
    edges = [T0_S - 3600, T0_S + 2 * DAY_S]  # one interval, wider than the window
    values = np.array([[value]])
    start, mean = best_start(edges, [value], lo, hi - d, d)  # the search over every start
    reported = run_integrals(
        np.array(edges), values, np.zeros(1, dtype=np.int64), np.array([start]), np.array([start + d])
    )
    # two regions: one also in a series of two intervals of the same value, which the search plans
    cands = [
        Candidate(Reg("aws", "static"), series(edges, [value])),
        Candidate(Reg("aws", "stepped"), series([edges[0], lo + 1, edges[1]], [value, value])),
    ]
    result = plan(job, cands, now=now)
    option = next(o for o in result.options if o.region == "static")
    assert option.start_s == start == lo and option.end_s == lo + d and option.chunks_s == ((lo, lo + d),)
    assert option.mean_g_per_kwh.hex() == mean.hex() == float(reported[0] / d).hex()
    assert option.flat and option.exact
    stepped = next(o for o in result.options if o.region == "stepped")
    assert stepped.start_s == lo and stepped.flat
    assert stepped.mean_g_per_kwh == pytest.approx(option.mean_g_per_kwh, rel=1e-12)
    assert result.baseline.mean_g_per_kwh == option.mean_g_per_kwh or result.best.region == "stepped"


def test_a_static_series_with_a_gap_or_too_short_is_still_refused() -> None:
    edges = [T0_S - 3600, T0_S + 2 * DAY_S]
    with pytest.raises(PlanningError, match=r"aws:gap.*gaps"):
        plan(spec(), [Candidate(Reg("aws", "gap"), series(edges, [float("nan")]))], now=T0)
    with pytest.raises(PlanningError, match="aws:short"):
        plan(spec(), [Candidate(Reg("aws", "short"), series([T0_S, T0_S + 3 * 3600], [100.0]))], now=T0)


def test_an_interruptible_job_on_a_static_series_is_still_searched() -> None:
    edges = [T0_S - 3600, T0_S + 2 * DAY_S]
    job = spec(interruptible=True, min_chunk="30m")
    option = plan(job, [Candidate(Reg("aws", "s"), series(edges, [200.0]))], now=T0).best
    assert option.start_s == T0_S and sum(b - a for a, b in option.chunks_s) == job.duration_s
