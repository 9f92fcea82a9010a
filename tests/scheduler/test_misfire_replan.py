"""Runs that came due while the daemon was down, and re-planning with fresh forecasts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.clock import FixedClock
from carbonshift.scheduler import RunState, Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, hourly, make_settings, spec, window, write_series


def restart(sched: Scheduler, clock: FixedClock, provider: FakeProvider) -> Scheduler:
    again = Scheduler.from_settings(sched.settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    again.start(background=False)
    return again


def test_a_run_due_during_downtime_runs_at_restart_if_its_deadline_allows_else_is_missed(
    tmp_path: Path, db_url: str | None
) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = Scheduler.from_settings(
        make_settings(tmp_path, db_url=db_url), clock=clock, providers={"local": provider}
    )  # type: ignore[dict-item]
    sched.start(background=False)
    roomy = sched.submit(
        spec(name="roomy", window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=4)))
    )
    tight = sched.submit(
        spec(name="tight", window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=3)))
    )
    sched.shutdown()
    clock.advance(2.5 * 3600)  # both came due at 01:00; it is 02:30 when the daemon is back
    again = restart(sched, clock, provider)
    try:
        run = again.get_job(roomy.id).runs[0]
        assert run.status is RunState.RUNNING  # 02:30 + 1 h <= 04:00
        assert "5400 s after its planned start" in run.events[-2].reason
        missed = again.get_job(tight.id).runs[0]
        assert missed.status is RunState.MISSED  # 02:30 + 1 h > 03:00
        reason = missed.events[-1].reason
        assert "latest start 2030-03-05T02:00:00Z" in reason and "deadline 2030-03-05T03:00:00Z" in reason
        assert again.get_job(tight.id).status == "missed"
        assert list(provider.launches) == [run.id]
    finally:
        again.shutdown()


def test_misfire_grace_limits_how_late_a_run_may_start(tmp_path: Path, db_url: str | None) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    settings = make_settings(tmp_path, scheduler={"misfire_grace_s": 600}, db_url=db_url)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    job = sched.submit(spec(window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=6))))
    sched.shutdown()
    clock.advance(3600 + 601)
    again = restart(sched, clock, provider)
    try:
        run = again.get_job(job.id).runs[0]
        assert run.status is RunState.MISSED and "misfire_grace_s (600 s)" in run.events[-1].reason
    finally:
        again.shutdown()


def dip_at(hour: int, value: float, base: float = 300.0) -> list:  # type: ignore[type-arg]
    return hourly(NOW - timedelta(days=1), 72, lambda h: value if h == 24 + hour else base)


def test_replanning_moves_only_above_the_threshold_and_keeps_every_plan(
    tmp_path: Path, db_url: str | None
) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    settings = make_settings(
        tmp_path, {"lab": dip_at(10, 100.0)}, scheduler={"replan_min_gain_pct": 5}, db_url=db_url
    )
    csv = tmp_path / "lab.csv"
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=20))))
        assert job.runs[0].planned_start == NOW + timedelta(hours=10)

        sched.tick()  # not due for a re-plan yet
        assert len(sched.get_job(job.id).plans) == 1

        # new forecast: 06:00 is 3 % cleaner than 10:00 -> under the threshold, kept
        write_series(
            csv, [*dip_at(10, 100.0)[:30], (NOW + timedelta(hours=6), 97.0), *dip_at(10, 100.0)[31:]]
        )
        clock.advance(1800)
        sched.tick()
        job = sched.get_job(job.id)
        assert [p.kind for p in job.plans] == ["initial", "replan"]
        kept = job.plans[1]
        assert not kept.adopted and not kept.moved and kept.gain_pct is not None and 2.9 < kept.gain_pct < 3.1
        assert kept.reason.startswith("kept:") and "under the 5% threshold" in kept.reason
        assert job.runs[0].planned_start == NOW + timedelta(hours=10)

        # newer forecast: 06:00 at 50 -> half the emissions: moved
        write_series(
            csv, [*dip_at(10, 100.0)[:30], (NOW + timedelta(hours=6), 50.0), *dip_at(10, 100.0)[31:]]
        )
        clock.advance(1800)
        sched.tick()
        job = sched.get_job(job.id)
        moved = job.plans[2]
        assert (
            moved.adopted
            and moved.moved
            and moved.reason.startswith("moved:")
            and moved.gain_pct == pytest.approx(50.0)
        )
        assert job.runs[0].planned_start == NOW + timedelta(hours=6)
        assert job.plan is not None and job.plan.id == moved.id
        assert any("re-planned" in e.reason for e in job.runs[0].events)

        # nothing changed: kept, still the best
        clock.advance(1800)
        sched.tick()
        job = sched.get_job(job.id)
        assert job.plans[3].reason.startswith("kept:") and "still the best" in job.plans[3].reason
        assert [p.generated_at for p in job.plans] == sorted(p.generated_at for p in job.plans)
    finally:
        sched.shutdown()


def test_a_run_is_replanned_once_shortly_before_it_starts(tmp_path: Path, db_url: str | None) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    settings = make_settings(
        tmp_path,
        {"lab": dip_at(10, 100.0)},
        scheduler={"replan_before_start_s": 600, "replan_interval_s": 86400},
        db_url=db_url,
    )
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=20))))
        clock.advance(9 * 3600 + 50 * 60)  # 09:50, ten minutes before the planned start
        sched.tick()
        clock.advance(60)
        sched.tick()
        plans = sched.get_job(job.id).plans
        assert [p.kind for p in plans] == ["initial", "prestart"]
    finally:
        sched.shutdown()
