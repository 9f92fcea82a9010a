"""A run planned onto a provider that the daemon launching it does not have configured (its config
changed between planning and launching) ends as missed, with the reason, instead of raising at every
tick (waiting cannot move to failed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from carbonshift.clock import FixedClock
from carbonshift.scheduler import RunState, Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, spec, window
from tests.scheduler.located import located_settings


def test_a_run_whose_provider_is_not_configured_here_is_missed_with_the_reason(tmp_path: Path) -> None:
    settings = located_settings(tmp_path, "gcp", "us-central1")
    clock = FixedClock(NOW)
    planner = Scheduler.from_settings(settings, clock=clock, providers={"gcp": FakeProvider("gcp")})  # type: ignore[dict-item]
    job = planner.submit(
        spec(placement={"regions": ["gcp:us-central1"]}, window=window(NOW, NOW + timedelta(hours=2)))
    )
    planner.shutdown()
    assert job.runs[0].provider == "gcp"

    local = FakeProvider()
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": local})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        sched.tick()
        run = sched.get_run(job.runs[0].id)
        assert run.status is RunState.MISSED and run.error == "provider not configured", run
        assert "no configured provider for any option (wanted gcp)" in run.events[-1].reason
        assert not local.launches
    finally:
        sched.shutdown()
