"""Planning one run: the advisor's plan for a window, the option chosen among the providers configured
here, and how a plan is stored (a plan row per plan made, the chosen option's copies on the run).

A spec with `hardware_options` is planned as `carbonshift plan` ranks it: region x start x hardware, by
total kg CO2e. Each stored option of such a spec carries its `hardware` (which alternative, its size,
duration and the instance type a launch picks there), and the run follows it: its duration is the
alternative's, and it is launched on that hardware (`run_spec`). Once a run (or a chunk of its job)
has been launched, or queued ahead at a cluster, its hardware is kept: later plans for it are made for
that hardware only (`plan(..., hardware=)`).

No state moves here: the parts that plan (submit, schedules, re-planning, a preemption) decide what a
plan means for a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from carbonshift.advisor import Advice, advise
from carbonshift.catalog import Catalog
from carbonshift.config import Settings
from carbonshift.config.jobspec import JobSpec, Window
from carbonshift.errors import UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.planner.footprints import HardwareChoice, alternative_spec, hardware_choices
from carbonshift.planner.option_columns import built_columns
from carbonshift.planner.plan import Plan, PlanOption
from carbonshift.providers.base import Provider
from carbonshift.scheduler import ledger
from carbonshift.scheduler.lifecycle import z
from carbonshift.scheduler.models import PlanRow, RunRow
from carbonshift.sizing import launch_type_for

__all__ = ["Planned", "Plans", "hardware_index", "option_dict", "pinned_spec", "run_spec"]


def option_dict(
    option: PlanOption, signal: str, plan: Plan | None = None, hardware: HardwareChoice | None = None
) -> dict[str, Any]:
    """An option as stored (on a plan row, on the run that follows it): the plan's JSON for it, with
    its embodied and total kg when `plan` has footprints, and `hardware` when the spec has
    alternatives (with the instance type a launch picks for it in that region, where known)."""
    out = option.to_dict()
    if plan is not None and plan.footprints is not None:
        plan.footprints.add_fields(built_columns((option,)), [out], plan.baseline)
    if hardware is not None:
        out["hardware"] = _hardware_dict(hardware, option.provider, option.region)
    out["ref"] = option.ref
    out["signal"] = signal
    return out


def _hardware_dict(choice: HardwareChoice, provider: str, region: str) -> dict[str, Any]:
    """`plan`'s hardware dict, plus what a person reads in `jobs show`: its label and the instance type
    launched for it there (from the same catalog choice the provider makes at launch)."""
    out = choice.to_dict()
    out["label"] = choice.label
    itype = launch_type_for(provider, region, choice.hardware)
    if itype is not None:
        out["instance_type"] = itype.key
    return out


def hardware_index(planned: Mapping[str, Any] | None) -> int | None:
    """Which hardware alternative a stored option is on (0: the spec's own, i + 1: its
    hardware_options[i]); None for an option of a spec without alternatives."""
    hardware = (planned or {}).get("hardware")
    index = hardware.get("option") if isinstance(hardware, Mapping) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def pinned_spec(spec: JobSpec, index: int | None) -> JobSpec:
    """The spec as it reads on alternative `index` (its hardware, duration and measured power, no
    alternatives); the spec itself when it has no alternatives or `index` is None or out of range."""
    if index is None or not spec.hardware_options:
        return spec
    choices = hardware_choices(spec)
    return alternative_spec(spec, choices[index]) if 0 <= index < len(choices) else spec


def run_spec(spec: JobSpec, planned: Mapping[str, Any] | None) -> JobSpec:
    """The spec a run is launched with: on the hardware its plan chose (what a provider picks its
    instance type, time limit and GPUs from)."""
    return pinned_spec(spec, hardware_index(planned))


@dataclass(frozen=True)
class Planned:
    """A plan made for one run: the advice, the option chosen and the launchable ones (fallbacks).
    `choices`: the hardware of the plan's options, by their `alternative` (empty when the spec has no
    alternatives: its options then carry no `hardware`)."""

    advice: Advice
    chosen: PlanOption
    launchable: list[PlanOption]
    notes: list[str] = field(default_factory=list)
    choices: tuple[HardwareChoice, ...] = ()

    def hardware(self, option: PlanOption) -> HardwareChoice | None:
        """The hardware `option` runs on; None for a spec without alternatives."""
        return self.choices[option.alternative] if self.choices else None

    def option_dict(self, option: PlanOption) -> dict[str, Any]:
        plan = self.advice.plan
        return option_dict(option, plan.signal.value, plan, self.hardware(option))

    def option_dicts(self) -> list[dict[str, Any]]:
        return [self.option_dict(o) for o in self.launchable]

    def total_kg(self, option: PlanOption) -> float:
        """What options are ranked by: total kg with alternatives, else operational."""
        fp = self.advice.plan.footprints
        return fp.total_kg(option) if self.choices and fp is not None else option.kg_co2e


class Plans:
    """Plans runs with fresh forecasts, for the providers configured on this daemon."""

    def __init__(
        self,
        settings: Settings,
        providers: dict[str, Provider],
        catalog: Callable[[], Catalog],
        service_factory: Callable[[], IntensityService],
    ) -> None:
        self.settings = settings
        self.cfg = settings.scheduler
        self.providers = providers
        self._catalog = catalog
        self._service_factory = service_factory

    def advise(self, spec: JobSpec, now: datetime) -> Advice:
        """The advisor's plan for a spec as given (what `dry_run` shows)."""
        return advise(
            spec,
            catalog=self._catalog(),
            service=self._service_factory(),
            now=now,
            signal=self.settings.signal,
        )

    def plan(
        self,
        spec: JobSpec,
        earliest: datetime,
        deadline: datetime,
        now: datetime,
        *,
        chunked: bool = False,
        duration_s: int | None = None,
        hardware: int | None = None,
    ) -> Planned:
        """Plan one run in [earliest, deadline]. `chunked`: an interruptible spec may be split into
        chunks (the chosen option's `chunks`: one run each, see `Chunks.add`); otherwise it is
        planned as one contiguous run. `hardware`: plan on this alternative only (the job has run on
        it already); `duration_s`: plan this much of the job (what is left of it, on that hardware:
        given for a spec with alternatives, `hardware` must be too)."""
        choices: tuple[HardwareChoice, ...] = ()
        if spec.hardware_options:
            every = hardware_choices(spec)
            if hardware is not None:
                choices = (every[hardware],)
                spec = pinned_spec(spec, hardware)
            elif duration_s is not None:
                raise ValueError("a duration left is on one hardware: give the hardware alternative too")
            else:
                choices = every
        notes: list[str] = []
        split = spec.interruptible and chunked
        if spec.interruptible and not split:
            notes.append(
                "planned as one contiguous run: the chunks of a recurring job's occurrence are not "
                "executed separately"
            )
        update: dict[str, Any] = {
            "window": Window(earliest=earliest, deadline=deadline),
            "schedule": None,
            "interruptible": split,
        }
        if duration_s is not None:
            update["duration"] = timedelta(seconds=duration_s)
        advice = self.advise(spec.model_copy(update=update), now)
        options = advice.plan.options
        launchable = [o for o in options if o.provider in self.providers]
        if not launchable:
            raise UserInputError(
                "placement.providers",
                f"no provider configured here can run this job: the plan's options are on "
                f"{', '.join(sorted({o.provider for o in options}))}; configured: "
                f"{', '.join(sorted(self.providers))}",
            )
        if launchable[0] is not options[0]:
            notes.append(
                f"the lowest-carbon option ({options[0].ref}) is on a provider not configured here; "
                f"using {launchable[0].ref}"
            )
        kept = launchable[: self.cfg.plan_options_kept]
        return Planned(advice, launchable[0], kept, notes, choices)

    @staticmethod
    def plan_row(
        run: RunRow,
        planned: Planned,
        kind: str,
        adopted: bool,
        reason: str,
        gain_pct: float | None = None,
        chosen: PlanOption | None = None,
    ) -> PlanRow:
        """The stored record of a plan made for a run (kept whether it was adopted or not)."""
        plan = planned.advice.plan
        option = chosen or planned.chosen
        return PlanRow(
            job_id=run.job_id,
            run_id=run.id,
            generated_at=plan.generated_at,
            kind=kind,
            adopted=adopted,
            reason=reason,
            gain_pct=gain_pct,
            option=planned.option_dict(option),
            options=planned.option_dicts(),
            baseline=plan.baseline.to_dict(),
            signal=plan.signal.value,
            notices=[*planned.notes, *plan.notes, *planned.advice.notices],
        )

    @staticmethod
    def planned_fields(planned: Planned, option: PlanOption, plan_id: int | None) -> dict[str, Any]:
        """The run's columns for an adopted option: its duration is the option's (on its hardware)."""
        stored = planned.option_dict(option)
        stored["plan_id"] = plan_id
        return {
            "provider": option.provider,
            "region": option.region,
            "zone": option.zone,
            "planned_start": option.start,
            "planned_end": option.end,
            "duration_s": sum(b - a for a, b in option.chunks_s),
            "planned": stored,
            **ledger.planned_numbers(stored),
        }

    def adopt(
        self, s: Session, run: RunRow, planned: Planned, kind: str, reason: str, now: datetime
    ) -> PlanRow:
        """Store the plan as adopted and put its chosen option on the run."""
        row = self.plan_row(run, planned, kind, True, reason)
        s.add(row)
        s.flush()
        for key, value in self.planned_fields(planned, planned.chosen, row.id).items():
            setattr(run, key, value)
        run.plan_id = row.id
        run.last_planned_at = now
        return row

    def attach(self, s: Session, run: RunRow, planned: Planned, reason: str, now: datetime) -> None:
        """A new run's first plan."""
        self.adopt(s, run, planned, "initial", reason, now)

    @staticmethod
    def first_reason(planned: Planned) -> str:
        o = planned.chosen
        saving = "" if o.savings_pct is None else f", {o.savings_pct:.1f}% below its baseline"
        choice = planned.hardware(o)
        if choice is None:
            return (
                f"first plan: {o.ref} at {z(o.start)} ({o.kg_co2e:.4g} kg CO2e{saving}), "
                f"best of {len(planned.advice.plan.options)} option(s)"
            )
        return (
            f"first plan: {o.ref} at {z(o.start)} on {choice.label} ({planned.total_kg(o):.4g} kg CO2e "
            f"total, {o.kg_co2e:.4g} operational{saving}), best of {len(planned.advice.plan.options)} "
            "option(s) by total kg"
        )

    @staticmethod
    def window_for(spec: JobSpec, nominal: datetime) -> tuple[datetime, datetime]:
        """A schedule's occurrence window: from its nominal time, flex plus duration long."""
        assert spec.schedule is not None
        return nominal, nominal + spec.schedule.flex + spec.duration

    def gain_verdict(
        self, current_kg: float, new_kg: float, words: Callable[[float], str]
    ) -> tuple[float, bool, str]:
        """The re-plan rule, in one place: move only for a gain of at least replan_min_gain_pct."""
        gain = (current_kg - new_kg) / current_kg * 100 if current_kg > 0 else 0.0
        threshold = self.cfg.replan_min_gain_pct
        if gain > 0 and gain >= threshold:
            return gain, True, f"moved: {words(gain)}, at least the {threshold:g}% threshold"
        return gain, False, f"kept: {words(gain)}, under the {threshold:g}% threshold"
