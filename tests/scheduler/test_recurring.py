"""Recurring schedules with an injected clock: one run per occurrence, each planned in its own
window; overlap policies; occurrences that passed while no daemon was running."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from carbonshift.clock import FixedClock
from carbonshift.scheduler import RunState, Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, hourly, make_settings, spec

DAY = 24 * 3600


def nightly_rows() -> list:  # type: ignore[type-arg]
    # every day: 400 g/kWh, except 23:00-24:00 (UTC) at 100
    return hourly(NOW - timedelta(days=1), 24 * 12, lambda h: 100.0 if h % 24 == 23 else 400.0)


def nightly(overlap: str = "skip"):  # type: ignore[no-untyped-def]
    return spec(
        name="nightly", duration="1h", schedule={"cron": "0 22 * * *", "flex": "2h", "overlap": overlap}
    )


def setup(
    tmp_path: Path, db_url: str | None = None, watchdog: bool = True
) -> tuple[Scheduler, FixedClock, FakeProvider]:
    # a minute past the latest start (00:00) of yesterday's 22:00 occurrence, so the first occurrence
    # is tonight's (at 00:00 itself yesterday's could still run: its window fits the job exactly)
    clock = FixedClock(NOW + timedelta(minutes=1))
    provider = FakeProvider()
    # the overlap tests keep a run going past its deadline, which the watchdog would stop
    extra = {} if watchdog else {"watchdog_margin_s": None}
    settings = make_settings(tmp_path, {"lab": nightly_rows()}, db_url=db_url, scheduler=extra)
    s = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    s.start(background=False)
    return s, clock, provider


def test_each_occurrence_is_planned_in_its_own_window(tmp_path: Path, db_url: str | None) -> None:
    sched, clock, provider = setup(tmp_path, db_url)
    try:
        job = sched.submit(nightly())
        assert job.status == "scheduled"
        first = job.runs[0]
        assert first.nominal == NOW + timedelta(hours=22)
        assert first.planned_start == NOW + timedelta(hours=23)  # the dip, within [22:00, 24:00]
        assert (first.window_earliest, first.deadline) == (
            NOW + timedelta(hours=22),
            NOW + timedelta(hours=25),
        )
        assert job.schedule is not None and job.schedule["next_occurrence"] == "2030-03-05T22:00:00Z"

        clock.advance(23 * 3600)
        sched.tick()
        sched.tick()
        job = sched.get_job(job.id)
        assert [r.status for r in job.runs] == [RunState.RUNNING, RunState.WAITING]
        second = job.runs[1]
        assert second.nominal == NOW + timedelta(days=1, hours=22)
        assert second.planned_start == NOW + timedelta(days=1, hours=23)
        provider.finish(first.id)

        clock.advance(DAY)
        sched.tick()
        job = sched.get_job(job.id)
        assert [r.status for r in job.runs][:2] == [RunState.SUCCEEDED, RunState.RUNNING]
        assert job.status == "scheduled" and set(provider.launches.values()) == {1}
        assert len({r.nominal for r in job.runs}) == len(job.runs)  # one run per occurrence
    finally:
        sched.shutdown()


def test_overlap_skip_records_a_missed_occurrence_with_the_reason(tmp_path: Path) -> None:
    sched, clock, _provider = setup(tmp_path, watchdog=False)
    try:
        job = sched.submit(nightly("skip"))
        clock.advance(23 * 3600)
        sched.tick()  # the first occurrence starts, and never ends
        clock.advance(DAY)
        sched.tick()
        sched.tick()
        runs = sched.get_job(job.id).runs
        assert runs[0].status is RunState.RUNNING and runs[1].status is RunState.MISSED
        assert (
            "schedule.overlap: skip" in runs[1].events[-1].reason and runs[0].id in runs[1].events[-1].reason
        )
        assert runs[2].status is RunState.WAITING  # the next one is planned as usual
    finally:
        sched.shutdown()


def test_overlap_queue_starts_after_the_previous_run_if_the_window_allows(tmp_path: Path) -> None:
    sched, clock, provider = setup(tmp_path, watchdog=False)
    try:
        job = sched.submit(nightly("queue"))
        clock.advance(23 * 3600)
        sched.tick()
        first = sched.get_job(job.id).runs[0]
        clock.advance(DAY)  # day 2, 23:00: the second occurrence is due, the first still runs
        sched.tick()
        sched.tick()
        second = sched.get_job(job.id).runs[1]
        assert second.status is RunState.WAITING and second.note and "queued behind" in second.note
        provider.finish(first.id)
        clock.advance(30 * 60)  # 23:30: the first has ended; 23:30 + 1 h <= the 01:00 deadline
        sched.tick()
        second = sched.get_job(job.id).runs[1]
        assert second.status is RunState.RUNNING
        # the third occurrence queues too, but its first run outlives its window: missed, with why
        clock.advance(DAY)
        sched.tick()
        clock.advance(2 * 3600)
        sched.tick()
        third = sched.get_job(job.id).runs[2]
        assert third.status is RunState.MISSED and "latest start" in third.events[-1].reason
    finally:
        sched.shutdown()


def test_occurrences_that_passed_during_downtime_are_recorded_and_the_next_is_planned(
    tmp_path: Path, db_url: str | None
) -> None:
    sched, clock, provider = setup(tmp_path, db_url)
    job = sched.submit(nightly())
    first = job.runs[0]
    sched.shutdown()  # down from 00:00 on day 1 until 22:30 on day 4
    clock.advance(3 * DAY + 22.5 * 3600)
    again = Scheduler.from_settings(sched.settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    again.start(background=False)
    try:
        runs = again.get_job(job.id).runs
        by_nominal = {r.nominal: r for r in runs}
        # days 1, 2 and 3: their windows closed while no daemon ran (day 1's run was planned, then missed)
        for day in (0, 1, 2):
            run = by_nominal[NOW + timedelta(days=day, hours=22)]
            assert run.status is RunState.MISSED, run.status
            assert "latest start" in run.events[-1].reason or "no daemon was running" in run.events[-1].reason
        assert by_nominal[NOW + timedelta(hours=22)].id == first.id
        # day 4: its window is still open (22:30 <= 24:00): planned within what is left of it
        today = by_nominal[NOW + timedelta(days=3, hours=22)]
        assert today.status is RunState.WAITING and today.planned_start == NOW + timedelta(days=3, hours=23)
        assert provider.launches == {}
    finally:
        again.shutdown()


def test_cancel_stops_future_occurrences(tmp_path: Path) -> None:
    sched, clock, provider = setup(tmp_path)
    try:
        job = sched.submit(nightly())
        assert sched.cancel(job.id).status == "cancelled"
        clock.advance(3 * DAY)
        sched.tick()
        assert [r.status for r in sched.get_job(job.id).runs] == [RunState.CANCELLED]
        assert provider.launches == {}
    finally:
        sched.shutdown()


def test_a_job_submitted_inside_tonights_window_runs_tonight(tmp_path: Path, db_url: str | None) -> None:
    """Submitted at 22:04 with a 22:00 + 2 h flex window: tonight's occurrence is planned (issue 16),
    in what is left of its window, not tomorrow's."""
    sched, clock, _provider = setup(tmp_path, db_url)
    try:
        clock.advance(22 * 3600 + 3 * 60)  # 22:04
        job = sched.submit(nightly())
        (first,) = job.runs
        assert first.nominal == NOW + timedelta(hours=22)
        assert first.planned_start == NOW + timedelta(hours=23)  # the dip, still ahead tonight
        assert first.deadline == NOW + timedelta(hours=25)
    finally:
        sched.shutdown()
