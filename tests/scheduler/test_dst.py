"""DST transitions for recurring jobs, through the real Scheduler (injected clock, SQLite) and through
CarbonAwareTrigger: a nominal local time that occurs twice (autumn) runs once, at its first instance;
one that does not exist (spring) runs once, shifted by the gap."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from carbonshift.clock import FixedClock
from carbonshift.providers.base import InstanceState
from carbonshift.runtime import build_service
from carbonshift.scheduler import CarbonAwareTrigger, RunState, Scheduler
from tests.scheduler.helpers import FakeProvider, hourly, make_settings, spec

BERLIN = ZoneInfo("Europe/Berlin")

# (a moment before the night, the local day of the transition, that day's one nominal time in UTC)
NIGHTS = {
    "autumn": (
        datetime(2030, 10, 25, 12, tzinfo=UTC),
        date(2030, 10, 27),
        datetime(2030, 10, 27, 0, 30, tzinfo=UTC),
    ),
    "spring": (
        datetime(2030, 3, 29, 12, tzinfo=UTC),
        date(2030, 3, 31),
        datetime(2030, 3, 31, 1, 30, tzinfo=UTC),
    ),
}


def flat_rows(start: datetime, days: int) -> list[tuple[datetime, float]]:
    return hourly(start - timedelta(days=1), 24 * (days + 2), lambda h: 300.0)


@pytest.mark.parametrize("night", ["autumn", "spring"])
def test_scheduler_creates_one_run_for_the_dst_night(tmp_path: Path, night: str) -> None:
    start, day, nominal = NIGHTS[night]
    clock = FixedClock(start)
    provider = FakeProvider()
    settings = make_settings(tmp_path, {"lab": flat_rows(start, 6)})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(
            spec(
                name="nightly",
                duration="1h",
                schedule={"cron": "30 2 * * *", "timezone": "Europe/Berlin", "flex": "1h"},
            )
        )
        for _ in range(4 * 24 * 2):  # four days in half-hour steps, each run ending when it started
            clock.advance(1800)
            sched.tick()
            if InstanceState.RUNNING not in provider.states.values():
                continue  # nothing launched is running: no run of the job can be (and reading it is slow)
            for run in sched.get_job(job.id).runs:
                if run.status is RunState.RUNNING:
                    provider.finish(run.id)
        runs = sched.get_job(job.id).runs
        per_day = Counter(r.nominal.astimezone(BERLIN).date() for r in runs)
        assert per_day[day] == 1, [r.nominal for r in runs]
        assert set(per_day.values()) == {1}  # and every other night once too
        assert nominal in {r.nominal for r in runs}
        assert all(r.status is not RunState.MISSED for r in runs)
    finally:
        sched.shutdown()


def next_fire(trig: CarbonAwareTrigger, previous: datetime | None, now: datetime) -> datetime | None:
    """trig.get_next_fire_time, failing instead of hanging (a trigger stuck in a loop would stall
    APScheduler's thread, and this test run)."""
    out: list[datetime | None] = []
    worker = threading.Thread(target=lambda: out.append(trig.get_next_fire_time(previous, now)), daemon=True)
    worker.start()
    worker.join(20)
    assert out, f"get_next_fire_time({previous}, {now}) did not return"
    return out[0]


def trigger(tmp_path: Path, start: datetime) -> CarbonAwareTrigger:
    settings = make_settings(tmp_path, {"lab": flat_rows(start, 6)})
    return CarbonAwareTrigger(
        "30 2 * * *",
        timezone="Europe/Berlin",
        flex="2h",
        duration="1h",
        location="local:lab",
        settings=settings,
        service=build_service(settings),
    )


@pytest.mark.parametrize("night", ["autumn", "spring"])
def test_trigger_fires_once_per_day_across_the_dst_night(tmp_path: Path, night: str) -> None:
    start, day, nominal = NIGHTS[night]
    trig = trigger(tmp_path, start)
    fires = [next_fire(trig, None, start)]
    while len(fires) < 4:
        prev = fires[-1]
        assert prev is not None
        fires.append(next_fire(trig, prev, prev))  # as APScheduler asks after a fire
    days = [f.astimezone(BERLIN).date() for f in fires if f is not None]
    assert days == [start.date() + timedelta(days=i) for i in range(1, 5)], fires
    # flat intensity: each fires at its nominal time (compared in UTC: a datetime in the repeated
    # hour never equals one in another zone, PEP 495)
    assert days.count(day) == 1 and nominal in [f.astimezone(UTC) for f in fires if f is not None]


@pytest.mark.parametrize("night", ["autumn", "spring"])
def test_apscheduler_fires_a_job_on_the_trigger_once_per_day_across_dst(tmp_path: Path, night: str) -> None:
    """APScheduler's own job bookkeeping: the run times it would fire for a job whose next run time
    was just before the night, when it wakes up days later (before coalescing)."""
    start, day, nominal = NIGHTS[night]
    trig = trigger(tmp_path, start)
    sched = BackgroundScheduler(timezone=UTC)
    sched.start(paused=True)
    try:
        job: Job = sched.add_job(lambda: None, trig, id="nightly")
        assert job.next_run_time == trig.get_next_fire_time(None, datetime.now(UTC))
        job.next_run_time = trig.get_next_fire_time(None, start)
        out: list[list[datetime]] = []
        until = start + timedelta(days=4)
        worker = threading.Thread(target=lambda: out.append(job._get_run_times(until)), daemon=True)
        worker.start()
        worker.join(20)
        assert out, "APScheduler's run times did not come back: the trigger loops"
        run_times = out[0]
        per_day = Counter(t.astimezone(BERLIN).date() for t in run_times)
        assert per_day[day] == 1 and set(per_day.values()) == {1}, run_times
        assert len(run_times) == 4 and nominal in [t.astimezone(UTC) for t in run_times]
    finally:
        sched.shutdown(wait=False)


# 01:10 UTC on Berlin's spring-forward day is 03:10 CEST: 02:30 did not exist that night and runs
# shifted, at 03:30 CEST (01:30 UTC), which is still ahead
INSIDE_SHIFT = datetime(2030, 3, 31, 1, 10, tzinfo=UTC)
SHIFTED = datetime(2030, 3, 31, 1, 30, tzinfo=UTC)


def test_scheduler_submitted_before_a_shifted_spring_occurrence_still_runs_it(tmp_path: Path) -> None:
    clock = FixedClock(INSIDE_SHIFT)
    settings = make_settings(tmp_path, {"lab": flat_rows(INSIDE_SHIFT, 3)})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": FakeProvider()})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(
            spec(
                name="nightly",
                duration="1h",
                schedule={"cron": "30 2 * * *", "timezone": "Europe/Berlin", "flex": "1h"},
            )
        )
        assert job.runs[0].nominal == SHIFTED
    finally:
        sched.shutdown()


def test_trigger_started_before_a_shifted_spring_occurrence_fires_it(tmp_path: Path) -> None:
    trig = trigger(tmp_path, INSIDE_SHIFT)
    first = next_fire(trig, None, INSIDE_SHIFT)
    assert first is not None and first.astimezone(UTC) == SHIFTED
