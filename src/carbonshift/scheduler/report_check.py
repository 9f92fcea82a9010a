"""Checking a run's report before its numbers count.

A report comes from the run itself (its tracker, with the run's own token, or the local run's
`report.json`), so it is untrusted input: one `NaN` or `-1e300` summed into the ledger would make every
total and /metrics meaningless. A report counts only when each number is finite and non-negative and
its energy is plausible for the run: at most `POWER_MARGIN` times the power its plan estimated for
its hardware (at least `FLOOR_KW`; `CEILING_KW` when the plan has no estimate), over the longest the
run can have lasted; its emissions at most `MAX_G_PER_KWH` per kWh; its embodied part (the hardware's
share of its manufacture, SCI's M) at most `MAX_EMBODIED_KG_PER_H` per hour of that longest time, and
its `total_kg_co2e`, when given with both parts, their sum. A report that fails is kept aside with
the reason and never summed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from carbonshift.scheduler.models import ReportRow, RunEventRow, RunRow

__all__ = [
    "CEILING_KW",
    "FLOOR_KW",
    "MAX_EMBODIED_KG_PER_H",
    "MAX_G_PER_KWH",
    "POWER_MARGIN",
    "RunBounds",
    "bounds_for",
    "keep",
    "report_problem",
    "storable",
]

NUMBERS = (
    "energy_kwh",
    "kg_co2e",
    "embodied_kg_co2e",
    "total_kg_co2e",
    "mean_g_per_kwh",
    "duration_s",
    "pue",
)
POWER_MARGIN = 10.0  # a run may draw up to 10x the power its plan estimated for its hardware
FLOOR_KW = 10.0  # ...and at least 10 kW (a GPU server), whatever the estimate: a machine-wide measure
# of a small job may well be many times its plan's estimate; the bound is there to stop nonsense
CEILING_KW = 100.0  # with no estimate at all (a tracked run): a rack of GPU servers
MAX_G_PER_KWH = 2000.0  # above any grid's hourly intensity (lignite is about 1,100-1,300 g/kWh)
SLACK_KWH = 0.001  # rounding in short runs
# a GPU server's embodied emissions (a few tonnes CO2e) over a 4-year life are about 0.1 kg per hour;
# 10 kg per hour is a rack of them, as CEILING_KW is for power
MAX_EMBODIED_KG_PER_H = 10.0
SLACK_KG = 0.001
TOTAL_TOLERANCE = 1e-6  # relative: total_kg_co2e is the sum of two floats


@dataclass(frozen=True)
class RunBounds:
    """What the report is checked against: the run's planned energy (kWh, with PUE) over its planned
    duration, and the longest it can have run (its window to its deadline plus the watchdog margin)."""

    planned_kwh: float | None
    planned_s: float | None
    longest_s: float | None

    @property
    def limit_kw(self) -> float:
        if self.planned_kwh is None or not self.planned_s or self.planned_kwh < 0:
            return CEILING_KW
        return max(self.planned_kwh / (self.planned_s / 3600) * POWER_MARGIN, FLOOR_KW)


def _number(key: str, value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"must be a number, not {type(value).__name__}"
    try:
        number = float(value)
    except OverflowError:
        return None, "must be a finite number (this one does not fit a float)"
    if not math.isfinite(number):
        return None, f"must be a finite number, not {value!r}"
    if number < 0:
        return None, f"must not be negative (got {number:g})"
    if key == "pue" and number < 1:
        return None, f"a PUE is at least 1 (got {number:g})"
    return number, None


def report_problem(report: Mapping[str, Any], bounds: RunBounds) -> tuple[str, str] | None:
    """(field, why) for the first thing wrong with the report's numbers; None when they can count."""
    code = report.get("exit_code")
    if code is not None and (
        isinstance(code, bool) or not isinstance(code, int) or not -(2**31) <= code < 2**31
    ):
        return (
            "exit_code",
            "an exit code is an integer (a process's status, or minus the signal that ended it)",
        )
    values: dict[str, float | None] = {}
    for key in NUMBERS:
        number, problem = _number(key, report.get(key))
        if problem is not None:
            return key, problem
        values[key] = number
    g = values["mean_g_per_kwh"]
    if g is not None and g > MAX_G_PER_KWH:
        return "mean_g_per_kwh", f"{g:g} g/kWh is above any grid's ({MAX_G_PER_KWH:g} at most)"
    energy, kg = values["energy_kwh"], values["kg_co2e"]
    limit_kwh: float | None = None
    seconds_bound: float | None = None
    if bounds.planned_s is not None or values["duration_s"] is not None:
        # the longer of planned and reported, but never longer than the run can have lasted
        seconds = max(bounds.planned_s or 0.0, values["duration_s"] or 0.0)
        if bounds.longest_s is not None:
            seconds = min(seconds, max(bounds.longest_s, bounds.planned_s or 0.0))
        seconds_bound = seconds
        limit_kwh = bounds.limit_kw * seconds / 3600 + SLACK_KWH
        if energy is not None and energy > limit_kwh:
            return "energy_kwh", (
                f"{energy:.6g} kWh is not plausible for this run: at most {limit_kwh:.6g} kWh "
                f"({bounds.limit_kw:g} kW for {seconds:.0f} s)"
            )
    embodied_problem = _embodied_problem(values, seconds_bound)
    if embodied_problem is not None:
        return embodied_problem
    basis = energy if energy is not None else limit_kwh
    kg_limit = None if basis is None else basis * MAX_G_PER_KWH / 1000 + SLACK_KWH
    if kg is not None and kg_limit is not None and kg > kg_limit:
        return "kg_co2e", (
            f"{kg:.6g} kg CO2e is not plausible for {'its energy' if energy is not None else 'this run'}: "
            f"at most {kg_limit:.6g} kg ({MAX_G_PER_KWH:g} g per kWh)"
        )
    return None


