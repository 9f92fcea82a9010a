"""Planning one run: the advisor's plan for a window, the option chosen among the providers configured
here, and how a plan is stored (a plan row per plan made, the chosen option's copies on the run).

No state moves here: the parts that plan (submit, schedules, re-planning, a preemption) decide what a
plan means for a run.
"""

from __future__ import annotations

from collections.abc import Callable
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
from carbonshift.planner.plan import PlanOption
from carbonshift.providers.base import Provider
from carbonshift.scheduler import ledger
from carbonshift.scheduler.lifecycle import z
from carbonshift.scheduler.models import PlanRow, RunRow

__all__ = ["Planned", "Plans", "option_dict"]


def option_dict(option: PlanOption, signal: str) -> dict[str, Any]:
    out = option.to_dict()
    out["ref"] = option.ref
    out["signal"] = signal
    return out


@dataclass(frozen=True)
class Planned:
    """A plan made for one run: the advice, the option chosen and the launchable ones (fallbacks)."""

    advice: Advice
    chosen: PlanOption
    launchable: list[PlanOption]
    notes: list[str] = field(default_factory=list)

    def option_dicts(self) -> list[dict[str, Any]]:
        signal = self.advice.plan.signal.value
        return [option_dict(o, signal) for o in self.launchable]


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
    ) -> Planned:
        """Plan one run in [earliest, deadline]. `chunked`: an interruptible spec may be split into
        chunks (the chosen option's `chunks`: one run each, see `Chunks.add`); otherwise it is
        planned as one contiguous run. `duration_s`: plan this much of the job (what is left of it)."""
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
            # the daemon launches the spec's own hardware: planning an alternative it would not launch
            # could pick a region or duration that hardware does not have (alternatives: `plan` only)
            "hardware_options": [],
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
        return Planned(advice, launchable[0], launchable[: self.cfg.plan_options_kept], notes)

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
            option=option_dict(option, plan.signal.value),
            options=planned.option_dicts(),
            baseline=plan.baseline.to_dict(),
            signal=plan.signal.value,
            notices=[*planned.notes, *plan.notes, *planned.advice.notices],
        )

    @staticmethod
    def planned_fields(option: PlanOption, signal: str, plan_id: int | None) -> dict[str, Any]:
        """The run's columns for an adopted option."""
        planned = option_dict(option, signal)
        planned["plan_id"] = plan_id
        return {
            "provider": option.provider,
            "region": option.region,
            "zone": option.zone,
            "planned_start": option.start,
            "planned_end": option.end,
            "planned": planned,
            **ledger.planned_numbers(planned),
        }

    def adopt(
        self, s: Session, run: RunRow, planned: Planned, kind: str, reason: str, now: datetime
    ) -> PlanRow:
        """Store the plan as adopted and put its chosen option on the run."""
        row = self.plan_row(run, planned, kind, True, reason)
        s.add(row)
        s.flush()
        for key, value in self.planned_fields(planned.chosen, row.signal or "", row.id).items():
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
        return (
            f"first plan: {o.ref} at {z(o.start)} ({o.kg_co2e:.4g} kg CO2e{saving}), "
            f"best of {len(planned.advice.plan.options)} option(s)"
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
