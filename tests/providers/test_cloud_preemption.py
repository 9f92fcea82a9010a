"""A Spot chunk of an interruptible job that Compute Engine preempts, or Azure evicts, re-plans what is
left of the job instead of failing it (issue 10): the scheduler with the real adapters, through the real
SDKs, against the local fakes of the Compute Engine and Azure Resource Manager APIs (fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.clock import FixedClock
from carbonshift.config import Settings
from carbonshift.providers.azure import AzureProvider
from carbonshift.providers.base import Handle, Provider
from carbonshift.providers.gcp import GcpProvider
from carbonshift.scheduler import RunState, Scheduler
from tests.providers.fakes import FakeArm, FakeComputeEngine
from tests.scheduler.helpers import NOW, spec, window
from tests.scheduler.located import located_settings

# hours 1 and 4 after NOW are the two cheap ones of the 6 h window: a 2 h job in chunks of at least 1 h
# runs 01:00-02:00 and 04:00-05:00
DIPS = (1, 4)


def settings_for(tmp_path: Path, provider: str, region: str) -> Settings:
    """The cloud region as a location of the lab's grid, whose series has the two dips."""
    return located_settings(
        tmp_path,
        provider,
        region,
        lambda h: 100.0 if h - 24 in DIPS else 300.0,
        {"providers": ["local", provider], "replan_interval_s": 1800},
    )


def tick_at(sched: Scheduler, clock: FixedClock, hours: float) -> None:
    clock.advance((NOW + timedelta(hours=hours) - clock.now()).total_seconds())
    sched.tick()


def interrupted_chunk_is_replanned(
    tmp_path: Path,
    name: str,
    adapter: Provider,
    interrupt: Callable[[Handle], None],
    count: Callable[[], int],
) -> None:
    clock = FixedClock(NOW)
    settings = settings_for(tmp_path, name, adapter.regions()[0])
    sched = Scheduler.from_settings(settings, clock=clock, providers={name: adapter})
    sched.start(background=False)
    try:
        job = sched.submit(
            spec(
                name="train",
                duration="2h",
                interruptible=True,
                min_chunk="1h",
                placement={"regions": [f"{name}:{adapter.regions()[0]}"]},
                window=window(NOW, NOW + timedelta(hours=6)),
            )
        )
        first, second = job.runs
        assert first.provider == name and (first.planned_start, second.planned_start) == (
            NOW + timedelta(hours=1),
            NOW + timedelta(hours=4),
        )
        tick_at(sched, clock, 1)
        assert sched.get_run(first.id).status is RunState.RUNNING
        tick_at(sched, clock, 2)  # its planned end: paused (the instance deleted)
        tick_at(sched, clock, 2.01)
        assert sched.get_run(first.id).status is RunState.SUCCEEDED, sched.get_run(first.id).events
        tick_at(sched, clock, 4)
        running = sched.get_run(second.id)
        assert running.status is RunState.RUNNING and count() == 1
        handle = adapter.find(second.id, adapter.regions()[0])
        assert handle is not None and handle.instance_id == running.instance_id
        interrupt(handle)

        tick_at(sched, clock, 4.5)
        after = sched.get_job(job.id)
        interrupted = next(r for r in after.runs if r.id == second.id)
        assert interrupted.status is RunState.FAILED and "interrupted by the cloud" in (
            interrupted.error or ""
        )
        new = [r for r in after.runs if r.id not in (first.id, second.id)]
        # what is left (1 h) is planned from now to the deadline: 04:30-05:30, on a new Spot instance
        assert [(r.planned_start, r.planned_end) for r in new] == [
            (NOW + timedelta(hours=4.5), NOW + timedelta(hours=5.5))
        ]
        assert new[0].status is RunState.RUNNING and new[0].provider == name and count() == 1
        assert any(p.kind == "preemption" and p.adopted for p in after.plans)
        assert after.job_status.value == "active"
    finally:
        sched.shutdown()


def test_a_preempted_compute_engine_spot_chunk_replans_the_rest(
    gce: FakeComputeEngine, tmp_path: Path
) -> None:
    project = "test-project"
    adapter = GcpProvider(
        Settings(gcp_endpoint=gce.url, gcp_project=project), regions=["us-central1"], clock=lambda: NOW
    )

    def preempt(handle: Handle) -> None:
        assert handle.details["spot"] is True
        gce.preempt(str(handle.details["zone"]), handle.instance_id, project)

    interrupted_chunk_is_replanned(tmp_path, "gcp", adapter, preempt, lambda: len(gce.instances))


@pytest.mark.parametrize("policy", ["Delete", "Deallocate"])
def test_an_evicted_azure_spot_chunk_replans_the_rest(arm: FakeArm, tmp_path: Path, policy: str) -> None:
    adapter = AzureProvider(
        Settings(
            azure_endpoint=arm.url,
            azure_subscription_id="00000000-0000-0000-0000-000000000001",
            azure_resource_group="rg-jobs",
        ),
        regions=["westeurope"],
        clock=lambda: NOW,
    )

    def evict(handle: Handle) -> None:
        assert handle.details["spot"] is True
        arm.evict(handle.instance_id, policy)

    def vms() -> int:
        return sum(
            1
            for key in arm.resources
            if "/microsoft.compute/virtualmachines/" in key
            and arm.power.get(key.rsplit("/", 1)[1]) != "deallocated"
        )

    interrupted_chunk_is_replanned(tmp_path, "azure", adapter, evict, vms)
