"""A plan's options as columns, by rank: what its JSON shows of each option, without an option object.

Why: `carbonshift plan DIR` prints every option of every plan by default (about 23 a spec, 230,000 for
10,000 specs). Building a `PlanOption` per shown option, then a dict from its attributes, then
rounding its figures plan by plan, cost more than planning the batch. A batch plan's options are
rows of its ranking's arrays: `RankedOptions.columns` reads them out for the whole batch at once
(every figure worked out and rounded in one numpy pass, then sliced per plan), and `plan.option_dicts`
builds the dicts from columns, whoever made them: `built_columns` reads a tuple of built options the
same way, so both say the same, to the bit (tests/planner/test_option_columns.py).

The figures are worked out as `plan.make_option` works them out (`option_figures`, one function for
floats and arrays alike: IEEE arithmetic gives the same double either way) and rounded as Python's
`round` rounds them (`rounding.rounded`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from carbonshift.planner.rounding import SMALL, rounded, rounded_array

if TYPE_CHECKING:
    from carbonshift.intensity.types import IntensitySeries
    from carbonshift.planner.footprints import FootprintFigures
    from carbonshift.planner.plan import PlanOption

FloatArray = npt.NDArray[np.float64]
Num = TypeVar("Num", float, FloatArray)


def option_figures(energy_kwh: Num, mean_g_per_kwh: Num, baseline_kg_co2e: Num) -> tuple[Num, Num]:
    """An option's kg CO2e and its saving against its baseline: for one option (floats) or many
    (arrays), by the same operations in the same order, so the same doubles."""
    kg = energy_kwh * mean_g_per_kwh / 1000.0
    return kg, baseline_kg_co2e - kg


class ShownFigures(NamedTuple):
    """Each option's figures as its JSON shows them, by rank: g/kWh to 3 places, percent to 2, kg and
    kWh to 6 (`round`'s floats)."""

    mean_g_per_kwh: list[float]
    kg_co2e: list[float]
    savings_pct: list[float | None]  # None where the baseline emits nothing
    savings_kg: list[float]
    baseline_kg_co2e: list[float]
    energy_kwh: list[float]

    def sliced(self, lo: int, hi: int) -> ShownFigures:
        return ShownFigures(
            self.mean_g_per_kwh[lo:hi],
            self.kg_co2e[lo:hi],
            self.savings_pct[lo:hi],
            self.savings_kg[lo:hi],
            self.baseline_kg_co2e[lo:hi],
            self.energy_kwh[lo:hi],
        )


def shown_figures(
    mean: Sequence[float],
    kg: Sequence[float],
    pct: Sequence[float | None],
    saved: Sequence[float],
    base: Sequence[float],
    kwh: Sequence[float],
) -> ShownFigures:
    """Built options' figures rounded as shown: a few one by one (what `rounded` does for so few, but
    without building and slicing its lists), many together by `rounded`."""
    if len(mean) < SMALL:
        return ShownFigures(
            [round(v, 3) for v in mean],
            [round(v, 6) for v in kg],
            [None if p is None else round(p, 2) for p in pct],
            [round(v, 6) for v in saved],
            [round(v, 6) for v in base],
            [round(v, 6) for v in kwh],
        )
    n = len(mean)
    six = rounded([*kg, *saved, *base, *kwh], 6)  # the kg and kWh figures, in one go
    given = iter(rounded([p for p in pct if p is not None], 2))
    return ShownFigures(
        rounded(mean, 3),
        six[:n],
        [None if p is None else next(given) for p in pct],
        six[n : 2 * n],
        six[2 * n : 3 * n],
        six[3 * n :],
    )


def shown_figures_of_arrays(
    kwh: FloatArray, mean: FloatArray, base: FloatArray
) -> tuple[ShownFigures, FloatArray]:
    """Many options' shown figures from their energy, mean and baseline arrays (`option_figures`, then
    `round`'s floats by `rounded_array`), with their unrounded kg (what footprints add to)."""
    kg, saved = option_figures(kwh, mean, base)
    emits = base > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(emits, 100.0 * saved / np.where(emits, base, 1.0), 0.0)
    pct_shown: list[float | None] = list(rounded_array(pct, 2))
    if not bool(emits.all()):
        for i in np.flatnonzero(~emits).tolist():
            pct_shown[i] = None
    n = len(kg)
    six = rounded_array(np.concatenate((kg, saved, base, kwh)), 6)
    shown = ShownFigures(
        rounded_array(mean, 3), six[:n], pct_shown, six[n : 2 * n], six[2 * n : 3 * n], six[3 * n :]
    )
    return shown, kg


@dataclass(frozen=True, slots=True)
class OptionColumns:
    """Options by rank, one list per field their JSON and footprints read; `shown`: the rounded
    figures. `kg_co2e` and `baseline_kg_co2e` unrounded (footprints add embodied kg to them)."""

    provider: Sequence[str]
    region: Sequence[str]
    zone: Sequence[str]
    start_s: Sequence[int]
    end_s: Sequence[int]
    chunks_s: Sequence[tuple[tuple[int, int], ...]]
    series: Sequence[IntensitySeries]
    pue: Sequence[float]
    flat: Sequence[bool]
    exact: Sequence[bool]
    alternative: Sequence[int]
    kg_co2e: Sequence[float]
    baseline_kg_co2e: Sequence[float]
    shown: ShownFigures
    # embodied, total and total savings, when a batch worked them out for the plan's footprints
    footprint: FootprintFigures | None = None

    def __len__(self) -> int:
        return len(self.provider)


class HasColumns(ABC):
    """Options that give their columns without building an option (`LazyOptions`)."""

    __slots__ = ()

    @abstractmethod
    def columns(self, top: int | None = None) -> OptionColumns:
        """The first `top` options' columns (every option's with None)."""


def columns_of(options: Sequence[PlanOption], top: int | None = None) -> OptionColumns:
    """The first `top` options' columns (every option's with None), building none that is not
    built where the options can say them otherwise."""
    if isinstance(options, HasColumns):
        return options.columns(top)
    return built_columns(options if top is None else options[:top])


def built_columns(options: Sequence[PlanOption]) -> OptionColumns:
    """Built options' columns."""
    kg = [o.kg_co2e for o in options]
    base = [o.baseline_kg_co2e for o in options]
    return OptionColumns(
        [o.provider for o in options],
        [o.region for o in options],
        [o.zone for o in options],
        [o.start_s for o in options],
        [o.end_s for o in options],
        [o.chunks_s for o in options],
        [o.series for o in options],
        [o.pue for o in options],
        [o.flat for o in options],
        [o.exact for o in options],
        [o.alternative for o in options],
        kg,
        base,
        shown_figures(
            [o.mean_g_per_kwh for o in options],
            kg,
            [o.savings_pct for o in options],
            [o.savings_kg for o in options],
            base,
            [o.energy_kwh for o in options],
        ),
    )


__all__ = [
    "HasColumns",
    "OptionColumns",
    "ShownFigures",
    "built_columns",
    "columns_of",
    "option_figures",
    "shown_figures",
    "shown_figures_of_arrays",
]
