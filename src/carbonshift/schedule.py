"""Occurrences of a recurring spec: each nominal cron time opens its own window, from nominal to
nominal + flex + duration (the run may start up to `flex` late and must then still finish).

Cron arithmetic (time zones, DST gaps and repeats) is APScheduler's CronTrigger, the same trigger the
scheduler daemon runs on, so `plan` and the daemon agree on when an occurrence is. One trap is handled
here: APScheduler 3 numbers weekdays from Monday (0 = Mon) even in `from_crontab`, where standard cron
has 0 (and 7) = Sunday, so `0 22 * * 1-5` would silently run Tuesday to Saturday. The day-of-week
field is therefore rewritten as day names before APScheduler sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from carbonshift.config.jobspec import JobSpec, Window, check_cron

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekdays(field: str) -> str:
    """A standard cron day-of-week field as APScheduler day names ('*' stays '*')."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        else:
            ends = [int(x) if x.isdigit() else _DAY_NAMES.index(x[:3]) for x in base.split("-")]
            lo, hi = ends[0], ends[-1] if len(ends) > 1 else (6 if step_text else ends[0])
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """APScheduler's trigger for a standard five-field cron expression (0 and 7 = Sunday)."""
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, weekday = check_cron(expr).split()
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday), timezone=timezone
    )


def next_occurrence(spec: JobSpec, after: datetime) -> datetime | None:
    """The first nominal time at or after `after` (UTC), or None for a spec without a schedule."""
    if spec.schedule is None:
        return None
    trigger = cron_trigger(spec.schedule.cron, spec.schedule.timezone)
    fire = trigger.get_next_fire_time(None, after)
    return None if fire is None else fire.astimezone(UTC)


def occurrence_spec(spec: JobSpec, nominal: datetime) -> JobSpec:
    """The spec with the window of the occurrence at `nominal`, ready to plan like a one-off job."""
    if spec.schedule is None:
        return spec
    window = Window(earliest=nominal, deadline=nominal + spec.schedule.flex + spec.duration)
    return spec.model_copy(update={"window": window})
