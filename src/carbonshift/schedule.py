"""Occurrences of a recurring spec: each nominal cron time opens its own window, from nominal to
nominal + flex + duration (the run may start up to `flex` late and must then still finish).

Cron arithmetic (time zones, DST gaps and repeats) is APScheduler's CronTrigger, the same trigger the
scheduler daemon runs on, so `plan` and the daemon agree on when an occurrence is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from carbonshift.config.jobspec import JobSpec, Window


def next_occurrence(spec: JobSpec, after: datetime) -> datetime | None:
    """The first nominal time at or after `after` (UTC), or None for a spec without a schedule."""
    if spec.schedule is None:
        return None
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(spec.schedule.cron, timezone=spec.schedule.timezone)
    fire = trigger.get_next_fire_time(None, after)
    return None if fire is None else fire.astimezone(UTC)


def occurrence_spec(spec: JobSpec, nominal: datetime) -> JobSpec:
    """The spec with the window of the occurrence at `nominal`, ready to plan like a one-off job."""
    if spec.schedule is None:
        return spec
    window = Window(earliest=nominal, deadline=nominal + spec.schedule.flex + spec.duration)
    return spec.model_copy(update={"window": window})
