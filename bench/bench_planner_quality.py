"""Planner quality on real grid data: the experiment of Wiesner et al., "Let's Wait Awhile" (Middleware 2021).

Data: the authors' 2020 carbon-intensity series (DE 15-min, GB 30-min then 15-min from 2020-10-31, FR
30-min; doi:10.1145/3464298.3493399, github.com/dos-group/lets-wait-awhile), read at bench time from
--data (default ../shared/data/lets-wait-awhile next to the repo) and never copied here: the data has
no licence. Timestamps are naive; they are read as UTC (they are: DE's midday intensity dip and the
solar peak in the authors' GB and FR production files sit at 11-12 h, and do not move at the DST
changes). Each value is the mean over its interval (piecewise constant), as everywhere in carbonshift.

Scenarios, every day of 2020 in each region:

(a) nightly 30-minute jobs nominally at 01:00 with flexibility f = 2, 4, 8 h: window
    [01:00 - f, 01:00 + f + 30 min], the job must finish inside it; contiguous.
(b) 4-hour ML jobs submitted at every half hour from 09:00 to 16:30 (the working-hours submission
    grid of the paper's ML workload: 16 jobs a day, so the result does not hinge on one hour),
    deadline 24 h after submission; contiguous, and interruptible with a minimum chunk of 30 minutes
    (the paper's slot, the same for all three regions, and the slot of the modelled forecast).

Per scenario and region: the saving against running at once (at the window start / at submission) of
total emissions, 100 * (1 - sum(achieved) / sum(at once)) (every job draws the same energy, so this is
the paper's ratio of mean intensities), and the fraction of the oracle saving achieved,
(at once - achieved) / (at once - oracle) over all jobs, when the planner plans on

* perfect:     the real series itself. The oracle is computed independently of the planner (a
               brute-force minimum over slot-aligned starts; for interruptible jobs an exhaustive
               dynamic programme over slot-aligned schedules with runs of at least the minimum chunk,
               which hold the real-valued optimum as window, job, chunk and data edges are all on the
               slot grid), so 100 % here checks that the planner is exact;
* profile-7d:  the planner's own modelled forecast, `profile_forecast` on the 7 days of history
               before the decision (the window start / the submission), mean by 30-min slot of day;
* persistence: yesterday's value at the same time (an ablation; also history only).

Nightly jobs are also measured against their nominal 01:00 (the paper's baseline), and a second table
sets the perfect-forecast nightly savings beside the published figures and beside the paper's own rule
(`paper_method_nightly`) applied to the same data, to show where the two differ and by how much.

Every plan is made by the planner's vectorised functions (`best_starts`, `cheapest_chunks_many`), one
call per scenario, region and forecast over all its jobs on a shared relative time grid, and every
choice is then evaluated on the real series (`window_means`).

    .venv/bin/python bench/bench_planner_quality.py [--data DIR] [--history-days 7] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonshift.intensity.model import profile_forecast
from carbonshift.intensity.types import IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.planner.contiguous import best_starts, window_means
from carbonshift.planner.interruptible import ChunkPlan, cheapest_chunks_many
from carbonshift.timeutil import from_epoch_s

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "lets-wait-awhile"
REGIONS = (("DE", "ger_ci.csv"), ("GB", "gb_ci.csv"), ("FR", "fr_ci.csv"))

MIN_S = 60
HOUR_S = 3600
DAY_S = 86_400
YEAR = 2020
PROFILE_SLOT_S = 1800  # the modelled forecast's slot; the work grid divides it
HISTORY_DAYS = 7
FORECASTS = ("perfect", "profile", "persistence")

NIGHTLY_AT_S = 1 * HOUR_S
NIGHTLY_DURATION_S = 30 * MIN_S
NIGHTLY_FLEX_H = (2, 4, 8)
ML_SUBMIT_S = tuple(9 * HOUR_S + k * 30 * MIN_S for k in range(16))  # 09:00, 09:30, ..., 16:30
ML_DURATION_S = 4 * HOUR_S
ML_WINDOW_S = 24 * HOUR_S
MIN_CHUNK_S = 30 * MIN_S

# Wiesner et al. 2021, nightly jobs, perfect forecast, +-8 h: saving against running at 01:00 (%)
PAPER_NIGHTLY_8H = {"DE": 13.5, "GB": 10.2, "FR": 7.5}

_HISTORY = Provenance(
    source="bench:lets-wait-awhile",
    signal=Signal.AVERAGE,
    kind=Kind.MEASURED,
    fetched_at=datetime(YEAR, 1, 1, tzinfo=UTC),
)


# ---- data -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """A series as read: interval starts (epoch s, naive times read as UTC) and values; the last
    interval is as long as the step before it."""

    zone: str
    times_s: IntArray
    values: FloatArray

    @property
    def edges_s(self) -> IntArray:
        t = self.times_s
        return np.append(t, t[-1] + (t[-1] - t[-2])).astype(np.int64)


@dataclass(frozen=True)
class Grid:
    """A piecewise-constant series on a regular grid: values[i] holds over [t0 + i*step, t0 + (i+1)*step)."""

    zone: str
    t0_s: int
    step_s: int
    values: FloatArray

    def index(self, t_s: npt.ArrayLike) -> IntArray:
        off = np.asarray(t_s, dtype=np.int64) - self.t0_s
        if off.size and (int(off.min()) < 0 or bool((off % self.step_s).any())):
            raise ValueError(f"{self.zone}: times before the series or off its {self.step_s} s grid")
        return np.asarray(off // self.step_s, dtype=np.int64)

    def rows(self, starts_s: npt.ArrayLike, n: int) -> FloatArray:
        """(jobs, n): the n steps from each start."""
        i = self.index(starts_s)
        if i.size and int(i.max()) + n > len(self.values):
            raise ValueError(f"{self.zone}: the series ends before the last window")
        return np.asarray(self.values[i[:, None] + np.arange(n)], dtype=np.float64)

    def history(self, start_s: int, end_s: int) -> IntensitySeries:
        i0, i1 = (int(x) for x in self.index([start_s, end_s]))
        edges = self.t0_s + self.step_s * np.arange(i0, i1 + 1, dtype=np.int64)
        vals = np.array(self.values[i0:i1], dtype=np.float64)
        return IntensitySeries(
            self.zone, Signal.AVERAGE, edges, vals, np.zeros(len(vals), dtype=np.int32), (_HISTORY,)
        )


def read_csv(path: Path, zone: str) -> Raw:
    """`Time,Carbon Intensity` rows with naive timestamps, read as UTC."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[:2] != ["Time", "Carbon Intensity"]:
            raise ValueError(f"{path}: unexpected header {header}")
        rows = [r for r in reader if r]
    times = np.array([r[0] for r in rows], dtype="datetime64[s]").astype(np.int64)
    values = np.array([float(r[1]) for r in rows], dtype=np.float64)
    if len(times) < 2 or bool((np.diff(times) <= 0).any()):
        raise ValueError(f"{path}: times must be strictly increasing")
    if bool(np.isnan(values).any()):
        raise ValueError(f"{path}: missing values")
    return Raw(zone, times, values)


