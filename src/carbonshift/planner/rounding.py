"""`round(value, ndigits)` for many floats at once, giving exactly the floats Python's `round` gives.

Why: a plan's JSON shows each of its options' figures rounded (kg to 6 places, g/kWh to 3, percent
to 2), about nine per option, so a 139-region plan rounds some 1,250 floats. Python's `round` of a
float is correctly rounded through a decimal string and costs ~1 us each: about a millisecond per
plan, most of `Plan.to_dict`. numpy's `round` is faster but not the same function (it scales,
rounds and scales back, and can differ in the last digit), and the API must say what it said.

How it stays exact. Let t = x * 10**n be the exact real product and R the integer nearest to t (ties
to even). Python's `round(x, n)` is the double nearest to R / 10**n (dtoa then strtod, both correctly
rounded), and so is IEEE division `R / 10.0**n` (for n <= 22, 10.0**n is exact; R is exact below
2**53). The only inexact step is y = x * 10.0**n, off from t by at most half an ulp of y: below 2**40
that is under 2**-14. So wherever y is more than 1e-3 further from one half from its nearest integer
(|y - rint(y)| < 0.5 - 1e-3), y and t round to the same R. Values near a tie, large values and
non-finite ones are left to `round` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SMALL = 16  # below this many, numpy's set-up costs more than it saves
_TIE_MARGIN = 1e-3  # distance from .5 under which y and the exact product might round differently
_LARGEST = 2.0**40  # past this, y's rounding error can exceed _TIE_MARGIN


def rounded(values: Sequence[float], ndigits: int) -> list[float]:
    """`[round(v, ndigits) for v in values]`, the same floats (to the bit, the sign of zero
    included). Only plain floats are rounded together: `round` of an int stays an int, and of a
    numpy float is numpy's own rounding, so a list holding anything else goes to `round` one by
    one."""
    if len(values) < SMALL or not 0 <= ndigits <= 22 or set(map(type, values)) != {float}:
        return [round(v, ndigits) for v in values]
    return _rounded(np.asarray(values, dtype=np.float64), ndigits)


def rounded_array(values: npt.NDArray[np.float64], ndigits: int) -> list[float]:
    """`rounded(values.tolist(), ndigits)` of a float array, without the list in between: a batch
    rounds every shown figure of its plans at once."""
    if not 0 <= ndigits <= 22:
        return [round(v, ndigits) for v in values.tolist()]
    return _rounded(values, ndigits)


def _rounded(x: npt.NDArray[np.float64], ndigits: int) -> list[float]:
    scale = 10.0**ndigits
    if np.count_nonzero(~(np.abs(x) < _LARGEST / scale)):  # huge or non-finite values: with care
        with np.errstate(over="ignore", invalid="ignore"):
            y = x * scale
            return _rounded_with(x, y, scale, ndigits, ~(np.abs(y) < _LARGEST))
    # numpy's small calls cost more than their arithmetic here (a plan rounds ~70 figures at a
    # time): one comparison for the near ties, |y - rint(y)| near one half, and no error state
    return _rounded_with(x, x * scale, scale, ndigits, None)


def _rounded_with(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    scale: float,
    ndigits: int,
    refused: npt.NDArray[np.bool_] | None,
) -> list[float]:
    r = np.rint(y)
    out: list[float] = (r / scale).tolist()
    unsure = np.abs(y - r) >= 0.5 - _TIE_MARGIN  # exact: y and rint(y) are within one half
    if refused is not None:
        unsure |= refused
    if np.count_nonzero(unsure):
        for i in np.flatnonzero(unsure).tolist():
            out[i] = round(float(x[i]), ndigits)
    return out
