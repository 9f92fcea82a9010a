"""`isoformat_epoch_s` must write exactly what `isoformat_z(from_epoch_s(...))` writes: every plan's
times are printed by it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.timeutil import from_epoch_s, isoformat_epoch_s, isoformat_z

FIRST_S = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_S = 253_402_300_799  # 9999-12-31T23:59:59Z


@given(st.integers(FIRST_S, LAST_S))
def test_an_epoch_second_prints_as_its_datetime_does(seconds: int) -> None:
    assert isoformat_epoch_s(seconds) == isoformat_z(from_epoch_s(seconds))


@pytest.mark.parametrize(
    "seconds", [FIRST_S, LAST_S, -86_401, -86_400, -1, 0, 59, 60, 3599, 86_399, 86_400, 1_795_000_123]
)
def test_the_edges_of_days_and_of_the_calendar(seconds: int) -> None:
    assert isoformat_epoch_s(seconds) == isoformat_z(from_epoch_s(seconds))


@pytest.mark.parametrize("seconds", [-0.5, -1.5, 1_795_000_123.9])
def test_a_fraction_is_cut_as_from_epoch_s_cuts_it(seconds: float) -> None:
    assert isoformat_epoch_s(seconds) == isoformat_z(from_epoch_s(seconds))


@pytest.mark.parametrize("seconds", [FIRST_S - 1, LAST_S + 1])
def test_a_time_outside_the_calendar_is_refused(seconds: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        isoformat_epoch_s(seconds)