def to_grid(raw: Raw, slot_s: int = PROFILE_SLOT_S) -> Grid:
    """The same piecewise-constant series on the coarsest regular grid holding every edge and the
    forecast's slot (15 min for DE and GB, 30 min for FR): a lossless change of representation that
    lets all of a scenario's windows share one relative grid."""
    edges = raw.edges_s
    step = math.gcd(int(np.gcd.reduce(np.diff(edges))), slot_s)
    t0 = int(edges[0])
    if t0 % step:
        raise ValueError(f"{raw.zone}: the first time is off the {step} s grid")
    starts = np.arange(t0, int(edges[-1]), step, dtype=np.int64)
    idx = np.searchsorted(edges, starts, side="right") - 1
    return Grid(raw.zone, t0, step, raw.values[idx])


# ---- oracles (independent of the planner) -----------------------------------------------------------
def oracle_contiguous(rows: FloatArray, q: int) -> FloatArray:
    """Least mean over every run of q consecutive slots (brute force over slot-aligned starts)."""
    cs = np.zeros((rows.shape[0], rows.shape[1] + 1))
    np.cumsum(rows, axis=1, out=cs[:, 1:])
    return np.asarray((cs[:, q:] - cs[:, :-q]).min(axis=1) / q, dtype=np.float64)


