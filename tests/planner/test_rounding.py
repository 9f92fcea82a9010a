"""`rounded` and `rounded_array` must give exactly Python's `round`: a plan's JSON says the same
whichever computes it."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.planner.rounding import SMALL, rounded, rounded_array


def _bits(values: list[float]) -> list[str]:
    return [v.hex() for v in values]  # the sign of zero and NaN's identity included


def _same_as_round(values: list[float], ndigits: int) -> None:
    want = _bits([round(v, ndigits) for v in values])
    for got in (rounded(values, ndigits), rounded_array(np.array(values, dtype=np.float64), ndigits)):
        assert all(type(v) is float for v in got)
        assert _bits(got) == want


def test_many_values_of_every_size_round_as_python_rounds() -> None:
    rng = np.random.default_rng(13)
    magnitudes = 10.0 ** rng.uniform(-12, 14, 60_000)
    values = (magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)).tolist()
    for ndigits in (0, 2, 3, 4, 6):
        _same_as_round(values, ndigits)


def test_ties_and_near_ties_round_as_python_rounds() -> None:
    """Decimal halves (0.0000005, 2.5e-5, 1.0000005) are where a scaled product could round the
    other way: each, and the floats just beside it, must come out as `round` has them."""
    rng = np.random.default_rng(7)
    for ndigits in (2, 3, 6):
        halves = (rng.integers(-(10**9), 10**9, 20_000) + 0.5) / 10.0**ndigits
        values = [
            *halves.tolist(),
            *np.nextafter(halves, np.inf).tolist(),
            *np.nextafter(halves, -np.inf).tolist(),
        ]
        values += [(k + 0.5) / 10**ndigits for k in range(-2000, 2000)]
        _same_as_round(values, ndigits)


def test_zeros_signs_and_non_finite_values() -> None:
    values = [0.0, -0.0, 1e-9, -1e-9, -4e-7, 4e-7, -5e-7, 5e-7, math.inf, -math.inf, math.nan, 1e300, -1e300]
    values = values * (SMALL // len(values) + 2)
    expected = [round(v, 6) for v in values]
    for got in (
        rounded(values, 6),
        rounded_array(np.array(values), 6),
        rounded_array(np.array(values[:3]), 6),
    ):
        assert [v.hex() if not math.isnan(v) else "nan" for v in got] == [
            v.hex() if not math.isnan(v) else "nan" for v in expected[: len(got)]
        ]


@given(st.lists(st.floats(allow_nan=False), min_size=0, max_size=64), st.sampled_from([0, 2, 3, 6]))
def test_any_floats_round_as_python_rounds(values: list[float], ndigits: int) -> None:
    _same_as_round(values, ndigits)
