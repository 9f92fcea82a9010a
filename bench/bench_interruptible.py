"""Interruptible plans: CPU time per region of `cheapest_chunks_many`, and its optimum checked.

Issue 13's goal: exact, and under 5 ms per region for a 6 h job in a 24 h window at 5-minute data.
Series: 72 h of 5-minute values per region (a daily sine, a random phase, noise; seeded). The job:
6 h, min_chunk 30 min, window 24 h starting on the data's step and 207 s off it (`now` = 18:03:27).
Timed: the planner's call for 1, 40 and 139 regions at once (the advisor plans every region sharing
the data's edges in one call), best of 7, process CPU time.

Checked: for the first 3 regions off the step, the optimum equals that of a plain dynamic programme
over every 3-second slot (the old planner's exact grid, which lies under the real optimum's every
boundary), timed too: the old planner left that grid for the data's 5-minute step when it held more
than 20,000 slots, and lost the partial steps at the window's ends.

Batch: 1,000 specs' windows at once (`cheapest_chunks_batch`, as `plan_batch` plans interruptible
specs), as in `bench_cli_plan_dir.py`: 30-minute data over 72 h, durations 30 min .. 8 h to the minute,
windows starting 0 .. 24 h in, to the second, with 2 .. 40 h of slack, min_chunk 30 min; one region
each. Against the same windows one call each (`cheapest_chunks_many`, as `plan()` plans one spec).

    .venv/bin/python bench/bench_interruptible.py
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from carbonshift.planner.contiguous import run_integrals
from carbonshift.planner.interruptible import ChunkProblem, cheapest_chunks_batch, cheapest_chunks_many

STEP = 300
HOURS = 72
BASE = 1_790_000_100 - 1_790_000_100 % STEP
D_S, M_S = 6 * 3600, 1800


def series(regions: int, seed: int = 13) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS * 3600 // STEP)
    phase = rng.uniform(0, 2 * np.pi, (regions, 1))
    return 250 + 120 * np.sin(t / 288 * 2 * np.pi + phase) + rng.normal(0, 25, (regions, len(t)))


def fine_grid_best() -> Callable[..., float]:
    """The tests' reference programme over every u-second slot (tests/planner/helpers.py)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "planner" / "helpers.py"
    spec = importlib.util.spec_from_file_location("planner_test_helpers", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    found: Callable[..., float] = module.fine_grid_best
    return found


def best_cpu(fn: object, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - t0)
    return min(times)


def batch_problems(count: int, seed: int = 13) -> list[ChunkProblem]:
    """`count` specs' windows on one region's 30-minute series (see the module docstring)."""
    rng = np.random.default_rng(seed)
    step = 1800
    edges = BASE + step * np.arange(HOURS * 3600 // step + 1)
    t = np.arange(len(edges) - 1)
    values = (250 + 120 * np.sin(t / 48 * 2 * np.pi) + rng.normal(0, 25, len(t)))[None, :]
    out: list[ChunkProblem] = []
    for _ in range(count):
        d = int(rng.integers(30, 481)) * 60
        lo = BASE + int(rng.integers(0, 24 * 3600))
        hi = lo + d + int(rng.integers(2 * 3600, 40 * 3600))
        out.append((edges, values, lo, hi, d, M_S))
    return out


def batch_case(count: int = 1000) -> None:
    problems = batch_problems(count)
    together = best_cpu(lambda: cheapest_chunks_batch(problems), runs=3)
    alone = best_cpu(lambda: [cheapest_chunks_many(*p) for p in problems], runs=3)
    same = cheapest_chunks_batch(problems) == [cheapest_chunks_many(*p) for p in problems]
    print(
        f"{count} specs' windows (30-minute data, one region each), best of 3: together "
        f"{1e3 * together:.0f} ms ({1e3 * together / count:.3f} ms per spec), one call each "
        f"{1e3 * alone:.0f} ms ({1e3 * alone / count:.3f} ms per spec); plans {'equal' if same else 'DIFFERENT'}"
    )
    if not same:
        raise SystemExit("a batch's plans differ from planning each window alone")


def main() -> None:
    all_values = series(139)
    edges = BASE + STEP * np.arange(all_values.shape[1] + 1)
    print(f"6 h job, min_chunk 30 min, 24 h window, 5-minute data; CPU time, best of 7 ({D_S}s, {M_S}s)")
    print("regions | window on the step | window 207 s off the step")
    for regions in (1, 40, 139):
        values = all_values[:regions]
        row = [f"{regions:7d}"]
        for offset in (0, 207):
            lo = BASE + 3600 + offset
            hi = lo + 24 * 3600
            t = best_cpu(
                lambda lo=lo, hi=hi, values=values: cheapest_chunks_many(edges, values, lo, hi, D_S, M_S)
            )
            row.append(f"{1e3 * t:8.1f} ms total, {1e3 * t / regions:5.2f} ms/region")
        print(" | ".join(row))
    lo = BASE + 3600 + 207
    hi = lo + 24 * 3600
    plans = cheapest_chunks_many(edges, all_values[:3], lo, hi, D_S, M_S)
    u = math.gcd(STEP, lo - BASE, hi - BASE, D_S, M_S)
    reference = fine_grid_best()
    for r, found in enumerate(plans):
        assert found.exact, "every interruptible plan is exact"
        starts = np.array([a for a, _ in found.chunks])
        ends = np.array([b for _, b in found.chunks])
        got = float(run_integrals(edges, all_values, np.full(len(starts), r), starts, ends).sum())
        t0 = time.process_time()
        want = reference(edges.tolist(), all_values[r].tolist(), lo, hi, D_S, M_S, u)
        took = time.process_time() - t0
        same = math.isclose(got, want, rel_tol=1e-12)
        print(
            f"region {r}: {len(found.chunks)} chunks, {got / D_S:.4f} g/kWh; every {u}-second slot "
            f"({(hi - lo) // u:,} slots, {took:.2f} s): {want / D_S:.4f} g/kWh, {'equal' if same else 'DIFFERENT'}"
        )
        if not same:
            raise SystemExit("the planner's optimum differs from the fine grid's")
    batch_case()


if __name__ == "__main__":
    main()
