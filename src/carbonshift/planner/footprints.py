"""Each plan option's whole footprint (issue 14): its operational kg, the embodied share of the hardware
it would run on (SCI's M), their total, and the SCI score per functional unit; and, when the spec lists
`hardware_options`, which alternative the option runs on.

A `Footprints` rides on a `Plan` (`Plan.footprints`) and adds these to the plan's JSON when it is shown,
option by option: a batch plans thousands of options and shows a few, and the embodied figure of an
option is remembered per (region, hardware, duration), so showing it costs a lookup. The figures it
adds never change the ones already there: `kg_co2e` stays operational, `savings_kg` stays operational
against the baseline run (always the spec's own hardware).

Embodied emissions are those `catalog.embodied.embodied_in_region` charges: the instance type a launch
would pick in the option's region for that hardware (the smallest that fits), amortised over the run's
reserved time (its duration, split or not); a region without an instance catalog (local, clusters) is
charged a whole server built from the hardware by CCF's method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from carbonshift.catalog.embodied import (
    LIFESPAN_H,
    EmbodiedEstimate,
    amortised_kg,
    embodied_in_region,
    reserved_in_region,
)
from carbonshift.config.jobspec import FunctionalUnit, Hardware, JobSpec, format_duration
from carbonshift.footprint import Footprint
from carbonshift.planner.rounding import rounded_array

FloatArray = npt.NDArray[np.float64]

if TYPE_CHECKING:
    from carbonshift.planner.option_columns import OptionColumns
    from carbonshift.planner.plan import Baseline, Plan, PlanOption


@dataclass(frozen=True, slots=True)
class HardwareChoice:
    """One hardware alternative of a spec: 0 is the spec's own `hardware` (with its `duration` and
    `power_watts`), i + 1 is `hardware_options[i]` with its own duration."""

    index: int
    hardware: Hardware
    duration_s: int
    power_watts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        hw = self.hardware
        out: dict[str, Any] = {
            "option": self.index,
            "field": "hardware" if self.index == 0 else f"hardware_options[{self.index - 1}]",
            "gpu": hw.gpu,
            "gpus": hw.gpus,
            "vcpus": hw.vcpus,
            "memory_gb": hw.memory_gb,
            "duration": format_duration_s(self.duration_s),
            "duration_s": self.duration_s,
        }
        if self.power_watts is not None:
            out["power_watts"] = self.power_watts
        return out

    @property
    def label(self) -> str:
        """How the table names it: `8x H100 4h`, `16 vCPUs 2h30m`."""
        hw = self.hardware
        what = f"{hw.gpus}x {hw.gpu}" if hw.gpu and hw.gpus else f"{hw.vcpus} vCPUs"
        return f"{what} {format_duration_s(self.duration_s)}"


def format_duration_s(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


def hardware_choices(spec: JobSpec) -> tuple[HardwareChoice, ...]:
    """The spec's own hardware, then each of its `hardware_options`, in the order written."""
    own = HardwareChoice(0, spec.hardware, spec.duration_s, spec.power_watts)
    rest = (
        HardwareChoice(
            i + 1,
            option.hardware,
            int(spec.option_duration(option).total_seconds()),
            option.power_watts,
        )
        for i, option in enumerate(spec.hardware_options)
    )
    return (own, *rest)


def alternative_spec(spec: JobSpec, choice: HardwareChoice, **update: object) -> JobSpec:
    """The spec as it reads on one alternative: that hardware, duration and measured power, and no
    alternatives of its own (so the planner plans it like any single-hardware spec). `update`: more
    fields to set in the same copy."""
    if choice.index == 0:
        return spec.model_copy(update={"hardware_options": [], **update})
    return spec.model_copy(
        update={
            "hardware": choice.hardware,
            "duration": timedelta(seconds=choice.duration_s),
            "power_watts": choice.power_watts,
            "hardware_options": [],
            **update,
        }
    )


def embodied_run(provider: str, region: str, hardware: Hardware, duration_s: int) -> EmbodiedEstimate:
    """`embodied_in_region`, remembered: a plan shows the same few (region, hardware, duration) often.
    Keyed by the hardware's values, not the model (a pydantic model hashes and compares slowly)."""
    return _embodied_run(provider, region, hardware_key(hardware), hardware, duration_s)


def hardware_key(hardware: Hardware) -> tuple[object, ...]:
    """The hardware by the values its embodied share depends on, as a key that hashes fast (a
    pydantic model hashes and compares slowly)."""
    return (hardware.gpu, hardware.gpus, hardware.vcpus, hardware.memory_gb)


def _run_s(chunks: tuple[tuple[int, int], ...]) -> int:
    """The run's reserved time: its duration, split or not."""
    return chunks[0][1] - chunks[0][0] if len(chunks) == 1 else sum(b - a for a, b in chunks)


