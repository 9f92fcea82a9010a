from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.intensity.types import IntensitySeries, Kind, Provenance, Signal, TimeSpan

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MEASURED = Provenance("a", Signal.AVERAGE, Kind.MEASURED, NOW)
STATIC = Provenance("s", Signal.AVERAGE, Kind.STATIC, NOW)


def test_from_intervals_inserts_gaps_and_resolves_overlaps() -> None:
    s = IntensitySeries.from_intervals(
        "DE",
        Signal.AVERAGE,
        [10, 30, 35],
        [30, 50, 60],
        [1.0, 2.0, 3.0],
        MEASURED,
        span=TimeSpan.from_epoch(0, 100),
    )
    assert s.edges_s.tolist() == [0, 10, 30, 50, 60, 100]
    assert np.isnan(s.values[0]) and np.isnan(s.values[-1])
    assert s.values[1:4].tolist() == [1.0, 2.0, 3.0]  # the overlap [35,50) keeps the earlier interval
    assert [(g.start_s, g.end_s) for g in s.missing_spans()] == [(0, 10), (60, 100)]


def test_filled_from_keeps_own_values_and_tracks_provenance() -> None:
    span = TimeSpan.from_epoch(0, 100)
    s = IntensitySeries.from_intervals("DE", Signal.AVERAGE, [10], [50], [5.0], MEASURED, span=span)
    filled = s.filled_from(IntensitySeries.constant("DE", Signal.AVERAGE, span, 7.0, STATIC))
    assert filled.is_complete
    points = list(filled.points())
    assert [(p.start.timestamp(), p.g_per_kwh, p.provenance.kind) for p in points] == [
        (0, 7.0, Kind.STATIC),
        (10, 5.0, Kind.MEASURED),
        (50, 7.0, Kind.STATIC),
    ]
    assert filled.mean_g_per_kwh(0, 100) == pytest.approx((10 * 7 + 40 * 5 + 50 * 7) / 100)


def test_signals_are_never_mixed() -> None:
    span = TimeSpan.from_epoch(0, 10)
    avg = IntensitySeries.empty("DE", Signal.AVERAGE, span)
    marginal = IntensitySeries.constant(
        "DE", Signal.MARGINAL, span, 1.0, Provenance("w", Signal.MARGINAL, Kind.FORECAST, NOW)
    )
    with pytest.raises(ValueError, match="cannot fill"):
        avg.filled_from(marginal)
    with pytest.raises(ValueError, match="cannot hold"):
        IntensitySeries.constant("DE", Signal.AVERAGE, span, 1.0, marginal.provenances[0])


def test_before_and_from_time_split_an_interval() -> None:
    s = IntensitySeries.constant("DE", Signal.AVERAGE, TimeSpan.from_epoch(0, 100), 3.0, MEASURED)
    assert s.before(40).missing_spans() == [TimeSpan.from_epoch(40, 100)]
    assert s.from_time(40).missing_spans() == [TimeSpan.from_epoch(0, 40)]


def test_timespan_rejects_naive_and_empty() -> None:
    with pytest.raises(ValueError):
        TimeSpan(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError):
        TimeSpan(NOW, NOW)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 90), st.integers(1, 20), st.floats(0, 900)), min_size=1, max_size=12),
    st.floats(0, 900),
)
def test_fill_then_mean_matches_pointwise_integral(
    intervals: list[tuple[int, int, float]], base: float
) -> None:
    span = TimeSpan.from_epoch(0, 120)
    s = IntensitySeries.from_intervals(
        "X",
        Signal.AVERAGE,
        [a for a, _, _ in intervals],
        [a + d for a, d, _ in intervals],
        [v for _, _, v in intervals],
        MEASURED,
        span=span,
    ).filled_from(IntensitySeries.constant("X", Signal.AVERAGE, span, base, STATIC))
    # reference: per-second value, earliest-starting interval wins on overlap (stable order)
    ref = np.full(120, base)
    taken = np.zeros(120, dtype=bool)
    running_end = -1
    for a, d, v in sorted(intervals, key=lambda t: t[0]):
        lo = max(a, running_end)
        hi = min(a + d, 120)
        running_end = max(running_end, a + d)
        if hi > lo:
            ref[lo:hi] = np.where(taken[lo:hi], ref[lo:hi], v)
            taken[lo:hi] = True
    assert s.is_complete
    assert s.mean_g_per_kwh(0, 120) == pytest.approx(ref.mean(), rel=1e-9, abs=1e-9)
