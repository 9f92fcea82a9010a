"""The scheduler's side of queueing ahead (scheduler/queueing.py), with an in-memory provider that has
the `Queueing` capability: a run is prepared once for its planned start; at an engine that starts queued
runs itself it is not declared missed by a late daemon (the engine has it); at one that holds them, a
run missed ends with its queued job released; a refusal at `prepare` is noted once and the run is then
launched at its planned start as on any provider."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.clock import FixedClock
from carbonshift.providers.base import HELD, CapacityError, Handle, InstanceState, LaunchRequest, Queueing
from carbonshift.scheduler import RunState, Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, spec, window
from tests.scheduler.located import located_settings

NAME = "hpc"


class QueueingProvider(FakeProvider):
    """FakeProvider plus `prepare`: the queued job is the run's handle (launch then returns it)."""

    def __init__(self, starts_queued: bool, refuse_prepare: bool = False) -> None:
        super().__init__(NAME)
        self.starts_queued = starts_queued
        self.refuse_prepare = refuse_prepare
        self.prepared: list[LaunchRequest] = []

    def prepare(self, request: LaunchRequest) -> Handle:
        self.prepared.append(request)
        if self.refuse_prepare:
            raise CapacityError(NAME, request.region, "queue full", "QueueFull")
        handle = Handle(
            NAME, request.region, request.run_id, f"q-{request.run_id}", None, {HELD: not self.starts_queued}
        )
        self.handles[request.run_id] = handle
        self.states[request.run_id] = InstanceState.PENDING
        return handle


def daemon(tmp_path: Path, provider: QueueingProvider, clock: FixedClock) -> Scheduler:
    settings = located_settings(tmp_path, NAME, "lab", scheduler={"replan_interval_s": 86400})
    assert isinstance(provider, Queueing)
    sched = Scheduler.from_settings(settings, clock=clock, providers={NAME: provider})  # type: ignore[dict-item]
    sched.start(background=False)
    return sched


def submit(sched: Scheduler) -> str:
    """A 1 h run that may start from NOW + 1 h; its latest start is NOW + 2 h."""
    job = sched.submit(
        spec(
            placement={"regions": [f"{NAME}:lab"]},
            window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=3)),
        )
    )
    run = job.runs[0]
    assert run.provider == NAME and run.planned_start == NOW + timedelta(hours=1)
    return run.id


@pytest.mark.parametrize("starts_queued", [True, False])
def test_a_run_is_prepared_once_and_a_late_daemon_misses_it_only_where_the_engine_holds_it(
    tmp_path: Path, starts_queued: bool
) -> None:
    clock = FixedClock(NOW)
    provider = QueueingProvider(starts_queued)
    sched = daemon(tmp_path, provider, clock)
    try:
        run_id = submit(sched)
        sched.tick()
        sched.tick()
        assert [r.not_before for r in provider.prepared] == [NOW + timedelta(hours=1)]
        run = sched.get_run(run_id)
        assert run.status is RunState.WAITING and run.instance_id == f"q-{run_id}"

        clock.advance(2.5 * 3600)  # the daemon was away past the run's latest start
        sched.tick()
        run = sched.get_run(run_id)
        if starts_queued:  # the engine started it at its time: recorded, not missed
            assert run.status is RunState.RUNNING, [e.reason for e in run.events]
            assert provider.launches == {} and provider.terminated == []
        else:  # held until a launch that never came: missed, and its queued job released
            assert run.status is RunState.MISSED
            sched.tick()
            assert provider.terminated == [run_id]
            assert (sched.get_run(run_id).release or {}).get("state") == "done"
    finally:
        sched.shutdown()


def test_a_refusal_to_queue_is_noted_once_and_the_run_launches_at_its_start(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    provider = QueueingProvider(starts_queued=True, refuse_prepare=True)
    sched = daemon(tmp_path, provider, clock)
    try:
        run_id = submit(sched)
        sched.tick()
        sched.tick()
        assert len(provider.prepared) == 1
        run = sched.get_run(run_id)
        assert run.status is RunState.WAITING and run.instance_id is None
        assert any("not queued ahead on hpc:lab" in e.reason and "queue full" in e.reason for e in run.events)

        clock.advance(3600)
        sched.tick()
        assert sched.get_run(run_id).status is RunState.RUNNING and provider.launches == {run_id: 1}
    finally:
        sched.shutdown()


def test_a_recurring_run_is_not_queued_at_a_self_starting_engine_while_another_run_is_active(
    tmp_path: Path,
) -> None:
    """The schedule's overlap rule is the launcher's: the next occurrence is queued at Slurm-like
    engines only once the run before it has ended."""
    clock = FixedClock(NOW)
    provider = QueueingProvider(starts_queued=True)
    sched = daemon(tmp_path, provider, clock)
    try:
        job = sched.submit(
            spec(
                duration="30m",
                placement={"regions": [f"{NAME}:lab"]},
                schedule={"cron": "0 * * * *", "flex": "10m"},
            )
        )
        first = job.runs[0]
        assert first.planned_start == NOW
        sched.tick()  # the first occurrence launches now; the next one is planned
        sched.tick()
        runs = sched.get_job(job.id).runs
        assert sched.get_run(first.id).status is RunState.RUNNING
        second = next(r for r in runs if r.id != first.id)
        assert second.status is RunState.WAITING and second.planned_start == NOW + timedelta(hours=1)
        assert provider.prepared == []  # not while the first is running

        provider.finish(first.id)
        sched.tick()
        sched.tick()
        assert [r.run_id for r in provider.prepared] == [second.id]
        assert provider.prepared[0].not_before == NOW + timedelta(hours=1)
    finally:
        sched.shutdown()