def _embodied_run(
    provider: str, region: str, hw_key: tuple[object, ...], hardware: Hardware, duration_s: int
) -> EmbodiedEstimate:
    key = (provider, region, hw_key, duration_s)
    found = _EMBODIED.get(key)
    if found is None:
        found = embodied_in_region(provider, region, hardware, duration_s)
        if len(_EMBODIED) >= MAX_REMEMBERED:
            _EMBODIED.clear()  # plain and thread-safe: at worst an estimate is worked out again
        _EMBODIED[key] = found
    return found


def _embodied_kg(
    provider: str, region: str, hw_key: tuple[object, ...], hardware: Hardware, duration_s: int
) -> float:
    """`embodied_run(...).kg_co2e`, the same float, from the (region, hardware)'s reserved kg
    remembered without the duration: a batch's runs last hundreds of durations (to the minute), so a
    memo by duration missed for four options in ten, each a whole estimate with its notes."""
    return amortised_kg(reserved_kg(provider, region, hardware, hw_key), duration_s)


def reserved_kg(
    provider: str, region: str, hardware: Hardware, hw_key: tuple[object, ...] | None = None
) -> float:
    """`catalog.embodied.reserved_in_region`, remembered per (region, hardware): what every run of
    that hardware there is charged a time-share of (`hw_key`: `hardware_key(hardware)`, when the
    caller has it)."""
    key = (provider, region, hardware_key(hardware) if hw_key is None else hw_key)
    reserved = _RESERVED.get(key)
    if reserved is None:
        reserved = reserved_in_region(provider, region, hardware)
        if len(_RESERVED) >= MAX_REMEMBERED:
            _RESERVED.clear()  # as _EMBODIED
        _RESERVED[key] = reserved
    return reserved


MAX_REMEMBERED = 1 << 14
_EMBODIED: dict[tuple[object, ...], EmbodiedEstimate] = {}
_RESERVED: dict[tuple[object, ...], float] = {}


@dataclass(frozen=True, slots=True)
class FootprintFigures:
    """What `Footprints.add_fields` adds to options, by rank: each option's embodied kg, and its
    embodied, total and total savings as shown (rounded to 6 places), worked out for `of`."""

    of: Footprints
    embodied_kg: Sequence[float]
    embodied_shown: Sequence[float]
    total_shown: Sequence[float]
    total_savings_shown: Sequence[float]


def footprint_lists(
    kg: FloatArray, baseline_kg: FloatArray, embodied: FloatArray, baseline_embodied: FloatArray
) -> tuple[list[float], list[float], list[float], list[float]]:
    """`FootprintFigures`' lists (embodied kg; embodied, total, total savings shown) from options'
    operational and embodied kg and their baseline's: for a plan's options or a whole batch's, by the
    same arithmetic (a total is operational + embodied, its saving the baseline's total less it; IEEE
    gives the same doubles as for floats one by one)."""
    totals = kg + embodied
    saved = baseline_kg + baseline_embodied - totals
    n = len(totals)
    six = rounded_array(np.concatenate((embodied, totals, saved)), 6)  # in one go
    return embodied.tolist(), six[:n], six[n : 2 * n], six[2 * n :]


def reserved_kgs(providers: Sequence[str], regions: Sequence[str], hardware: Hardware) -> FloatArray:
    """`reserved_kg` of each (provider, region) for this hardware, as an array."""
    key = hardware_key(hardware)
    return np.array([reserved_kg(p, r, hardware, key) for p, r in zip(providers, regions, strict=True)])