def oracle_chunked(rows: FloatArray, k: int, m: int) -> FloatArray:
    """Least mean of k slots whose every maximal run is at least m slots long: an exhaustive dynamic
    programme over (slots used, length of the current run capped at m), one slot at a time."""
    m = max(m, 1)
    n_rows, n = rows.shape
    best = np.full((n_rows, k + 1, m + 1), np.inf)
    best[:, 0, 0] = 0.0
    for i in range(n):
        c = rows[:, i, None]
        nxt = np.full_like(best, np.inf)
        nxt[:, :, 0] = np.minimum(best[:, :, 0], best[:, :, m])  # idle: only after no run or a long one
        for r in range(m + 1):  # run this slot: the run grows (capped at m)
            r2 = min(r + 1, m)
            np.minimum(nxt[:, 1:, r2], best[:, :-1, r] + c, out=nxt[:, 1:, r2])
        best = nxt
    return np.asarray(np.minimum(best[:, k, 0], best[:, k, m]) / k, dtype=np.float64)


# ---- evaluation on the real series ------------------------------------------------------------------
def realised_contiguous(edges: IntArray, real: FloatArray, starts: IntArray, d: int) -> FloatArray:
    """Exact mean of the real series over [start, start + d) per job (one window_means per start)."""
    out = np.empty(len(starts))
    for s in np.unique(starts):
        sel = starts == s
        out[sel] = window_means(edges, real[sel], int(s), int(s) + d)
    return out


def realised_chunks(
    edges: IntArray, real: FloatArray, plans: Sequence[ChunkPlan], d: int, span: int, min_chunk: int
) -> FloatArray:
    """Exact mean of the real series over each job's chunks, checking every plan is feasible."""
    row_idx, lo, hi = [], [], []
    for r, plan in enumerate(plans):
        total = sum(b - a for a, b in plan.chunks)
        if total != d or plan.chunks[0][0] < 0 or plan.chunks[-1][1] > span:
            raise AssertionError(f"infeasible plan {plan.chunks}")
        if any(b - a < min(min_chunk, d) for a, b in plan.chunks):
            raise AssertionError(f"chunk shorter than {min_chunk} s in {plan.chunks}")
        for a, b in plan.chunks:
            row_idx.append(r)
            lo.append(a)
            hi.append(b)
    rows_a, lo_a, hi_a = np.array(row_idx), np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)
    pairs, inverse = np.unique(np.stack([lo_a, hi_a], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(pairs) + 1))
    cost = np.empty(len(lo_a))
    for u, (a, b) in enumerate(pairs):
        members = order[bounds[u] : bounds[u + 1]]
        cost[members] = window_means(edges, real[rows_a[members]], int(a), int(b)) * float(b - a)
    return np.bincount(rows_a, weights=cost, minlength=len(plans)) / d


# ---- forecasts --------------------------------------------------------------------------------------
def forecast_rows(
    kind: str, grid: Grid, starts: IntArray, span: int, n: int, history_days: int = HISTORY_DAYS
) -> FloatArray:
    """(jobs, n) forecast values on the work grid from each decision time, made only from history
    before it (except `perfect`, which is the real series)."""
    if kind == "perfect":
        return grid.rows(starts, n)
    if kind == "persistence":
        if span > DAY_S:
            raise ValueError("persistence over more than a day would read the future")
        return grid.rows(starts - DAY_S, n)
    if kind == "profile":
        rel = grid.step_s * np.arange(n, dtype=np.int64)
        out = np.empty((len(starts), n))
        for r, s in enumerate(int(x) for x in starts):
            hist = grid.history(s - history_days * DAY_S, s)
            fc = profile_forecast(
                hist, TimeSpan.from_epoch(s, s + span), from_epoch_s(s), based_on=f"{grid.zone} 2020"
            )
            out[r] = fc.values[np.searchsorted(fc.edges_s, s + rel, side="right") - 1]
        return out
    raise ValueError(f"unknown forecast {kind!r}")


