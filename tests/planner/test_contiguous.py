"""The contiguous planner against brute force: it must find the exact optimum over real start times."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.planner import contiguous
from carbonshift.planner.contiguous import best_start, best_starts, window_means

from .helpers import emissions


@st.composite
def integer_problems(draw: st.DrawFn) -> tuple[list[int], list[int], int, int, int]:
    """Integer edges and values: every breakpoint is a whole second, so the minimum over whole-second
    starts (computed exactly with Python ints) is the minimum over all real starts."""
    n = draw(st.integers(1, 8))
    widths = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    edges = [0]
    for w in widths:
        edges.append(edges[-1] + w)
    lo = draw(st.integers(0, edges[-1] - 1))
    deadline = draw(st.integers(lo + 1, edges[-1]))
    d = draw(st.integers(1, deadline - lo))
    return edges, values, lo, deadline - d, d


@settings(max_examples=300, deadline=None)
@given(integer_problems())
def test_matches_exact_brute_force_and_ties_go_earliest(
    problem: tuple[list[int], list[int], int, int, int],
) -> None:
    edges, values, lo, latest, d = problem
    totals = {t: emissions(edges, values, t, t + d) for t in range(lo, latest + 1)}
    best = min(totals.values())
    earliest_best = min(t for t, v in totals.items() if v == best)

    start, mean = best_start(edges, values, lo, latest, d)

    assert start == earliest_best
    assert mean * d == pytest.approx(best, abs=1e-9)


@st.composite
def float_problems(draw: st.DrawFn) -> tuple[list[int], list[float], int, int, int]:
    """Realistic scale: 5-minute to 2-hour intervals, float values, earliest/deadline anywhere (so
    usually not on an edge), durations not a multiple of the step."""
    n = draw(st.integers(1, 40))
    widths = draw(st.lists(st.sampled_from([300, 900, 1800, 3600, 7200]), min_size=n, max_size=n))
    values = draw(st.lists(st.floats(0, 900, allow_nan=False), min_size=n, max_size=n))
    start = 1_790_000_000 - 1_790_000_000 % 300
    edges = [start]
    for w in widths:
        edges.append(edges[-1] + w)
    span = edges[-1] - start
    lo = start + draw(st.integers(0, span - 1))
    deadline = draw(st.integers(lo + 1, edges[-1]))
    d = draw(st.integers(1, deadline - lo))
    return edges, values, lo, deadline - d, d


@settings(max_examples=200, deadline=None)
@given(float_problems())
def test_no_breakpoint_or_grid_start_beats_it(problem: tuple[list[int], list[float], int, int, int]) -> None:
    edges, values, lo, latest, d = problem
    start, mean = best_start(edges, values, lo, latest, d)
    assert lo <= start <= latest
    chosen = emissions(edges, values, start, start + d)
    assert mean * d == pytest.approx(chosen, rel=1e-9, abs=1e-6)

    # brute force: every breakpoint candidate, found independently, plus a fine grid of starts
    breakpoints = {lo, latest}
    breakpoints |= {e for e in edges if lo <= e <= latest}
    breakpoints |= {e - d for e in edges if lo <= e - d <= latest}
    step = max(1, (latest - lo) // 400)
    grid = set(range(lo, latest + 1, step))
    scale = max(values) * (latest + d - lo) + 1e-12  # the tie tolerance is relative to this
    for t in breakpoints | grid:
        assert chosen <= emissions(edges, values, t, t + d) + 1e-9 * scale


def test_window_exactly_as_long_as_the_job() -> None:
    edges = [0, 10, 20, 30]
    assert best_start(edges, [5.0, 1.0, 7.0], 5, 5, 20) == (5, pytest.approx((5 * 5 + 10 * 1 + 5 * 7) / 20))


def test_flat_series_starts_at_earliest() -> None:
    edges = np.arange(0, 3600 * 48 + 1, 3600)
    values = np.full(48, 250.0)
    assert best_start(edges, values, 1234, 3600 * 40, 3600 * 4) == (1234, pytest.approx(250.0))


def test_flat_within_float_noise_still_starts_at_earliest() -> None:
    edges = np.arange(0, 300 * 864 + 1, 300)
    values = np.full(864, 0.1) + np.where(np.arange(864) % 2 == 0, 0.0, 1e-15)
    start, _ = best_start(edges, values, 0, 300 * 700, 300 * 48)
    assert start == 0


def test_ties_go_to_the_earliest_start() -> None:
    # two equally clean valleys: the first wins
    edges = [0, 10, 20, 30, 40, 50]
    values = [5.0, 1.0, 5.0, 1.0, 5.0]
    assert best_start(edges, values, 0, 40, 10) == (10, 1.0)


def test_partial_intervals_are_weighted_exactly() -> None:
    # a run of 15 s: best straddles the cheap interval [10, 20) and half of [20, 30)
    edges = [0, 10, 20, 30]
    values = [9.0, 1.0, 3.0]
    start, mean = best_start(edges, values, 0, 15, 15)
    assert start == 10
    assert mean == pytest.approx((10 * 1 + 5 * 3) / 15)


def test_many_series_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    edges = 1_790_000_000 + 300 * np.arange(289)
    values = rng.uniform(50, 500, size=(20, 288))
    lo, d = int(edges[0]) + 137, 4 * 3600 + 60
    latest = int(edges[-1]) - d - 11
    many = best_starts(edges, values, lo, latest, d)
    for r in range(20):
        assert (int(many.start_s[r]), float(many.mean_g_per_kwh[r])) == pytest.approx(
            best_start(edges, values[r], lo, latest, d)
        )
        assert many.earliest_mean_g_per_kwh[r] == pytest.approx(
            emissions(edges.tolist(), values[r].tolist(), lo, lo + d) / d
        )


def test_window_means_is_exact() -> None:
    edges = [0, 10, 20]
    assert window_means(edges, [[2.0, 4.0]], 5, 15)[0] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("lo", "latest", "d", "message"),
    [(0, 25, 10, "covers"), (-1, 5, 10, "covers"), (5, 4, 1, "before earliest"), (0, 5, 0, "positive")],
)
def test_rejects_bad_windows(lo: int, latest: int, d: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        best_start([0, 10, 20, 30], [1.0, 2.0, 3.0], lo, latest, d)


def test_rejects_gaps_inside_the_window() -> None:
    with pytest.raises(ValueError, match="gaps"):
        best_start([0, 10, 20, 30], [1.0, np.nan, 3.0], 0, 20, 10)
    # a gap outside the window does not matter
    assert best_start([0, 10, 20, 30], [np.nan, 2.0, 3.0], 10, 20, 10) == (10, 2.0)


@st.composite
def regular_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    w = draw(st.sampled_from([1, 3, 300, 3600]))
    n = draw(st.integers(1, 30))
    rows = draw(st.integers(1, 4))
    ints = draw(st.booleans())  # integer values make exact ties common
    elems = st.integers(0, 5).map(float) if ints else st.floats(0, 900, allow_nan=False)
    values = np.array(draw(st.lists(elems, min_size=n * rows, max_size=n * rows))).reshape(rows, n)
    e0 = draw(st.sampled_from([0, 1_790_000_100]))
    edges = e0 + w * np.arange(n + 1, dtype=np.int64)
    span = n * w
    lo = e0 + draw(st.integers(0, span - 1))
    deadline = draw(st.integers(lo + 1, e0 + span))
    d = draw(st.integers(1, deadline - lo))
    return edges, values, lo, deadline - d, d


@settings(max_examples=300, deadline=None)
@given(regular_problems())
def test_regular_grid_fast_path_equals_the_general_one(
    problem: tuple[np.ndarray, np.ndarray, int, int, int],
) -> None:
    edges, values, lo, latest, d = problem
    fast = best_starts(edges, values, lo, latest, d)
    e, v = contiguous.window_slice(edges, values, lo, latest + d)
    general = contiguous._best_general(e, v, lo, latest, d)
    assert fast.start_s.tolist() == general.start_s.tolist()
    np.testing.assert_allclose(fast.mean_g_per_kwh, general.mean_g_per_kwh, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        fast.earliest_mean_g_per_kwh, general.earliest_mean_g_per_kwh, rtol=1e-9, atol=1e-9
    )