def _embodied_problem(values: Mapping[str, float | None], seconds: float | None) -> tuple[str, str] | None:
    """The embodied part: plausible for how long the run can have lasted, and the total the sum."""
    embodied, kg, total = values["embodied_kg_co2e"], values["kg_co2e"], values["total_kg_co2e"]
    if embodied is not None and seconds is not None:
        limit = MAX_EMBODIED_KG_PER_H * seconds / 3600 + SLACK_KG
        if embodied > limit:
            return "embodied_kg_co2e", (
                f"{embodied:.6g} kg CO2e is not plausible for {seconds:.0f} s of hardware: at most "
                f"{limit:.6g} kg ({MAX_EMBODIED_KG_PER_H:g} kg per hour)"
            )
    if total is not None and kg is not None and embodied is not None:
        expected = kg + embodied
        if abs(total - expected) > TOTAL_TOLERANCE * max(expected, 1e-3):
            return "total_kg_co2e", (f"must be kg_co2e + embodied_kg_co2e ({expected:.6g}), got {total:.6g}")
    return None


_MAX_DEPTH = 32
_MAX_INT = 2**63 - 1


def storable(value: Any, depth: int = 0) -> Any:
    """The report as it can be stored and served back as JSON by every database: a non-finite float
    or an integer too large for a bigint becomes its text, text that cannot be encoded has those
    characters replaced, and nesting deeper than 32 levels is cut."""
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return value if abs(value) <= _MAX_INT else "a number too large to store"
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, Mapping):
        return {storable(str(k), depth + 1): storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v, depth + 1) for v in value]
    return storable(str(value), depth + 1)


def bounds_for(run: RunRow, watchdog_margin_s: float | None) -> RunBounds:
    """A run's bounds: its plan's energy over its planned duration; the longest it can have run is its
    window to its deadline plus the watchdog's margin (no bound when the watchdog is off)."""
    kwh = (run.planned or {}).get("energy_kwh")
    planned_kwh = float(kwh) if isinstance(kwh, int | float) and not isinstance(kwh, bool) else None
    longest = None
    if watchdog_margin_s is not None:
        longest = (run.deadline - run.window_earliest).total_seconds() + watchdog_margin_s
    return RunBounds(planned_kwh, float(run.duration_s), longest)


def keep(
    s: Session,
    run: RunRow,
    source: str,
    body: Mapping[str, Any],
    now: datetime,
    watchdog_margin_s: float | None,
) -> tuple[str, str] | None:
    """Store a run's report (in the caller's transaction): counted when its numbers pass, else kept
    aside with the reason (and an event on the run saying so). The problem, or None."""
    problem = report_problem(body, bounds_for(run, watchdog_margin_s))
    reason = None if problem is None else f"{problem[0]}: {problem[1]}"
    s.add(
        ReportRow(run_id=run.id, received_at=now, source=source, body=storable(dict(body)), rejected=reason)
    )
    if reason is not None:
        s.add(
            RunEventRow(
                run_id=run.id,
                at=now,
                from_state=run.state,
                to_state=run.state,
                reason=f"{source} report not counted: {reason}",
            )
        )
    return problem
