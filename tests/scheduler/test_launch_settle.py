"""A launch that ends without a clear answer is settled by asking the provider, not recorded as failed.

Through the real daemon and the real google-cloud-compute client against the local Compute Engine
fake: an operation that times out after the instance was created (the run must become running on
that instance, never launched twice, never leaked), and an unclear error with no instance (the run is
asked for on a bounded number of ticks, then declared lost with an orphan check asked for)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.clock import FixedClock
from carbonshift.providers.gcp import GcpProvider
from carbonshift.scheduler.core import Scheduler
from tests.providers.fakes import FakeComputeEngine
from tests.scheduler.helpers import NOW, make_settings, spec, window

REGION = "us-central1"


@pytest.fixture
def gce() -> Iterator[FakeComputeEngine]:
    fake = FakeComputeEngine()
    yield fake
    fake.close()


def _daemon(
    tmp_path: Path, gce: FakeComputeEngine, **scheduler: Any
) -> tuple[Scheduler, FixedClock, GcpProvider]:
    settings = make_settings(
        tmp_path,
        scheduler={"providers": ["gcp"], **scheduler},
        gcp_endpoint=gce.url,
        gcp_project="test-project",
        bootstrap_source="index",  # no daemon serving a wheel here: install from the index, as set
    )
    clock = FixedClock(NOW)
    gcp = GcpProvider(settings, regions=[REGION], clock=clock.now)
    gcp.operation_timeout_s = 0.3  # a short wait, so the timeout happens within the test
    sched = Scheduler.from_settings(settings, clock=clock, providers={"gcp": gcp})
    sched.start(background=False)
    return sched, clock, gcp


def _submit(sched: Scheduler) -> str:
    job = sched.submit(
        spec(
            placement={"providers": ["gcp"], "regions": [f"gcp:{REGION}"]},
            hardware={"vcpus": 2, "memory_gb": 8},
            window=window(NOW, NOW + timedelta(hours=6)),
        )
    )
    return job.runs[0].id


def _inserts(gce: FakeComputeEngine) -> int:
    return sum(1 for r in gce.requests if r.method == "POST" and r.path.endswith("/instances"))


def test_a_launch_whose_operation_times_out_after_the_instance_exists_runs_on_that_instance(
    tmp_path: Path, gce: FakeComputeEngine
) -> None:
    gce.pending_polls = 10**6  # the insert operation never reports DONE, but the instance is there
    sched, clock, _ = _daemon(tmp_path, gce)
    try:
        run_id = _submit(sched)
        sched.tick()  # due now: the launch call times out waiting for its operation
        run = sched.get_run(run_id)
        assert run.status == "launching", run  # not failed: the instance may exist (it does)
        assert len(gce.instances) == 1
        clock.advance(30)
        sched.tick()  # the provider is asked for the run id: it has the instance
        run = sched.get_run(run_id)
        assert run.status == "running" and run.instance_id, run
        assert _inserts(gce) == 1 and len(gce.instances) == 1  # launched once, nothing leaked
    finally:
        sched.shutdown()


def test_an_unclear_error_with_no_instance_is_looked_for_a_bounded_number_of_times_then_lost(
    tmp_path: Path, gce: FakeComputeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    gce.operation_error = {"errors": [{"code": "INTERNAL_ERROR", "message": "Internal error. Try again."}]}
    sched, clock, _ = _daemon(tmp_path, gce, launch_settle_looks=3)
    try:
        run_id = _submit(sched)
        sched.tick()
        assert sched.get_run(run_id).status == "launching"
        for _ in range(2):  # looks 1 and 2 of 3: still waiting for an answer
            clock.advance(30)
            sched.tick()
            assert sched.get_run(run_id).status == "launching"
        clock.advance(30)
        with caplog.at_level("WARNING", logger="carbonshift.scheduler.launcher"):
            sched.tick()  # look 3: declared lost
        run = sched.get_run(run_id)
        assert run.status == "failed" and run.error == "launch outcome unknown: lost"
        assert "providers orphans --provider gcp" in run.events[-1].reason
        assert any("orphans" in r.getMessage() for r in caplog.records)
        assert _inserts(gce) == 1  # never relaunched blindly
    finally:
        sched.shutdown()
