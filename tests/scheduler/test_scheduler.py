"""The Scheduler's Python API: submit, plan, launch, follow, cancel, reports, metrics, views."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.clock import FixedClock
from carbonshift.errors import UserInputError
from carbonshift.scheduler import NotFoundError, RunState, Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, hourly, make_settings, spec, window


def started(
    tmp_path: Path, provider: FakeProvider | None = None, **kw: object
) -> tuple[Scheduler, FixedClock, FakeProvider]:
    provider = provider or FakeProvider()
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(make_settings(tmp_path, **kw), clock=clock, providers={"local": provider})  # type: ignore[arg-type]
    sched.start(background=False)
    return sched, clock, provider


def test_submit_plans_waits_launches_and_finishes(tmp_path: Path, db_url: str | None) -> None:
    # a dip from 05:00 to 07:00: the 2 h job is planned there
    rows = hourly(NOW - timedelta(days=1), 72, lambda h: 100.0 if h in (29, 30) else 400.0)
    sched, clock, provider = started(tmp_path, series={"lab": rows}, db_url=db_url)
    try:
        job = sched.submit(spec(duration="2h", window=window(NOW, NOW + timedelta(hours=12))))
        assert job.status == "waiting"
        run = job.runs[0]
        assert run.planned_start == NOW + timedelta(hours=5)
        assert run.planned is not None and run.planned["mean_g_per_kwh"] == pytest.approx(100.0)
        assert [p.kind for p in job.plans] == ["initial"] and job.plans[0].adopted
        d = job.to_dict()
        assert d["plan"]["option"]["start"] == "2030-03-05T05:00:00Z"
        assert {"id", "name", "status", "spec", "schedule", "created_at", "plans", "runs"} <= set(d)
        assert {
            "id",
            "status",
            "provider",
            "region",
            "planned_start",
            "planned_end",
            "planned",
            "actual",
            "instance_id",
            "console_url",
            "refusals",
            "error",
            "created_at",
            "updated_at",
        } <= set(d["runs"][0])
        json.dumps(d)  # JSON-ready as is

        clock.advance(4 * 3600)
        sched.tick()
        assert sched.get_job(job.id).runs[0].status is RunState.WAITING  # not due yet
        clock.advance(3600)
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert run.status is RunState.RUNNING and provider.launches == {run.id: 1}
        assert run.instance_id == f"fake-{run.id}"
        assert provider.requests[run.id].report_token  # a per-run secret travels with the launch only

        provider.finish(run.id)
        clock.advance(60)
        sched.tick()
        job = sched.get_job(job.id)
        assert job.status == "succeeded" and job.job_status.value == "done"
        assert sched.cancel(job.id).status == "succeeded"  # an ended job stays as it ended
        states = [(e.from_state, e.to_state) for e in job.runs[0].events]
        assert states == [
            (None, "planned"),
            ("planned", "waiting"),
            ("waiting", "launching"),
            ("launching", "running"),
            ("running", "succeeded"),
        ]
    finally:
        sched.shutdown()


def test_bad_specs_store_nothing(tmp_path: Path) -> None:
    sched, _clock, _p = started(tmp_path)
    try:
        with pytest.raises(UserInputError, match=r"window\.deadline"):
            sched.submit(spec(window=window(NOW - timedelta(hours=3), NOW - timedelta(hours=1))))
        with pytest.raises(UserInputError, match=r"placement\.providers"):
            sched.submit(spec(placement={"providers": ["aws"]}))  # no aws provider configured here
        assert sched.list_jobs() == []
    finally:
        sched.shutdown()


def test_dry_run_stores_nothing(tmp_path: Path) -> None:
    sched = Scheduler.from_settings(make_settings(tmp_path), clock=FixedClock(NOW))
    advice = sched.dry_run(spec(schedule={"cron": "0 22 * * *", "flex": "2h"}))
    # a schedule: its current occurrence while that can still start (22:00 yesterday, 2 h flex: from now)
    assert advice.plan.earliest == NOW
    later = sched.dry_run(spec(schedule={"cron": "0 22 * * *", "flex": "1h"}))  # that window has closed
    assert later.plan.earliest == NOW + timedelta(hours=22)  # so its next occurrence
    assert sched.list_jobs() == []


def test_cancel_waiting_and_running_runs(tmp_path: Path) -> None:
    sched, clock, provider = started(tmp_path)
    try:
        waiting = sched.submit(
            spec(name="later", window=window(NOW + timedelta(hours=3), NOW + timedelta(hours=6)))
        )
        running = sched.submit(spec(name="now", window=window(NOW, NOW + timedelta(hours=6))))
        sched.tick()
        assert sched.get_job(running.id).status == "running"
        cancelled = sched.cancel(waiting.id)
        assert cancelled.status == "cancelled" and cancelled.runs[0].status is RunState.CANCELLED
        stopped = sched.cancel(running.id)
        assert stopped.status == "cancelled" and stopped.runs[0].status is RunState.CANCELLED
        assert provider.terminated == [running.runs[0].id]
        assert sched.cancel(running.id).status == "cancelled"  # twice is harmless
        clock.advance(4 * 3600)
        sched.tick()
        assert provider.launches.keys() == {running.runs[0].id}  # the cancelled waiting run never started
        with pytest.raises(NotFoundError):
            sched.cancel("job-nope")
    finally:
        sched.shutdown()


def test_a_cancel_on_an_instance_that_is_not_active_is_acted_on_by_the_active_one(tmp_path: Path) -> None:
    sched, clock, provider = started(tmp_path)
    client = Scheduler.from_settings(sched.settings, clock=clock, providers={"local": FakeProvider()})  # type: ignore[dict-item]
    try:
        job = client.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        assert job.runs[0].status is RunState.PLANNED  # the client does not schedule: the daemon adopts it
        sched.tick()
        assert client.get_job(job.id).status == "running"
        assert client.cancel(job.id).runs[0].cancel_requested
        sched.tick()  # the active daemon stops it
        sched.tick()
        assert client.get_job(job.id).runs[0].status is RunState.CANCELLED
        assert provider.terminated == [job.runs[0].id]
    finally:
        sched.shutdown()


def test_capacity_refusals_fall_back_to_the_next_best_option(tmp_path: Path) -> None:
    flat = hourly(NOW - timedelta(days=1), 72, lambda h: 100.0)
    dirtier = hourly(NOW - timedelta(days=1), 72, lambda h: 200.0)
    provider = FakeProvider(refuse={"clean"})
    sched, _clock, _ = started(tmp_path, provider, series={"clean": flat, "other": dirtier})
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        assert job.runs[0].region == "clean"
        sched.tick()
        job = sched.get_job(job.id)
        run = job.runs[0]
        assert run.status is RunState.RUNNING and run.region == "other"
        assert [r["region"] for r in run.refusals] == ["clean"] and run.refusals[0]["code"] == "FAKE_CAPACITY"
        assert [p.kind for p in job.plans] == ["initial", "capacity"]
        assert "local:clean refused (no capacity for this shape (FAKE_CAPACITY))" in job.plans[1].reason
    finally:
        sched.shutdown()


def test_every_option_refused_fails_with_the_refusals(tmp_path: Path) -> None:
    sched, _clock, _ = started(tmp_path, FakeProvider(refuse={"lab"}))
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert run.status is RunState.FAILED and "refused" in (run.events[-1].reason)
        assert len(run.refusals) == 1
    finally:
        sched.shutdown()


def test_record_report_checks_the_token_and_ends_the_run(tmp_path: Path) -> None:
    sched, _clock, provider = started(tmp_path)
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        sched.tick()
        run_id = job.runs[0].id
        token = provider.requests[run_id].report_token
        assert token
        with pytest.raises(PermissionError):
            sched.record_report(run_id, "not-the-token", {"exit_code": 0})
        with pytest.raises(NotFoundError):
            sched.record_report("run-nope", token, {})
        view = sched.record_report(
            run_id, token, {"exit_code": 0, "energy_kwh": 0.5, "kg_co2e": 0.1, "mean_g_per_kwh": 200.0}
        )
        assert view.status is RunState.SUCCEEDED
        assert view.actual is not None and view.actual["kg_co2e"] == 0.1 and view.actual["source"] == "remote"
        m = sched.metrics()
        assert m["runs_by_status"]["succeeded"] == 1 and m["actual_kg_co2e"] == pytest.approx(0.1)
        assert m["planned_kg_co2e"] > 0 and m["runs_launched"] == 1
        # the token is stored only as a hash
        db = sqlite3.connect(tmp_path / "data" / "carbonshift.db")
        assert token not in json.dumps(db.execute("SELECT * FROM runs").fetchall())
    finally:
        sched.shutdown()


def test_not_found(tmp_path: Path) -> None:
    sched = Scheduler.from_settings(make_settings(tmp_path), clock=FixedClock(NOW))
    with pytest.raises(NotFoundError):
        sched.get_job("job-nope")
    with pytest.raises(NotFoundError):
        sched.run_log("job-nope", "run-nope")
    job = sched.submit(spec(window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=6))))
    with pytest.raises(NotFoundError, match="not started"):
        sched.run_log(job.id, job.runs[0].id)


def test_the_watchdog_stops_a_run_past_its_deadline_and_fails_it(tmp_path: Path) -> None:
    sched, clock, provider = started(tmp_path, scheduler={"watchdog_margin_s": 600})
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=2))))
        sched.tick()
        run_id = sched.get_job(job.id).runs[0].id
        clock.advance(2 * 3600 + 599)  # within the margin: left alone
        sched.tick()
        assert provider.terminated == []
        clock.advance(2)
        sched.tick()  # overdue: stopped
        assert provider.terminated == [run_id]
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert run.status is RunState.FAILED
        assert (
            run.error is not None
            and run.error.startswith("overdue:")
            and "deadline 2030-03-05T02:00:00Z" in run.error
        )
    finally:
        sched.shutdown()


def test_the_daemon_plans_the_hardware_it_launches(tmp_path: Path) -> None:
    """A spec with hardware_options is launched on the alternative its plan chose, for that
    alternative's duration: what is planned is what runs (tests/scheduler/test_hardware_choice.py has
    the rest)."""
    settings = make_settings(tmp_path, {"lab": hourly(NOW, 48, lambda h: 300.0)})
    provider = FakeProvider()
    sched = Scheduler.from_settings(settings, clock=FixedClock(NOW), providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(spec(name="alt", duration="4h", hardware_options=[{"gpus": 0, "speedup": 4}]))
        (run,) = job.runs
        assert run.planned is not None and run.planned["hardware"]["option"] == 1
        assert run.planned_end - run.planned_start == timedelta(hours=1)
        sched.tick()
        assert provider.requests[run.id].spec.duration == timedelta(hours=1)
    finally:
        sched.shutdown()