# ---- one scenario -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    forecast: str
    mean_g_per_kwh: float
    saving_pct: float  # of total emissions against running at once
    of_oracle_pct: float  # (at once - achieved) / (at once - oracle)
    saving_vs_nominal_pct: float  # against running at the nominal time (nightly: 01:00)
    mean_job_saving_pct: float  # the mean over jobs of each job's own saving against running at once


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    region: str
    jobs: int
    interruptible: bool
    at_once_g_per_kwh: float
    nominal_g_per_kwh: float
    oracle_g_per_kwh: float
    oracle_saving_pct: float
    oracle_saving_vs_nominal_pct: float
    outcomes: tuple[Outcome, ...]

    def outcome(self, forecast: str) -> Outcome:
        return next(o for o in self.outcomes if o.forecast == forecast)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "region": self.region,
            "jobs": self.jobs,
            "interruptible": self.interruptible,
            "at_once_g_per_kwh": round(self.at_once_g_per_kwh, 3),
            "nominal_g_per_kwh": round(self.nominal_g_per_kwh, 3),
            "oracle_g_per_kwh": round(self.oracle_g_per_kwh, 3),
            "oracle_saving_pct": round(self.oracle_saving_pct, 3),
            "oracle_saving_vs_nominal_pct": round(self.oracle_saving_vs_nominal_pct, 3),
            "forecasts": {
                o.forecast: {
                    "mean_g_per_kwh": round(o.mean_g_per_kwh, 3),
                    "saving_pct": round(o.saving_pct, 3),
                    "of_oracle_pct": round(o.of_oracle_pct, 3),
                    "saving_vs_nominal_pct": round(o.saving_vs_nominal_pct, 3),
                    "mean_job_saving_pct": round(o.mean_job_saving_pct, 3),
                }
                for o in self.outcomes
            },
        }


