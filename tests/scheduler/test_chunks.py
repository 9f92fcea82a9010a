"""Interruptible jobs executed as planned, in chunks (issue 10, defect 9): one run per chunk, launched
at its planned start and paused at its planned end, with the chunk's index and count and a checkpoint
directory kept across the job's chunks; a failed chunk fails the job, a cloud interruption re-plans
what is left, and a re-plan moves the chunks not yet started together."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.clock import FixedClock
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus
from carbonshift.scheduler import RunState, Scheduler
from carbonshift.scheduler.models import RunRow
from tests.scheduler.helpers import (
    NOW,
    FakeProvider,
    hourly,
    make_settings,
    spec,
    wait_for,
    window,
    write_series,
)

# hours 1 and 4 (after NOW) are the two cheap ones of the 6 h window: a 2 h job in chunks of at least
# 1 h runs 01:00-02:00 and 04:00-05:00
DIPS = (1, 4)


def two_dips(dips: tuple[int, ...] = DIPS) -> list[tuple[object, float]]:
    return hourly(NOW - timedelta(days=1), 72, lambda h: 100.0 if h - 24 in dips else 300.0)  # type: ignore[return-value]


def chunked_spec(**fields: object) -> object:
    data: dict[str, object] = {
        "name": "train",
        "duration": "2h",
        "interruptible": True,
        "min_chunk": "1h",
        "window": window(NOW, NOW + timedelta(hours=6)),
    }
    data.update(fields)
    return spec(**data)


def at(hours: float) -> object:
    return NOW + timedelta(hours=hours)


def daemon(tmp_path: Path, clock: FixedClock, provider: FakeProvider | None, **cfg: object) -> Scheduler:
    settings = make_settings(tmp_path, {"lab": two_dips()}, scheduler=dict(cfg))  # type: ignore[dict-item]
    providers = None if provider is None else {"local": provider}
    sched = Scheduler.from_settings(settings, clock=clock, providers=providers)  # type: ignore[arg-type]
    sched.start(background=False)
    return sched


def tick_at(sched: Scheduler, clock: FixedClock, hours: float) -> None:
    """Move the clock to NOW + hours (forward only) and run one tick."""
    clock.advance((NOW + timedelta(hours=hours) - clock.now()).total_seconds())
    sched.tick()


def test_an_interruptible_job_runs_as_its_planned_chunks_each_stopped_at_its_end(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        first, second = job.runs
        assert [r.chunk for r in job.runs] == [
            {"index": 1, "count": 2, "stop_at": "2030-03-05T02:00:00Z"},
            {"index": 2, "count": 2, "stop_at": None},  # the last chunk runs until the job exits
        ]
        assert (first.planned_start, first.planned_end) == (at(1), at(2))
        assert (second.planned_start, second.planned_end) == (at(4), at(5))
        assert all(r.status is RunState.WAITING for r in job.runs)
        # the plan's kg CO2e is shared by the chunks, not counted once per chunk
        assert first.planned is not None and second.planned is not None
        plan_kg = sched.get_job(job.id).plans[0].option["kg_co2e"]  # type: ignore[index]
        assert first.planned["kg_co2e"] + second.planned["kg_co2e"] == pytest.approx(plan_kg, rel=1e-4)

        tick_at(sched, clock, 0.5)
        assert provider.launches == {}
        tick_at(sched, clock, 1)
        assert sched.get_run(first.id).status is RunState.RUNNING and second.id not in provider.launches
        env = provider.requests[first.id].env
        checkpoints = tmp_path / "data" / "scheduler" / "checkpoints" / job.id
        assert env == {
            "CARBONSHIFT_CHUNK_INDEX": "1",
            "CARBONSHIFT_CHUNK_COUNT": "2",
            "CARBONSHIFT_CHECKPOINT_DIR": str(checkpoints),
        }
        assert checkpoints.is_dir()

        tick_at(sched, clock, 1.9)
        assert provider.terminated == []
        tick_at(sched, clock, 2)  # its planned end: stopped (the fake ends at once), then recorded
        assert provider.terminated == [first.id]
        tick_at(sched, clock, 2.01)
        paused = sched.get_run(first.id)
        assert paused.status is RunState.SUCCEEDED and paused.error is None
        assert paused.note == "paused at its planned end (chunk 1/2)"
        assert "paused at its planned end (chunk 1/2)" in paused.events[-1].reason
        assert sched.get_job(job.id).job_status.value == "active"

        tick_at(sched, clock, 4)
        assert sched.get_run(second.id).status is RunState.RUNNING
        assert provider.requests[second.id].env["CARBONSHIFT_CHUNK_INDEX"] == "2"
        assert provider.requests[second.id].env["CARBONSHIFT_CHECKPOINT_DIR"] == str(checkpoints)
        tick_at(sched, clock, 5.5)  # the last chunk is not stopped at its planned end
        assert provider.terminated == [first.id]
        provider.states[second.id] = InstanceState.SUCCEEDED
        tick_at(sched, clock, 5.6)
        done = sched.get_job(job.id)
        assert done.status == "succeeded" and done.job_status.value == "done"
        assert done.plan is not None and done.plan.id == done.runs[0].planned["plan_id"]  # type: ignore[index]
        assert sum((r.planned_end - r.planned_start for r in done.runs), timedelta()) == timedelta(hours=2)  # type: ignore[operator]
    finally:
        sched.shutdown()


def test_a_failed_chunk_fails_the_job_and_cancels_the_chunks_not_started(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        first, second = job.runs
        tick_at(sched, clock, 1)
        provider.states[first.id] = InstanceState.FAILED
        tick_at(sched, clock, 1.5)
        after = sched.get_job(job.id)
        assert [r.status for r in after.runs] == [RunState.FAILED, RunState.CANCELLED]
        assert "chunk 1/2 failed" in (after.runs[1].error or "")
        assert after.status == "failed" and after.job_status.value == "done"
        assert "chunk 1/2 failed" in (after.status_reason or "")
        tick_at(sched, clock, 4)
        assert second.id not in provider.launches
    finally:
        sched.shutdown()


def test_a_chunk_that_exits_0_before_its_end_ends_the_job(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        tick_at(sched, clock, 1)
        provider.states[job.runs[0].id] = InstanceState.SUCCEEDED
        tick_at(sched, clock, 1.5)
        after = sched.get_job(job.id)
        assert [r.status for r in after.runs] == [RunState.SUCCEEDED, RunState.CANCELLED]
        assert after.status == "succeeded" and after.job_status.value == "done"
    finally:
        sched.shutdown()


class PreemptingProvider(FakeProvider):
    """A cloud whose spot capacity is taken back: runs in `preempted` report what AWS reports."""

    def __init__(self) -> None:
        super().__init__()
        self.preempted: set[str] = set()

    def status(self, handle: Handle) -> InstanceStatus:
        if handle.run_id in self.preempted:
            return InstanceStatus(InstanceState.FAILED, None, "stopped (Server.SpotInstanceTermination)")
        return super().status(handle)


def test_a_preempted_chunk_replans_the_time_left_instead_of_failing_the_job(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), PreemptingProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        first, second = job.runs
        tick_at(sched, clock, 1)
        tick_at(sched, clock, 2)
        tick_at(sched, clock, 2.01)  # chunk 1/2 paused: 1 h done
        assert sched.get_run(first.id).status is RunState.SUCCEEDED
        tick_at(sched, clock, 4)
        provider.preempted.add(second.id)
        tick_at(sched, clock, 4.5)
        after = sched.get_job(job.id)
        interrupted = next(r for r in after.runs if r.id == second.id)
        assert interrupted.status is RunState.FAILED and "interrupted by the cloud" in (
            interrupted.error or ""
        )
        new = [r for r in after.runs if r.id not in (first.id, second.id)]
        # what is left (1 h: chunk 1/2 ran to its end) is planned from now to the deadline: the
        # cheapest hour left is 04:30-05:30 (half of the 04:00 dip), so it starts at once
        assert [(r.planned_start, r.planned_end) for r in new] == [(at(4.5), at(5.5))]
        assert new[0].chunk == {"index": 3, "count": 3, "stop_at": None}
        assert new[0].status is RunState.RUNNING and provider.launches[new[0].id] == 1
        assert after.job_status.value == "active" and "re-planned after chunk 2/2" in (
            after.status_reason or ""
        )
        assert any(p.kind == "preemption" and p.adopted for p in after.plans)
        provider.states[new[0].id] = InstanceState.SUCCEEDED
        tick_at(sched, clock, 5)
        assert sched.get_job(job.id).status == "succeeded"
    finally:
        sched.shutdown()


def test_replanning_moves_the_chunks_not_started_together(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider, replan_min_gain_pct=5)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        second = job.runs[1]
        tick_at(sched, clock, 1)  # chunk 1/2 running
        # fresh forecasts: hour 5 is now much cheaper than hour 4
        hours = {1: 100.0, 4: 250.0, 5: 20.0}
        write_series(
            tmp_path / "lab.csv", hourly(NOW - timedelta(days=1), 72, lambda h: hours.get(h - 24, 300.0))
        )
        clock.advance(3600)  # 02:00: chunk 1/2 paused, and the re-plan is due
        sched.tick()
        sched.tick()
        after = sched.get_job(job.id)
        moved = next(r for r in after.runs if r.id == second.id)
        assert moved.status is RunState.WAITING
        assert (moved.planned_start, moved.planned_end) == (at(5), at(6))
        assert moved.chunk == {"index": 2, "count": 2, "stop_at": None}
        assert any(p.kind == "replan" and p.adopted for p in after.plans)
        assert len(after.runs) == 2
    finally:
        sched.shutdown()


CHUNK_JOB = """
import os, pathlib, signal, sys, time
ckpt = pathlib.Path(os.environ["CARBONSHIFT_CHECKPOINT_DIR"])
index, count = os.environ["CARBONSHIFT_CHUNK_INDEX"], os.environ["CARBONSHIFT_CHUNK_COUNT"]
seen = sorted(p.name for p in ckpt.iterdir())
(ckpt / f"chunk-{index}.txt").write_text(f"{index}/{count} saw {','.join(seen)}")
if index == count:
    sys.exit(0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
time.sleep(120)
"""


@pytest.mark.skipif(os.name != "posix", reason="local runs stop with signals")
def test_local_chunks_get_their_env_and_a_checkpoint_dir_that_persists(tmp_path: Path) -> None:
    """The real local provider (real processes; the injected clock only decides when)."""
    clock = FixedClock(NOW)
    sched = daemon(tmp_path, clock, None, local_tracker=False, terminate_grace_s=2)
    try:
        job = sched.submit(chunked_spec(command=[sys.executable, "-c", CHUNK_JOB]))  # type: ignore[arg-type]
        first = job.runs[0]
        checkpoints = tmp_path / "data" / "scheduler" / "checkpoints" / job.id
        tick_at(sched, clock, 1)
        wait_for((checkpoints / "chunk-1.txt").exists, timeout=20, what="chunk 1 to start")
        assert (checkpoints / "chunk-1.txt").read_text() == "1/2 saw "
        tick_at(sched, clock, 2)  # its planned end: SIGTERM
        wait_for(
            lambda: (sched.tick(), sched.get_run(first.id).status)[1] is RunState.SUCCEEDED,
            timeout=20,
            what="chunk 1 to be paused",
        )
        assert sched.get_run(first.id).note == "paused at its planned end (chunk 1/2)"
        tick_at(sched, clock, 4)
        wait_for(
            lambda: (sched.tick(), sched.get_job(job.id).status)[1] == "succeeded",
            timeout=20,
            what="the last chunk to succeed",
        )
        assert (checkpoints / "chunk-2.txt").read_text() == "2/2 saw chunk-1.txt"
    finally:
        sched.shutdown()


def test_a_remote_chunk_reporting_its_sigterm_exit_at_its_end_is_paused_not_failed(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        first = job.runs[0]
        tick_at(sched, clock, 1)
        token = provider.requests[first.id].report_token
        assert token is not None
        tick_at(sched, clock, 2)  # stop requested at its planned end
        assert provider.terminated == [first.id]
        sched.record_report(first.id, token, {"exit_code": 143})  # the tracker reports before the poll
        paused = sched.get_run(first.id)
        assert paused.status is RunState.SUCCEEDED and paused.note == "paused at its planned end (chunk 1/2)"
        assert sched.get_job(job.id).job_status.value == "active"
    finally:
        sched.shutdown()


def test_the_ledger_counts_each_chunk_s_share_of_the_plan(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), FakeProvider()
    sched = daemon(tmp_path, clock, provider)
    try:
        job = sched.submit(chunked_spec())  # type: ignore[arg-type]
        plan_kg = sched.get_job(job.id).plans[0].option["kg_co2e"]  # type: ignore[index]
        with sched._tx() as s:
            rows = [s.get(RunRow, r.id) for r in job.runs]
            kgs = [getattr(r, "planned_kg_co2e", None) for r in rows]
        if all(k is None for k in kgs):
            pytest.skip("no ledger columns on runs")
        assert sum(k or 0.0 for k in kgs) == pytest.approx(plan_kg, rel=1e-4)
    finally:
        sched.shutdown()


def test_a_cloud_chunk_gets_its_index_and_count_through_the_bootstrap() -> None:
    from carbonshift.providers.base import LaunchRequest, PackageSource
    from carbonshift.providers.bootstrap import render_bootstrap

    request = LaunchRequest(
        run_id="run-chunk-1",
        spec=chunked_spec(env={"CHECKPOINT_URL": "s3://bucket/train"}),  # type: ignore[arg-type]
        region="eu-north-1",
        deadline=NOW + timedelta(hours=6),
        env={"CARBONSHIFT_CHUNK_INDEX": "1", "CARBONSHIFT_CHUNK_COUNT": "2"},
    )
    script = render_bootstrap(request, "aws", package=PackageSource(requirement="carbonshift"))
    for word in (
        "CARBONSHIFT_CHUNK_INDEX=1",
        "CARBONSHIFT_CHUNK_COUNT=2",
        "CHECKPOINT_URL=s3://bucket/train",
    ):
        assert word in script