def amortised_kgs(reserved: FloatArray, run_s: npt.NDArray[np.int64]) -> FloatArray:
    """`catalog.embodied.amortised_kg` of many runs at once: the same doubles (its arithmetic, in its
    order)."""
    return np.asarray(reserved * (run_s / 3600.0 / LIFESPAN_H), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Footprints:
    """What a plan's options are charged beyond their operational kg, and on which hardware."""

    choices: tuple[HardwareChoice, ...]
    functional_unit: FunctionalUnit | None = None

    @classmethod
    def of(cls, spec: JobSpec) -> Footprints:
        return cls(hardware_choices(spec), spec.functional_unit)

    @property
    def alternatives(self) -> bool:
        """Whether the spec lists hardware alternatives (options then say which one they run on)."""
        return len(self.choices) > 1

    def choice(self, option: PlanOption) -> HardwareChoice:
        return self.choices[option.alternative]

    def embodied(self, option: PlanOption) -> EmbodiedEstimate:
        return embodied_run(
            option.provider, option.region, self.choice(option).hardware, _run_s(option.chunks_s)
        )

    def baseline_embodied(self, provider: str, region: str) -> EmbodiedEstimate:
        """The baseline run's embodied share: the spec's own hardware, for its own duration."""
        own = self.choices[0]
        return embodied_run(provider, region, own.hardware, own.duration_s)

    def baseline_embodied_kg(self, provider: str, region: str) -> float:
        """`baseline_embodied(...).kg_co2e`, the same float, without the estimate's notes: what a
        plan's JSON shows of the baseline (the notes are the best option's)."""
        own = self.choices[0]
        return _embodied_kg(provider, region, hardware_key(own.hardware), own.hardware, own.duration_s)

    def total_kg(self, option: PlanOption) -> float:
        """Operational + embodied kg: what options of several hardware alternatives are ranked by."""
        return option.kg_co2e + self.embodied(option).kg_co2e

    def add_fields(self, columns: OptionColumns, shown: list[dict[str, Any]], baseline: Baseline) -> None:
        """Add to each option's dict (`shown`, in the order of `columns`): embodied_kg_co2e,
        total_kg_co2e, total_savings_kg (against the baseline run's own total: its operational kg plus
        the spec's hardware's embodied share where it runs), sci (with a functional unit) and hardware
        (with alternatives). The figures come with the columns when a batch worked them out for the
        whole batch at once (`batch._ShownTable`, for these footprints), else here, for all options
        at once (`footprint_lists`: a plan shows up to every region's option)."""
        figures = columns.footprint
        if figures is None or figures.of is not self:
            figures = self._figures(columns, baseline)
        unit = self.functional_unit
        hardware = [c.to_dict() for c in self.choices] if self.alternatives else None
        for out, op_kg, kg, kg_shown, total_shown, saved_shown, choice in zip(
            shown,
            columns.kg_co2e,
            figures.embodied_kg,
            figures.embodied_shown,
            figures.total_shown,
            figures.total_savings_shown,
            columns.alternative,
            strict=True,
        ):
            out["embodied_kg_co2e"] = kg_shown
            out["total_kg_co2e"] = total_shown
            out["total_savings_kg"] = saved_shown
            if unit is not None:
                out["sci"] = Footprint(op_kg, kg, unit.name, unit.count).sci_dict()
            if hardware is not None:
                out["hardware"] = dict(hardware[choice])

    def _figures(self, columns: OptionColumns, baseline: Baseline) -> FootprintFigures:
        own = self.choices[0]
        keys = [hardware_key(c.hardware) for c in self.choices]
        embodied: list[float] = []
        base_embodied: list[float] = []
        fixed = (
            self.baseline_embodied_kg(baseline.provider, baseline.region)
            if baseline.basis == "spec"
            else None
        )
        for provider, region, chunks, choice in zip(
            columns.provider, columns.region, columns.chunks_s, columns.alternative, strict=True
        ):
            run_s = _run_s(chunks)
            kg = _embodied_kg(provider, region, keys[choice], self.choices[choice].hardware, run_s)
            embodied.append(kg)
            if fixed is not None:
                base_embodied.append(fixed)
            elif choice == 0 and run_s == own.duration_s:  # the same run as the baseline's
                base_embodied.append(kg)
            else:
                base_embodied.append(_embodied_kg(provider, region, keys[0], own.hardware, own.duration_s))
        lists = footprint_lists(
            np.array(columns.kg_co2e, dtype=np.float64),
            np.array(columns.baseline_kg_co2e, dtype=np.float64),
            np.array(embodied, dtype=np.float64),
            np.array(base_embodied, dtype=np.float64),
        )
        return FootprintFigures(self, *lists)

    def baseline_fields(self, baseline: Baseline) -> dict[str, Any]:
        embodied = self.baseline_embodied_kg(baseline.provider, baseline.region)
        return {
            "embodied_kg_co2e": round(embodied, 6),
            "total_kg_co2e": round(baseline.kg_co2e + embodied, 6),
        }

    def summary(self, plan: Plan, shown: OptionColumns | None = None) -> dict[str, Any]:
        """The plan's `footprint` object: what options are ranked by, the alternatives, and the best
        option's embodied estimate with its source and assumptions (read off `shown`, the columns of
        the options shown, when they hold it: a batch plan then builds no option for it)."""
        if shown is not None and len(shown):
            choice = self.choices[shown.alternative[0]]
            run_s = _run_s(shown.chunks_s[0])
            best: EmbodiedEstimate | None = embodied_run(
                shown.provider[0], shown.region[0], choice.hardware, run_s
            )
        else:
            best = self.embodied(plan.best) if plan.options else None
        out: dict[str, Any] = {
            "ranked_by": "total_kg_co2e" if self.alternatives else "kg_co2e",
            "embodied": best.to_dict() if best is not None else None,
        }
        if self.alternatives:
            out["hardware_options"] = [c.to_dict() for c in self.choices]
        if self.functional_unit is not None:
            out["functional_unit"] = {"name": self.functional_unit.name, "count": self.functional_unit.count}
        return out


__all__ = [
    "FootprintFigures",
    "Footprints",
    "HardwareChoice",
    "alternative_spec",
    "amortised_kgs",
    "embodied_run",
    "footprint_lists",
    "hardware_choices",
    "hardware_key",
    "reserved_kg",
    "reserved_kgs",
]
