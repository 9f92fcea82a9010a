"""A finished cloud run's instance is released, and the release is kept in the database until the
provider confirms the instance is gone: retried with backoff across failures and daemon restarts, and
shown by `jobs show` while pending."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from carbonshift.cli.jobs import render_job
from carbonshift.clock import FixedClock
from carbonshift.scheduler import Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window


def _cloud_run(tmp_path: Path, cloud: FakeProvider) -> tuple[Scheduler, FixedClock, str, str]:
    settings = make_settings(tmp_path)
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": cloud})
    sched.start(background=False)
    job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
    run_id = job.runs[0].id
    sched.tick()
    assert sched.get_run(run_id).status == "running"
    return sched, clock, job.id, run_id


def test_a_failed_release_is_kept_retried_with_backoff_across_a_restart_and_confirmed(tmp_path: Path) -> None:
    cloud = FakeProvider(name="aws")  # a cloud provider: its instances are released after the run
    cloud.terminate_failures = 2
    settings = make_settings(tmp_path)
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"aws": cloud})
    sched.start(background=False)
    try:
        job = sched.submit(
            spec(
                placement={"providers": ["aws"], "regions": ["aws:eu-west-1"]},
                window=window(NOW, NOW + timedelta(hours=6)),
            )
        )
        run_id = job.runs[0].id
        sched.tick()
        assert sched.get_run(run_id).status == "running"
        cloud.finish(run_id)
        clock.advance(60)
        sched.tick()  # the run ended: release asked, the first terminate fails
        run = sched.get_run(run_id)
        assert run.status == "succeeded"
        assert run.release is not None and run.release["state"] == "pending" and run.release["attempts"] == 1
        assert "throttled" in (run.release["error"] or "")
        shown = render_job(sched.get_job(job.id).to_dict())
        assert "release pending" in shown and "throttled" in shown
        clock.advance(10)
        sched.tick()  # backoff: not yet due, nothing tried
        assert sched.get_run(run_id).release["attempts"] == 1  # type: ignore[index]
    finally:
        sched.shutdown()

    # a new daemon on the same database picks the pending release up
    clock.advance(30)
    again = Scheduler.from_settings(settings, clock=clock, providers={"aws": cloud})
    again.start(background=False)
    try:
        run = again.get_run(run_id)
        assert run.release is not None and run.release["attempts"] == 2  # tried at start, failed again
        clock.advance(120)
        again.tick()
        run = again.get_run(run_id)
        assert run.release is not None and run.release["state"] == "done" and run.release["released_at"]
        assert cloud.terminated == [run_id]
        assert any("confirms it is gone" in e.reason for e in run.events)
        assert "release pending" not in render_job(again.get_job(job.id).to_dict())
        clock.advance(7200)
        again.tick()
        assert cloud.terminated == [run_id]  # done is done: never asked again
    finally:
        again.shutdown()


def test_local_runs_have_nothing_to_release(tmp_path: Path) -> None:
    cloud = FakeProvider()  # named local
    sched, clock, _, run_id = _cloud_run(tmp_path, cloud)
    try:
        cloud.finish(run_id)
        clock.advance(60)
        sched.tick()
        run = sched.get_run(run_id)
        assert run.status == "succeeded" and run.release is None and cloud.terminated == []
    finally:
        sched.shutdown()
