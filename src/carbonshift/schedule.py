"""Occurrences of a recurring spec: each nominal cron time opens its own window, from nominal to
nominal + flex + duration (the run may start up to `flex` late and must then still finish).

Cron arithmetic (time zones, DST gaps and repeats) is APScheduler's CronTrigger, the same trigger the
scheduler daemon runs on, so `plan` and the daemon agree on when an occurrence is. One trap is handled
here: APScheduler 3 numbers weekdays from Monday (0 = Mon) even in `from_crontab`, where standard cron
has 0 (and 7) = Sunday, so `0 22 * * 1-5` would silently run Tuesday to Saturday. The day-of-week
field is therefore rewritten as day names before APScheduler sees it.

DST is the other trap. Chaining APScheduler 3.11's CronTrigger across a fall-back night gives a
nominal time in the repeated hour twice (from 02:30:01 CEST it lands on 02:30 CET, an hour later), and
after an earlier hit that night it can step over a spring-forward gap's shifted time. `next_nominal`
therefore runs the cron over local wall-clock time (a UTC trigger sees no DST) and maps each wall time
to an instant itself: a wall time that occurs twice is its first instance, one that does not exist is
shifted forward by the gap (02:30 on Berlin's spring-forward day is 03:30 CEST). Every occurrence
computation (`next_occurrence`, the scheduler's chaining, `CarbonAwareTrigger`) goes through it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from carbonshift.config.jobspec import JobSpec, Window, apscheduler_cron, check_cron

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """APScheduler's trigger for a standard five-field cron expression (0 and 7 = Sunday)."""
    return apscheduler_cron(check_cron(expr), timezone)


# longer than any DST shift: how far a wall time in a spring-forward gap can be moved, and how far
# apart two transitions are at least
_DST_REACH = timedelta(hours=3)


@lru_cache(maxsize=256)
def _wall_cron(expr: str) -> CronTrigger:
    """The cron over naive local wall-clock time (wall times labelled UTC, where nothing shifts)."""
    return cron_trigger(expr, "UTC")


@lru_cache(maxsize=64)
def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall time: the first one when it occurs twice, shifted forward by the gap
    when it does not exist (fold=0 reads both with the offset in force before the transition)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _in_gap(wall: datetime, zone: ZoneInfo) -> bool:
    local = wall.replace(tzinfo=zone, fold=0)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None)


def next_nominal(expr: str, timezone: str, after: datetime) -> datetime | None:
    """The first nominal time of the cron expression (in `timezone`) at or after the aware `after`,
    in UTC; None when it never fires again. Each nominal local wall time gives one instant (see the
    module's docstring), so chaining from the previous result + 1 s yields every occurrence once."""
    zone = _zone(timezone)
    wall_cron = _wall_cron(expr)
    after = after.astimezone(UTC)
    start = after.astimezone(zone).replace(tzinfo=UTC)  # after's wall time
    if after.astimezone(zone).utcoffset() != (after - _DST_REACH).astimezone(zone).utcoffset():
        # a transition just passed: a wall time before after's (in a gap, or the spring-forward
        # gap's shift) may still fall at or after `after`
        start -= _DST_REACH
    best: datetime | None = None
    limit: datetime | None = None
    wall: datetime | None = wall_cron.get_next_fire_time(None, start)
    while wall is not None and (limit is None or wall <= limit):
        instant = _instant(wall, zone)
        if instant >= after and (best is None or instant < best):
            best = instant
            # a gap's wall time is moved forward, past later wall times that may come earlier
            limit = wall + _DST_REACH if _in_gap(wall, zone) else wall
        wall = wall_cron.get_next_fire_time(None, wall + timedelta(seconds=1))
    return best


def next_occurrence(spec: JobSpec, after: datetime) -> datetime | None:
    """The occurrence to plan at `after` (UTC): the current one while its window can still fit the job
    (its latest start, nominal + flex, not yet passed), else the next; None for a spec without a
    schedule. A nightly job submitted at 22:04 with a 22:00-06:00 window runs tonight, not tomorrow.

    A nominal time n has its latest start at n + flex, so the wanted occurrence is simply the first
    nominal time at or after `after - flex`."""
    if spec.schedule is None:
        return None
    return next_nominal(spec.schedule.cron, spec.schedule.timezone, after - spec.schedule.flex)


def occurrence_spec(spec: JobSpec, nominal: datetime) -> JobSpec:
    """The spec with the window of the occurrence at `nominal`, ready to plan like a one-off job."""
    if spec.schedule is None:
        return spec
    window = Window(earliest=nominal, deadline=nominal + spec.schedule.flex + spec.duration)
    return spec.model_copy(update={"window": window})