def run_jobs(
    grid: Grid,
    starts_s: npt.ArrayLike,
    window_s: int,
    duration_s: int,
    modes: Sequence[tuple[str, bool]],
    *,
    nominal_s: int = 0,
    min_chunk_s: int = MIN_CHUNK_S,
    forecasts: Sequence[str] = FORECASTS,
    history_days: int = HISTORY_DAYS,
) -> list[ScenarioResult]:
    """Jobs of `duration_s` that may run anywhere in [start, start + window_s), one per start, planned
    by the planner on every forecast (made once, shared by the modes) and evaluated on the real
    series. `modes`: (scenario name, interruptible) pairs; `nominal_s`: the job's nominal start after
    the window start (nightly: f), a second baseline."""
    starts = np.asarray(starts_s, dtype=np.int64)
    w = grid.step_s
    if window_s % w or duration_s % w or min_chunk_s % w or nominal_s % w:
        raise ValueError(f"window, duration, min chunk and nominal start must be whole {w} s steps")
    if not 0 <= nominal_s <= window_s - duration_s:
        raise ValueError("the job does not fit its window at its nominal start")
    n = window_s // w
    q = duration_s // w
    edges = w * np.arange(n + 1, dtype=np.int64)  # every job's window on one relative grid
    real = grid.rows(starts, n)
    at_once = window_means(edges, real, 0, duration_s)
    nominal = window_means(edges, real, nominal_s, nominal_s + duration_s)
    base_sum, nominal_sum = float(at_once.sum()), float(nominal.sum())
    fcs = {kind: forecast_rows(kind, grid, starts, window_s, n, history_days) for kind in forecasts}

    results = []
    for scenario, interruptible in modes:
        if interruptible and min_chunk_s < duration_s:
            oracle = oracle_chunked(real, q, min_chunk_s // w)
        else:
            oracle = oracle_contiguous(real, q)
        oracle_sum = float(oracle.sum())
        gap = base_sum - oracle_sum
        outcomes = []
        for kind, fc in fcs.items():
            if interruptible:
                plans = cheapest_chunks_many(edges, fc, 0, window_s, duration_s, min_chunk_s)
                achieved = realised_chunks(edges, real, plans, duration_s, window_s, min_chunk_s)
            else:
                chosen = best_starts(edges, fc, 0, window_s - duration_s, duration_s).start_s
                achieved = realised_contiguous(edges, real, chosen, duration_s)
            got = float(achieved.sum())
            outcomes.append(
                Outcome(
                    forecast=kind,
                    mean_g_per_kwh=got / len(starts),
                    saving_pct=100.0 * (1.0 - got / base_sum),
                    of_oracle_pct=100.0 * (base_sum - got) / gap if gap > 0 else math.nan,
                    saving_vs_nominal_pct=100.0 * (1.0 - got / nominal_sum),
                    mean_job_saving_pct=100.0 * float(np.mean(1.0 - achieved / at_once)),
                )
            )
        results.append(
            ScenarioResult(
                scenario=scenario,
                region=grid.zone,
                jobs=len(starts),
                interruptible=interruptible,
                at_once_g_per_kwh=base_sum / len(starts),
                nominal_g_per_kwh=nominal_sum / len(starts),
                oracle_g_per_kwh=oracle_sum / len(starts),
                oracle_saving_pct=100.0 * (1.0 - oracle_sum / base_sum),
                oracle_saving_vs_nominal_pct=100.0 * (1.0 - oracle_sum / nominal_sum),
                outcomes=tuple(outcomes),
            )
        )
    return results


def run_scenario(
    grid: Grid,
    starts_s: npt.ArrayLike,
    window_s: int,
    duration_s: int,
    *,
    interruptible: bool = False,
    scenario: str = "",
    **kwargs: Any,
) -> ScenarioResult:
    """`run_jobs` for one mode."""
    return run_jobs(grid, starts_s, window_s, duration_s, [(scenario, interruptible)], **kwargs)[0]


# ---- the paper's own rule, on the same data ---------------------------------------------------------
def paper_method_nightly(raw: Raw, flex_s: int) -> float:
    """Saving (%) as the paper's simulator computes it: the series cut to its points at :00 and :30
    (for 15-min data the :15 and :45 values are dropped, not averaged) from 2020-01-01 00:00, one job
    a day at 01:00 for 365 days, costed at the single point where it starts, starts only on that
    30-minute grid within +-flex (no data before 2020-01-01: the Jan 1 window is cut there)."""
    jan1 = int(datetime(YEAR, 1, 1, tzinfo=UTC).timestamp())
    keep = (raw.times_s % 1800 == 0) & (raw.times_s >= jan1)
    t, v = raw.times_s[keep], raw.values[keep]
    if t[0] != jan1 or bool((np.diff(t) != 1800).any()):
        raise ValueError(f"{raw.zone}: the :00/:30 points are not a regular series from Jan 1")
    k = flex_s // 1800
    pos = 2 + 48 * np.arange(365)
    cand = np.clip(pos[:, None] + np.arange(-k, k + 1), 0, None)
    return 100.0 * (1.0 - float(v[cand].min(axis=1).sum()) / float(v[pos].sum()))


# ---- the whole bench --------------------------------------------------------------------------------
def day_starts(offset_s: int) -> IntArray:
    jan1 = int(datetime(YEAR, 1, 1, tzinfo=UTC).timestamp())
    days = (datetime(YEAR + 1, 1, 1, tzinfo=UTC) - datetime(YEAR, 1, 1, tzinfo=UTC)).days
    return jan1 + DAY_S * np.arange(days, dtype=np.int64) + offset_s


def nightly_name(flex_h: int) -> str:
    return f"nightly 30m ±{flex_h}h"


@dataclass(frozen=True)
class PaperCheck:
    """Nightly jobs, perfect forecast, saving (%) per region and flexibility (hours), four ways."""

    paper_rule: dict[str, dict[int, float]]  # the paper's rule on this data, against 01:00
    bench_points_vs_nominal: dict[str, dict[int, float]]  # the planner on the :00/:30 points, against 01:00
    bench_vs_nominal: dict[str, dict[int, float]]  # the planner on all the data, against 01:00
    bench_vs_start: dict[str, dict[int, float]]  # the planner on all the data, against the window start

    def to_dict(self) -> dict[str, Any]:
        def fmt(d: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
            return {z: {f"±{f}h": round(v, 3) for f, v in row.items()} for z, row in d.items()}

        return {
            "published_8h": PAPER_NIGHTLY_8H,
            "paper_rule_on_this_data_vs_0100": fmt(self.paper_rule),
            "bench_on_0000_0030_points_vs_0100": fmt(self.bench_points_vs_nominal),
            "bench_vs_0100": fmt(self.bench_vs_nominal),
            "bench_vs_window_start": fmt(self.bench_vs_start),
        }


def run_all(data: Path, history_days: int = HISTORY_DAYS) -> tuple[list[ScenarioResult], PaperCheck]:
    results: list[ScenarioResult] = []
    check = PaperCheck({}, {}, {}, {})
    for zone, name in REGIONS:
        raw = read_csv(data / name, zone)
        grid = to_grid(raw)
        on_points = raw.times_s % 1800 == 0
        points = to_grid(Raw(zone, raw.times_s[on_points], raw.values[on_points]))
        for store in (
            check.paper_rule,
            check.bench_points_vs_nominal,
            check.bench_vs_nominal,
            check.bench_vs_start,
        ):
            store[zone] = {}
        for f in NIGHTLY_FLEX_H:
            args = (
                day_starts(NIGHTLY_AT_S - f * HOUR_S),
                2 * f * HOUR_S + NIGHTLY_DURATION_S,
                NIGHTLY_DURATION_S,
            )
            r = run_scenario(
                grid, *args, scenario=nightly_name(f), nominal_s=f * HOUR_S, history_days=history_days
            )
            results.append(r)
            p = run_scenario(points, *args, nominal_s=f * HOUR_S, forecasts=("perfect",))
            check.paper_rule[zone][f] = paper_method_nightly(raw, f * HOUR_S)
            check.bench_points_vs_nominal[zone][f] = p.oracle_saving_vs_nominal_pct
            check.bench_vs_nominal[zone][f] = r.oracle_saving_vs_nominal_pct
            check.bench_vs_start[zone][f] = r.oracle_saving_pct
        ml_starts = np.sort(np.concatenate([day_starts(s) for s in ML_SUBMIT_S]))
        results += run_jobs(
            grid,
            ml_starts,
            ML_WINDOW_S,
            ML_DURATION_S,
            [("ML 4h, 24h contiguous", False), ("ML 4h, 24h interruptible", True)],
            history_days=history_days,
        )
    return results, check


def format_table(results: Sequence[ScenarioResult], history_days: int) -> str:
    labels = {
        "perfect": "perfect forecast",
        "profile": f"profile-{history_days}d",
        "persistence": "persistence",
    }
    forecasts = [o.forecast for o in results[0].outcomes]
    head1 = f"{'scenario':<25} {'reg':<3} {'jobs':>5} {'at once':>8} {'oracle':>7}"
    head2 = f"{'':<25} {'':<3} {'':>5} {'g/kWh':>8} {'saving':>7}"
    for fc in forecasts:
        head1 += f" | {labels[fc]:^16}"
        head2 += f" | {'saving':>7} {'of orc':>7}"
    lines = [head1, head2, "-" * len(head1)]
    for r in results:
        line = f"{r.scenario:<25} {r.region:<3} {r.jobs:>5} {r.at_once_g_per_kwh:>8.1f} {r.oracle_saving_pct:>6.1f}%"
        for fc in forecasts:
            o = r.outcome(fc)
            line += f" | {o.saving_pct:>6.1f}% {o.of_oracle_pct:>6.1f}%"
        lines.append(line)
    return "\n".join(lines)


def format_nominal(results: Sequence[ScenarioResult], history_days: int) -> str:
    lines = [
        f"{'scenario':<25} {'reg':<3} {'at 01:00':>9} {'oracle':>7} {f'profile-{history_days}d':>11} {'persistence':>11}",
        f"{'':<25} {'':<3} {'g/kWh':>9} {'saving':>7} {'saving':>11} {'saving':>11}",
    ]
    lines.append("-" * len(lines[0]))
    for r in results:
        if not r.scenario.startswith("nightly"):
            continue
        cells = [r.outcome(k).saving_vs_nominal_pct for k in ("profile", "persistence")]
        lines.append(
            f"{r.scenario:<25} {r.region:<3} {r.nominal_g_per_kwh:>9.1f} {r.oracle_saving_vs_nominal_pct:>6.1f}%"
            + "".join(f" {c:>10.1f}%" for c in cells)
        )
    return "\n".join(lines)


def format_check(check: PaperCheck) -> str:
    rows = [
        ("published (Wiesner et al. 2021)", None),
        ("paper's rule on this data", check.paper_rule),
        ("bench, :00/:30 points only", check.bench_points_vs_nominal),
        ("bench, all data", check.bench_vs_nominal),
        ("bench, all data, vs window start", check.bench_vs_start),
    ]
    flex = "/".join(f"±{f}h" for f in NIGHTLY_FLEX_H)
    lines = [f"{'against 01:00 unless said':<34}" + "".join(f" {z + ' ' + flex:>19}" for z, _ in REGIONS)]
    for label, table in rows:
        cells = []
        for zone, _ in REGIONS:
            if table is None:
                cells.append(f"{'- / - / ' + format(PAPER_NIGHTLY_8H[zone], '.1f'):>19}")
            else:
                cells.append(f"{' / '.join(format(table[zone][f], '.1f') for f in NIGHTLY_FLEX_H):>19}")
        lines.append(f"{label:<34}" + "".join(f" {c}" for c in cells))
    return "\n".join(lines)


NOTE = """\
Note on the comparison with the paper. Against the paper's baseline (the job at its nominal 01:00) the
planner with a perfect forecast saves DE {de:.1f}%, GB {gb:.1f}%, FR {fr:.1f}% at ±8h (published: 13.5, 10.2,
7.5 %). The first table's baseline is instead "run at once", at the window start: 17:00, 21:00 or
23:00 the day before for ±8, ±4, ±2 h, in or near the evening peak and dearer than 01:00, so its
savings are larger; most of what the modelled forecast wins there is avoiding that peak, which any
daily profile knows: against 01:00 it keeps DE {pde:.1f}%, GB {pgb:.1f}%, FR {pfr:.1f}% at ±8h.
The smaller differences from the paper, each a few tenths of a point:
 - the paper keeps only the points at :00 and :30 and costs a job at its first point; the bench uses
   every value as the mean over its interval (DE 15-min all year, GB 15-min from 2020-10-31), and a
   30-min job on 15-min data may start at :15 or :45;
 - the paper plans 365 days (Jan 1 - Dec 30) on a series starting 2020-01-01 00:00; the bench plans all
   366 days and the first windows reach into the 2019 data. (The paper's simulate.py also skips the
   Jan 1 job for flexibilities over 1 h but still divides by 365, which would add about 0.3 pp; the
   paper's-rule row leaves that out and cuts the Jan 1 window at the series start instead.)
 - times: the timestamps are naive and read as UTC, as the paper's simulator does implicitly (it
   indexes from 2020-01-01 00:00 by position), so 01:00 is 01:00 UTC: 02:00 CET / 03:00 CEST in DE and
   FR, 01:00 GMT / 02:00 BST in GB.
FR's sub-hourly values are the authors' cubic interpolation of hourly ENTSO-E data, so part of its
30-min structure is artificial. Forecast columns use only data before each decision (the window start
or the submission): profile-{days}d is carbonshift's profile_forecast over the last {days} days,
persistence the value 24 h earlier. Interruptible jobs: min chunk 30 min."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with ger_ci.csv, gb_ci.csv, fr_ci.csv"
    )
    parser.add_argument(
        "--history-days", type=int, default=HISTORY_DAYS, help="days of history for the modelled forecast"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    missing = [name for _, name in REGIONS if not (data / name).is_file()]
    if missing:
        print(f"data not found: {', '.join(str(data / m) for m in missing)} (see --data)", file=sys.stderr)
        return 2

    wall0, cpu0 = time.perf_counter(), time.process_time()
    results, check = run_all(data, args.history_days)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    bad = [
        f"{r.scenario} {r.region}: {r.outcome('perfect').of_oracle_pct:.9f}%"
        for r in results
        if not abs(r.outcome("perfect").of_oracle_pct - 100.0) < 1e-6
    ]

    if args.json:
        doc = {
            "data": str(data),
            "paper": "Wiesner et al., Let's Wait Awhile, Middleware 2021, doi:10.1145/3464298.3493399",
            "choices": {
                "time_zone": "naive timestamps read as UTC",
                "nightly": "30 min, nominal 01:00, window [01:00 - f, 01:00 + f + 30 min], f = 2, 4, 8 h, contiguous",
                "ml": "4 h, submitted every 30 min from 09:00 to 16:30, deadline 24 h after submission",
                "min_chunk_s": MIN_CHUNK_S,
                "history_days": args.history_days,
                "forecasts": {
                    "perfect": "the real series (check: 100 % of the oracle)",
                    "profile": "carbonshift profile_forecast on the history before the decision",
                    "persistence": "the real value 24 h earlier",
                },
                "saving": "100 * (1 - sum achieved / sum at once) over all jobs; "
                "of_oracle = (at once - achieved) / (at once - oracle); at once = at the window start",
            },
            "results": [r.to_dict() for r in results],
            "nightly_perfect_forecast_vs_paper": check.to_dict(),
            "perfect_forecast_check": bad or "ok",
            "runtime_s": {"wall": round(wall, 3), "cpu": round(cpu, 3)},
            "python": platform.python_version(),
            "numpy": np.__version__,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 1 if bad else 0

    print(f"Planner quality on the Let's Wait Awhile 2020 series ({data})")
    print(
        "\nSaving against running at once (at the window start / at submission), and fraction of the oracle saving:"
    )
    print(format_table(results, args.history_days))
    print("\nNightly jobs against their nominal 01:00 (the paper's baseline):")
    print(format_nominal(results, args.history_days))
    print("\nNightly 30-min jobs, perfect forecast, saving (%):")
    print(format_check(check))
    print()
    oracle_8h = {z: check.bench_vs_nominal[z][8] for z, _ in REGIONS}
    profile_8h = {
        r.region: r.outcome("profile").saving_vs_nominal_pct for r in results if r.scenario == nightly_name(8)
    }
    print(
        NOTE.format(
            de=oracle_8h["DE"],
            gb=oracle_8h["GB"],
            fr=oracle_8h["FR"],
            pde=profile_8h["DE"],
            pgb=profile_8h["GB"],
            pfr=profile_8h["FR"],
            days=args.history_days,
        )
    )
    print()
    ok = "every scenario at 100.0% of the oracle (the planner is exact)"
    print("perfect-forecast check: " + (ok if not bad else "FAILED " + "; ".join(bad)))
    print(
        f"runtime: {wall:.2f} s wall, {cpu:.2f} s CPU, one process (python {platform.python_version()}, "
        f"numpy {np.__version__})"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
