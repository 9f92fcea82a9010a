"""Interruptible planning against enumeration of every schedule on a fine grid (small instances)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.planner.contiguous import best_start
from carbonshift.planner.interruptible import (
    ChunkPlan,
    SlotGrid,
    cheapest_chunks,
    cheapest_chunks_batch,
    cheapest_chunks_many,
    slot_grid,
)

from .helpers import emissions, fine_grid_best


def enumerate_best(edges: list[int], values: list[float], lo: int, hi: int, d: int, m: int) -> float:
    """Least emissions over every set of d one-second slots in [lo, hi) whose runs are all at least
    min(m, d) long. With integer data this grid is at least as fine as any the planner uses."""
    m = min(m, d)
    slot_cost = [emissions(edges, values, t, t + 1) for t in range(lo, hi)]
    best = float("inf")
    for combo in itertools.combinations(range(hi - lo), d):
        run, ok = 1, True
        for a, b in itertools.pairwise(combo):
            if b == a + 1:
                run += 1
            else:
                ok = ok and run >= m
                run = 1
        if ok and run >= m:
            best = min(best, sum(slot_cost[i] for i in combo))
    return best


def check_valid(
    plan: ChunkPlan, edges: list[int], values: list[float], lo: int, hi: int, d: int, m: int
) -> None:
    chunks = plan.chunks
    assert chunks, "no chunks"
    assert all(a < b for a, b in chunks)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(chunks)), "chunks overlap or touch"
    assert lo <= chunks[0][0] and chunks[-1][1] <= hi
    assert sum(b - a for a, b in chunks) == d
    assert all(b - a >= min(m, d) for a, b in chunks)
    recomputed = sum(emissions(edges, values, a, b) for a, b in chunks) / d
    assert plan.mean_g_per_kwh == pytest.approx(recomputed, rel=1e-9, abs=1e-9)


@st.composite
def small_problems(draw: st.DrawFn) -> tuple[list[int], list[float], int, int, int, int]:
    """Everything a multiple of `scale` seconds (so the planner's grid is coarser than the 1-second
    enumeration, which tests that the continuous optimum lies on its grid), windows of <= 12 s."""
    scale = draw(st.sampled_from([1, 1, 2, 3]))
    units = 12 // scale
    n = draw(st.integers(1, 5))
    widths = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    edges = [0]
    for w in widths:
        edges.append(edges[-1] + w)
    lo = draw(st.integers(0, min(edges[-1] - 1, units)))
    hi = draw(st.integers(lo + 1, min(edges[-1], lo + units)))
    d = draw(st.integers(1, hi - lo))
    m = draw(st.integers(0, d + 1))
    return (
        [e * scale for e in edges],
        [float(v) for v in values],
        lo * scale,
        hi * scale,
        d * scale,
        m * scale,
    )


@settings(max_examples=250, deadline=None)
@given(small_problems())
def test_equals_enumeration(problem: tuple[list[int], list[float], int, int, int, int]) -> None:
    edges, values, lo, hi, d, m = problem
    plan = cheapest_chunks(edges, values, lo, hi, d, m)
    check_valid(plan, edges, values, lo, hi, d, m)
    assert plan.exact
    assert plan.mean_g_per_kwh * d == pytest.approx(enumerate_best(edges, values, lo, hi, d, m), abs=1e-9)


@st.composite
def unaligned_problems(draw: st.DrawFn) -> tuple[list[int], list[float], int, int, int, int]:
    """5-minute data, earliest/deadline off the grid (as with `now`), so the exact grid would be tiny
    and the planner falls back to the data's step inside the window."""
    n = draw(st.integers(3, 10))
    values = draw(st.lists(st.floats(0, 500, allow_nan=False), min_size=n, max_size=n))
    base = 1_790_000_100
    edges = [base + 300 * i for i in range(n + 1)]
    lo = base + draw(st.integers(1, 299))
    hi = edges[-1] - draw(st.integers(1, 299))
    d = 300 * draw(st.integers(1, max(1, (hi - lo) // 300 - 1)))
    m = 300 * draw(st.integers(1, 4))
    return edges, values, lo, hi, d, m


@settings(max_examples=60, deadline=None)
@given(unaligned_problems())
def test_unaligned_window_is_the_exact_optimum(
    problem: tuple[list[int], list[float], int, int, int, int],
) -> None:
    """5-minute data, earliest and deadline off its step (as with `now`): the exact optimum over
    every real schedule, which lies on the grid of their common divisor."""
    edges, values, lo, hi, d, m = problem
    plan = cheapest_chunks(edges, values, lo, hi, d, m)
    check_valid(plan, edges, values, lo, hi, d, m)
    assert plan.exact
    _, contiguous_mean = best_start(edges, values, lo, hi - d, d)
    assert plan.mean_g_per_kwh <= contiguous_mean + 1e-9 * max(values) * (edges[-1] - edges[0]) / d
    u = math.gcd(300, lo - edges[0], hi - edges[0], d, m)
    best = fine_grid_best(edges, values, lo, hi, d, m, u)
    # ties within 1e-9 of the series' scale count as equal (see contiguous.TIE_RTOL)
    assert plan.mean_g_per_kwh * d == pytest.approx(best, rel=1e-9, abs=1e-8 * max(values) * (hi - lo) + 1e-9)


@st.composite
def scaled_unaligned_problems(draw: st.DrawFn) -> tuple[list[int], list[float], int, int, int, int]:
    """Small steps (4 .. 12 s), windows off them, min_chunk off them too: checked against every
    1-second schedule."""
    n = draw(st.integers(4, 14))
    widths = draw(st.lists(st.sampled_from([4, 6, 8, 12]), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    edges = [7]
    for w in widths:
        edges.append(edges[-1] + w)
    lo = draw(st.integers(edges[0], edges[-1] - 4))
    hi = draw(st.integers(lo + 4, edges[-1]))
    m = draw(st.sampled_from([2, 3, 4, 6, 8]))
    d = draw(st.integers(min(2 * m, hi - lo), hi - lo))
    return edges, [float(v) for v in values], lo, hi, d, m


@settings(max_examples=200, deadline=None)
@given(scaled_unaligned_problems())
def test_windows_and_min_chunks_off_the_step_equal_every_one_second_schedule(
    problem: tuple[list[int], list[float], int, int, int, int],
) -> None:
    edges, values, lo, hi, d, m = problem
    plan = cheapest_chunks(edges, values, lo, hi, d, m)
    check_valid(plan, edges, values, lo, hi, d, m)
    assert plan.exact
    assert plan.mean_g_per_kwh * d == pytest.approx(fine_grid_best(edges, values, lo, hi, d, m, 1), abs=1e-9)


def test_a_long_job_off_the_data_step_is_exact() -> None:
    """6.5 h in a 24 h window that starts 207 s off the 5-minute data: the old programme left the
    exact 3-second grid (28,800 slots) for the data's step, and lost the partial steps at both ends."""
    rng = np.random.default_rng(7)
    base = 1_790_000_100 - 1_790_000_100 % 300
    n = 26 * 12
    edges = [base + 300 * i for i in range(n + 1)]
    t = np.arange(n)
    values = (250 + 120 * np.sin(t / 288 * 2 * np.pi) + rng.normal(0, 30, n)).round(1).tolist()
    lo = base + 207
    hi = lo + 24 * 3600
    d, m = 6 * 3600 + 1800, 1800
    plan = cheapest_chunks(edges, values, lo, hi, d, m)
    check_valid(plan, edges, values, lo, hi, d, m)
    assert plan.exact and plan.method == "dp"
    u = math.gcd(300, lo - base, hi - base, d, m)
    assert u == 3
    best = fine_grid_best(edges, values, lo, hi, d, m, u)
    assert plan.mean_g_per_kwh * d == pytest.approx(best, rel=1e-12)


def test_no_minimum_takes_the_cheapest_time_first_ties_earliest() -> None:
    edges = [0, 10, 20, 30, 40]
    values = [3.0, 1.0, 2.0, 1.0]
    plan = cheapest_chunks(edges, values, 0, 40, 25, 0)
    # both 1.0 intervals, then 5 s of the 2.0 one, at its start
    assert plan.chunks == ((10, 25), (30, 40))
    assert plan.mean_g_per_kwh == pytest.approx((10 + 10 + 5 * 2) / 25)
    assert plan.method == "greedy"
    # ties: equal values, the earliest intervals win
    flat = cheapest_chunks([0, 10, 20, 30], [1.0, 1.0, 1.0], 0, 30, 10, 0)
    assert flat.chunks == ((0, 10),)
    # a part interval joins the chunk that follows it when only that one is taken
    joined = cheapest_chunks([0, 10, 20, 30], [9.0, 2.0, 1.0], 0, 30, 15, 0)
    assert joined.chunks == ((15, 30),)


def test_minimum_chunk_changes_the_answer() -> None:
    edges = list(range(0, 13))
    values = [1.0, 9.0, 1.0, 9.0, 1.0, 9.0, 5.0, 5.0, 9.0, 9.0, 9.0, 9.0]
    free = cheapest_chunks(edges, values, 0, 12, 3, 0)
    assert free.chunks == ((0, 1), (2, 3), (4, 5))
    chunked = cheapest_chunks(edges, values, 0, 12, 3, 2)
    assert chunked.mean_g_per_kwh * 3 == pytest.approx(enumerate_best(edges, values, 0, 12, 3, 2))
    assert all(b - a >= 2 for a, b in chunked.chunks)


def test_min_chunk_at_least_the_duration_is_contiguous() -> None:
    edges = [0, 10, 20, 30, 40]
    values = [3.0, 1.0, 2.0, 1.0]
    plan = cheapest_chunks(edges, values, 0, 40, 15, 3600)
    assert plan.method == "contiguous"
    assert plan.chunks == (
        (best_start(edges, values, 0, 25, 15)[0], best_start(edges, values, 0, 25, 15)[0] + 15),
    )


def test_window_exactly_as_long_as_the_job() -> None:
    plan = cheapest_chunks([0, 10, 20, 30], [5.0, 1.0, 7.0], 5, 25, 20, 5)
    assert plan.chunks == ((5, 25),)


def test_many_series_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    edges = 1_790_000_000 + 300 * np.arange(97)
    values = rng.uniform(0, 500, size=(6, 96))
    lo, hi, d, m = int(edges[0]), int(edges[-1]), 300 * 12, 300 * 3
    many = cheapest_chunks_many(edges, values, lo, hi, d, m)
    for r in range(6):
        one = cheapest_chunks(edges, values[r], lo, hi, d, m)
        assert many[r].chunks == one.chunks
        assert many[r].mean_g_per_kwh == pytest.approx(one.mean_g_per_kwh)


@pytest.mark.parametrize("m", [0, 300 * 3])
def test_repeated_series_before_another_are_planned_once_each(m: int) -> None:
    """Series that repeat are planned once: a later distinct series is planned as itself, not as the
    repeat (it was given the repeat's plan when a repeat came first)."""
    rng = np.random.default_rng(11)
    edges = 1_790_000_000 + 300 * np.arange(49)
    flat = np.full(48, 120.0)
    varied = rng.uniform(0, 500, size=48)
    values = np.array([flat, flat, varied, flat, varied])
    lo, hi, d = int(edges[0]) + 7, int(edges[-1]) - 11, 300 * 8
    many = cheapest_chunks_many(edges, values, lo, hi, d, m)
    for r in range(len(values)):
        assert many[r] == cheapest_chunks(edges, values[r], lo, hi, d, m)


def test_a_batch_equals_each_problem_alone() -> None:
    """Problems of different windows, durations and steps, planned together, each as it is alone."""
    rng = np.random.default_rng(3)
    problems = []
    for step in (300, 1800):
        edges = 1_790_000_000 + step * np.arange(72 * 3600 // step + 1)
        values = rng.uniform(0, 500, size=(3, len(edges) - 1))
        for _ in range(12):
            d = int(rng.integers(30, 480)) * 60
            lo = int(edges[0]) + int(rng.integers(0, 24 * 3600))
            hi = lo + d + int(rng.integers(0, 30 * 3600))
            m = int(rng.choice([0, 900, 1800, 7200]))
            problems.append((edges, values, lo, hi, d, m))
    together = cheapest_chunks_batch(problems)
    assert [p.method for plans in together for p in plans].count("dp") > 10
    for problem, plans in zip(problems, together, strict=True):
        assert plans == cheapest_chunks_many(*problem)


def test_slot_grid() -> None:
    edges = np.array([0, 300, 600, 900, 1200])
    assert slot_grid(edges, 0, 1200, 300) == SlotGrid(300, 0, 4)
    # a window off the data's step: slots stay on the data's edges, the ends are pieces of their own
    base = 1_790_000_100
    assert slot_grid(edges + base, base + 107, base + 1180, 300) == SlotGrid(300, base + 300, 2)
    # min_chunk off the step: slots of their common divisor
    assert slot_grid(edges, 0, 1200, 1000) == SlotGrid(100, 0, 12)
    # hourly data and an hour's min_chunk: hour slots
    hourly = 3600 * np.arange(25)
    assert slot_grid(hourly, 1800, 20 * 3600, 3600) == SlotGrid(3600, 3600, 19)
    # no edge inside the window: one intensity throughout
    assert slot_grid(edges, 310, 590, 50) is None


def test_rejects_a_window_shorter_than_the_job() -> None:
    with pytest.raises(ValueError, match="shorter"):
        cheapest_chunks([0, 10], [1.0], 0, 5, 6, 0)
