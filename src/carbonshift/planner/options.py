"""A plan's options as a sequence that builds each one when first read, and what ranking and notes
need of them without building them.

A batch ranks every region for thousands of specs and shows a few options of each: `plan_batch`'s
`RankedOptions` and the merged alternatives of `alternatives.merge` are `LazyOptions`. `option_keys` and
`flag_columns` read any sequence of options (a built tuple from `plan()` alike), so callers need not
know which they hold.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

import numpy as np
import numpy.typing as npt

from carbonshift.intensity.types import Kind
from carbonshift.planner.option_columns import HasColumns, OptionColumns, built_columns
from carbonshift.planner.plan import FALLBACK_KINDS, NoteInputs, PlanOption


class OptionKeys(NamedTuple):
    """What options are ranked by, as their built `PlanOption`s say: one list per field, by rank."""

    provider: list[str]
    region: list[str]
    kg_co2e: list[float]
    start_s: list[int]
    flat: list[bool]


class FlagColumns(NamedTuple):
    """`OptionFlags` of every option, one array per flag, by rank: what notes read of a merged plan
    without a Python pass per option."""

    fallback: npt.NDArray[np.bool_]
    static_only: npt.NDArray[np.bool_]
    exact: npt.NDArray[np.bool_]


class OptionFlags(NamedTuple):
    """What a plan's notes say of one option: its run uses static or modelled values (of a series
    that has any), every value it uses is static, and it is the exact optimum."""

    fallback: bool
    static_only: bool
    exact: bool


class LazyOptions(Sequence[PlanOption], HasColumns):
    """Options, best first, each built the first time it is read; their columns (what a plan's JSON
    shows of them) given without building them where a subclass can (`columns`).

    Compares equal to the tuple of the same options, and pickles as one (without what builds them).
    """

    __slots__ = ("_built",)

    def __init__(self) -> None:
        self._built: list[PlanOption | None] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _make(self, ranks: list[int]) -> list[PlanOption]:
        """The options at these ranks (none built yet)."""

    @abstractmethod
    def keys(self) -> OptionKeys:
        """Every option's key, by rank."""

    @abstractmethod
    def flag_columns(self) -> FlagColumns:
        """Every option's flags, by rank."""

    @abstractmethod
    def note_inputs(self, no_time_preference: bool) -> NoteInputs:
        """What the plan's notes say, without building the options."""

    def columns(self, top: int | None = None) -> OptionColumns:
        """The first `top` options' columns (every one's with None): by default, of the built options."""
        return built_columns(self._build(range(len(self))[:top]))

    @overload
    def __getitem__(self, index: int) -> PlanOption: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[PlanOption, ...]: ...

    def __getitem__(self, index: int | slice) -> PlanOption | tuple[PlanOption, ...]:
        n = len(self)
        if isinstance(index, slice):
            return tuple(self._build(range(*index.indices(n))))
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("option index out of range")
        return self._build((i,))[0]

    def __iter__(self) -> Iterator[PlanOption]:
        return iter(self._build(range(len(self))))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyOptions | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} options, best first)"

    def __reduce__(self) -> tuple[type[tuple[PlanOption, ...]], tuple[tuple[PlanOption, ...]]]:
        return tuple, (tuple(self),)

    def _build(self, ranks: Sequence[int]) -> list[PlanOption]:
        """The options at these ranks, building (together) those not built yet."""
        built = self._built
        if built is None:
            built = self._built = [None] * len(self)
        missing = [i for i in ranks if built[i] is None]
        if missing:
            for i, option in zip(missing, self._make(missing), strict=True):
                built[i] = option
        return [o for o in (built[i] for i in ranks) if o is not None]


def option_keys(options: Sequence[PlanOption]) -> OptionKeys:
    """The options' keys, by rank, building none that is not built."""
    if isinstance(options, LazyOptions):
        return options.keys()
    return OptionKeys(
        [o.provider for o in options],
        [o.region for o in options],
        [o.kg_co2e for o in options],
        [o.start_s for o in options],
        [o.flat for o in options],
    )


def flag_columns(options: Sequence[PlanOption]) -> FlagColumns:
    """Every option's flags as arrays, by rank, building none that is not built."""
    if isinstance(options, LazyOptions):
        return options.flag_columns()
    flags = [flags_of(o) for o in options]
    return FlagColumns(
        np.array([f.fallback for f in flags], dtype=bool),
        np.array([f.static_only for f in flags], dtype=bool),
        np.array([f.exact for f in flags], dtype=bool),
    )


def flags_of(o: PlanOption) -> OptionFlags:
    """A built option's flags, as `plan.note_inputs` reads them."""
    fallback = any(p.kind in FALLBACK_KINDS for p in o.series.provenances) and o.static_fallback
    return OptionFlags(fallback, all(s.kind is Kind.STATIC for s in o.sources), o.exact)


__all__ = [
    "FlagColumns",
    "LazyOptions",
    "OptionFlags",
    "OptionKeys",
    "flag_columns",
    "flags_of",
    "option_keys",
]
