"""The daemon launches the hardware alternative its plan chose (issue 14): a spec's `hardware_options`
are ranked with its own hardware by total kg CO2e, the run records the chosen hardware and its duration,
the provider is asked for that hardware, and a re-plan may switch hardware only before the launch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonshift.cli.jobs import render_job
from carbonshift.clock import FixedClock
from carbonshift.config.jobspec import JobSpec
from carbonshift.providers.base import CapacityError, Handle, LaunchRequest
from carbonshift.scheduler import JobView, RunState, Scheduler
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
from tests.scheduler.located import located_settings
from tests.scheduler.test_chunks import PreemptingProvider, tick_at
from tests.scheduler.test_queue_ahead import NAME as QUEUE
from tests.scheduler.test_queue_ahead import QueueingProvider

# the spec's own hardware: 2 h at 1 kW; the alternative: the same host size, done in 1 h at 2.5 kW
OWN = {"duration": "2h", "power_watts": 1000, "hardware": {"vcpus": 4, "memory_gb": 16}}
FASTER = {"vcpus": 4, "memory_gb": 16, "power_watts": 2500, "duration": "1h"}


def fake_daemon(
    tmp_path: Path, rows: list[tuple[datetime, float]], **scheduler: Any
) -> tuple[Scheduler, FixedClock, FakeProvider]:
    clock, provider = FixedClock(NOW), FakeProvider()
    settings = make_settings(tmp_path, {"lab": rows}, scheduler=scheduler)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    return sched, clock, provider


def flat(value: float = 300.0) -> list[tuple[datetime, float]]:
    return hourly(NOW - timedelta(days=1), 72, lambda h: value)


def test_the_local_daemon_runs_the_winning_alternative_and_records_its_hardware(tmp_path: Path) -> None:
    """A real daemon with the real local provider: a 16-vCPU alternative that needs a tenth of the
    energy wins, and the run is planned, launched and recorded as that alternative."""
    settings = make_settings(tmp_path, scheduler={"poll_interval_s": 0.2, "local_tracker": False})
    sched = Scheduler.from_settings(settings)
    sched.start()
    try:
        now = datetime.now(UTC)
        job = sched.submit(
            spec(
                command="echo ran on $CARBONSHIFT_RUN_ID",
                window=window(now, now + timedelta(hours=3)),
                hardware_options=[{"vcpus": 16, "memory_gb": 32, "power_watts": 300, "duration": "10m"}],
                **OWN,
            )
        )
        run = job.runs[0]
        assert run.planned is not None
        hardware = run.planned["hardware"]
        assert hardware["option"] == 1 and hardware["field"] == "hardware_options[0]"
        assert (hardware["vcpus"], hardware["memory_gb"], hardware["duration_s"]) == (16, 32.0, 600)
        assert "instance_type" not in hardware  # the local provider has no instance catalog
        assert run.planned_end is not None and run.planned_start is not None
        assert run.planned_end - run.planned_start == timedelta(minutes=10)  # the alternative's runtime
        assert run.planned["energy_kwh"] == 0.05  # 300 W for 10 min at PUE 1
        assert run.planned["total_kg_co2e"] == round(
            run.planned["kg_co2e"] + run.planned["embodied_kg_co2e"], 6
        )
        assert job.plans[0].option is not None and job.plans[0].option["hardware"]["option"] == 1
        assert "on 16 vCPUs 10m" in job.plans[0].reason and "by total kg" in job.plans[0].reason
        # the view the API serves says it too
        shown = sched.get_job(job.id).to_dict()
        assert shown["runs"][0]["planned"]["hardware"]["label"] == "16 vCPUs 10m"
        assert f"run {run.id}: hardware 16 vCPUs 10m (hardware_options[0])" in render_job(shown)
        wait_for(lambda: sched.get_job(job.id).status == "succeeded", timeout=30, what="the job to succeed")
        done = sched.get_job(job.id).runs[0]
        assert done.exit_code == 0 and f"ran on {done.id}" in sched.run_log(job.id, done.id)
        assert done.planned is not None and done.planned["hardware"]["option"] == 1
    finally:
        sched.shutdown()


def test_the_provider_is_asked_for_the_chosen_hardware_and_duration(tmp_path: Path) -> None:
    sched, _clock, provider = fake_daemon(tmp_path, flat())
    try:
        cheaper = {**FASTER, "power_watts": 1500}  # 1.5 kWh in 1 h against the spec's 2 kWh in 2 h
        job = sched.submit(
            spec(window=window(NOW, NOW + timedelta(hours=6)), hardware_options=[cheaper], **OWN)
        )
        run = job.runs[0]
        assert run.planned is not None and run.planned["hardware"]["option"] == 1
        assert run.planned_end == NOW + timedelta(hours=1)
        sched.tick()
        request = provider.requests[run.id]
        assert request.spec.duration == timedelta(hours=1) and request.spec.power_watts == 1500
        assert request.spec.hardware_options == []
        assert sched.get_run(run.id).status is RunState.RUNNING
    finally:
        sched.shutdown()


def test_a_spec_without_alternatives_is_planned_and_launched_as_before(tmp_path: Path) -> None:
    sched, _clock, provider = fake_daemon(tmp_path, flat())
    try:
        given = spec(window=window(NOW, NOW + timedelta(hours=6)), **OWN)
        job = sched.submit(given)
        run = job.runs[0]
        assert run.planned is not None and "hardware" not in run.planned
        assert all("hardware" not in o for o in job.plans[0].options)
        assert run.planned_end == NOW + timedelta(hours=2)
        assert job.plans[0].reason.startswith("first plan: local:lab at 2030-03-05T00:00:00Z (0.6 kg CO2e")
        sched.tick()
        request = provider.requests[run.id]
        assert request.spec.hardware == given.hardware and request.spec.duration == given.duration
        assert request.spec.power_watts == given.power_watts
    finally:
        sched.shutdown()


def dip(hours: dict[int, float], base: float = 300.0) -> list[tuple[datetime, float]]:
    return hourly(NOW - timedelta(days=1), 72, lambda h: hours.get(h - 24, base))


def test_a_replan_switches_hardware_before_launch_only_above_the_threshold(tmp_path: Path) -> None:
    sched, clock, provider = fake_daemon(tmp_path, flat(), replan_min_gain_pct=80)
    csv = tmp_path / "lab.csv"
    try:
        job = sched.submit(
            spec(
                window=window(NOW + timedelta(hours=3), NOW + timedelta(hours=20)),
                hardware_options=[FASTER],
                **OWN,
            )
        )
        first = job.runs[0]
        assert first.planned is not None and first.planned["hardware"]["option"] == 0  # 2 kWh beats 2.5
        assert first.planned_start == NOW + timedelta(hours=3)
        current_total = first.planned["total_kg_co2e"]

        # 10:00 at 50 g: the fast hardware there is about three quarters cleaner in total: under 80 %
        write_series(csv, dip({10: 50.0}))
        clock.advance(1800)
        sched.tick()
        job = sched.get_job(job.id)
        kept = job.plans[1]
        assert not kept.adopted and kept.option is not None and kept.option["hardware"]["option"] == 1
        expected = (current_total - kept.option["total_kg_co2e"]) / current_total * 100
        assert kept.gain_pct is not None and abs(kept.gain_pct - expected) < 0.01
        assert "under the 80% threshold" in kept.reason and "in total (operational + embodied)" in kept.reason
        run = job.runs[0]
        assert run.planned is not None and run.planned["hardware"]["option"] == 0
        assert run.planned_start == NOW + timedelta(hours=3)

        # 10:00 at 10 g: over 90 % -> moved, onto the other hardware, for its own runtime
        write_series(csv, dip({10: 10.0}))
        clock.advance(1800)
        sched.tick()
        job = sched.get_job(job.id)
        moved = job.plans[2]
        assert moved.adopted and "on 4 vCPUs 1h" in moved.reason
        run = job.runs[0]
        assert run.planned is not None and run.planned["hardware"]["option"] == 1
        assert (run.planned_start, run.planned_end) == (NOW + timedelta(hours=10), NOW + timedelta(hours=11))
        assert run.planned["energy_kwh"] == 2.5 and run.planned["plan_id"] == moved.id

        clock.advance((NOW + timedelta(hours=10) - clock.now()).total_seconds())
        sched.tick()
        assert sched.get_run(run.id).status is RunState.RUNNING
        request = provider.requests[run.id]
        assert request.spec.duration == timedelta(hours=1) and request.spec.power_watts == 2500

        # launched: a forecast that favours the spec's own hardware changes nothing any more
        write_series(csv, flat(10.0))
        clock.advance(3600)
        sched.tick()
        after = sched.get_job(job.id)
        assert len(after.plans) == 3 and after.runs[0].planned == run.planned
    finally:
        sched.shutdown()


def chunked_on_faster() -> JobSpec:
    """An interruptible 4 h job at 1 kW, or 2 h at 1.5 kW on the alternative, with 50 g at 02:00 and
    06:00: the alternative's two chunks are 02:00-03:00 and 06:00-07:00."""
    return spec(
        window=window(NOW, NOW + timedelta(hours=20)),
        interruptible=True,
        min_chunk="30m",
        duration="4h",
        power_watts=1000,
        hardware_options=[{**FASTER, "power_watts": 1500, "duration": "2h"}],
    )


def test_chunks_keep_the_hardware_of_the_plan_that_made_them(tmp_path: Path) -> None:
    """An interruptible job on the faster hardware: both chunks are on it, and once the first has
    started, the chunk left is re-planned on that hardware, for its own remaining hour."""
    sched, clock, provider = fake_daemon(tmp_path, dip({2: 50.0, 6: 50.0}))
    try:
        job = sched.submit(chunked_on_faster())
        runs = job.runs
        assert [(r.planned_start, r.planned_end) for r in runs] == [
            (NOW + timedelta(hours=2), NOW + timedelta(hours=3)),
            (NOW + timedelta(hours=6), NOW + timedelta(hours=7)),
        ]
        assert all(r.planned is not None and r.planned["hardware"]["option"] == 1 for r in runs)
        shares = [r.planned["embodied_kg_co2e"] for r in runs if r.planned is not None]
        assert shares[0] == shares[1] > 0  # each chunk carries its share of the embodied kg

        clock.advance(2 * 3600)
        sched.tick()
        assert provider.requests[runs[0].id].spec.power_watts == 1500
        clock.advance(1800)
        sched.tick()  # the chunk left is due for a re-plan
        job = sched.get_job(job.id)
        replan = job.plans[-1]
        assert replan.kind == "replan" and replan.option is not None
        assert replan.option["hardware"]["option"] == 1
        # the hour left on this hardware (1.5 kWh at 1.5 kW), not the job from the start (3 kWh) nor
        # the spec's own 4 h
        assert (replan.option["start"], replan.option["end"]) == (
            "2030-03-05T06:00:00Z",
            "2030-03-05T07:00:00Z",
        )
        assert replan.option["energy_kwh"] == 1.5
        assert all(o["hardware"]["option"] == 1 for o in replan.options)
    finally:
        sched.shutdown()


def test_what_a_preemption_leaves_is_planned_on_the_hardware_it_ran_on(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), PreemptingProvider()
    settings = make_settings(tmp_path, {"lab": dip({2: 50.0, 6: 50.0})})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        job = sched.submit(chunked_on_faster())
        first, second = job.runs
        tick_at(sched, clock, 2)
        tick_at(sched, clock, 3)
        tick_at(sched, clock, 3.01)  # chunk 1/2 paused at its end: 1 h of the 2 h on this hardware done
        assert sched.get_run(first.id).status is RunState.SUCCEEDED
        tick_at(sched, clock, 6)
        provider.preempted.add(second.id)
        tick_at(sched, clock, 6.5)
        after = sched.get_job(job.id)
        new = [r for r in after.runs if r.id not in (first.id, second.id)]
        assert len(new) == 1 and new[0].planned is not None
        # the hour left on the faster hardware, not the spec's own 4 h less the hour done (3 h)
        assert new[0].planned["hardware"]["option"] == 1 and new[0].planned["energy_kwh"] == 1.5
        assert new[0].planned_end is not None and new[0].planned_start is not None
        assert new[0].planned_end - new[0].planned_start == timedelta(hours=1)
        assert provider.requests[new[0].id].spec.power_watts == 1500
    finally:
        sched.shutdown()


class NoFastCapacity(FakeProvider):
    """A cloud with no capacity for the faster hardware (told apart by its measured draw)."""

    def launch(self, request: LaunchRequest) -> Handle:
        if request.spec.power_watts == 1500:
            raise CapacityError(self.name, request.region, "no capacity for this shape", "FAKE_CAPACITY")
        return super().launch(request)


def test_a_capacity_refusal_falls_back_to_other_hardware_that_still_finishes_in_time(tmp_path: Path) -> None:
    clock, provider = FixedClock(NOW), NoFastCapacity()
    settings = make_settings(tmp_path, {"lab": flat()})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    faster = [{**FASTER, "power_watts": 1500}]
    try:
        roomy = sched.submit(
            spec(name="roomy", window=window(NOW, NOW + timedelta(hours=6)), hardware_options=faster, **OWN)
        )
        tight = sched.submit(
            spec(name="tight", window=window(NOW, NOW + timedelta(hours=2)), hardware_options=faster, **OWN)
        )
        assert all(j.runs[0].planned["hardware"]["option"] == 1 for j in (roomy, tight))  # type: ignore[index]
        tick_at(sched, clock, 0.5)

        run = sched.get_job(roomy.id).runs[0]
        assert run.status is RunState.RUNNING and run.planned is not None
        assert run.planned["hardware"]["option"] == 0  # the spec's own, in the same place
        assert [r["code"] for r in run.refusals] == ["FAKE_CAPACITY"]
        assert provider.requests[run.id].spec.duration == timedelta(hours=2)
        capacity = sched.get_job(roomy.id).plans[-1]
        assert capacity.kind == "capacity" and "launching on local:lab on 4 vCPUs 2h" in capacity.reason

        # 00:30 + 2 h on the spec's own hardware is past a 02:00 deadline: nothing else to try
        missed = sched.get_job(tight.id).runs[0]
        assert missed.status is RunState.FAILED and tight.runs[0].id not in provider.requests
        assert (
            "passed over (it would end after the deadline 2030-03-05T02:00:00Z)" in missed.events[-1].reason
        )
    finally:
        sched.shutdown()


def queued_on_cluster(
    tmp_path: Path, clock: FixedClock, provider: QueueingProvider, earliest_h: int, **scheduler: Any
) -> tuple[Scheduler, JobView]:
    """A daemon on one cluster, and a job there (the spec's own hardware wins on a flat grid) that
    may start `earliest_h` hours from NOW, queued ahead on its own hardware by the first tick."""
    settings = located_settings(tmp_path, QUEUE, "lab", scheduler=scheduler)
    sched = Scheduler.from_settings(settings, clock=clock, providers={QUEUE: provider})  # type: ignore[dict-item]
    sched.start(background=False)
    job = sched.submit(
        spec(
            placement={"regions": [f"{QUEUE}:lab"]},
            window=window(NOW + timedelta(hours=earliest_h), NOW + timedelta(hours=6)),
            hardware_options=[FASTER],
            **OWN,
        )
    )
    assert job.runs[0].planned is not None and job.runs[0].planned["hardware"]["option"] == 0
    sched.tick()
    assert [r.spec.power_watts for r in provider.prepared] == [1000]
    return sched, job


def test_a_run_queued_ahead_at_a_cluster_keeps_the_hardware_its_queued_job_asks_for(tmp_path: Path) -> None:
    """Slurm or Kubernetes hold the run's job with its resources from the plan; a re-plan may re-time
    it or move it to another cluster, but does not re-shape it: it is planned on that hardware."""
    clock, provider = FixedClock(NOW), QueueingProvider(starts_queued=True)
    sched, job = queued_on_cluster(tmp_path, clock, provider, 3, replan_interval_s=1800)
    try:
        run = job.runs[0]

        # 04:00-06:00 at 2,000 g: the spec's own 2 h cost 2.3 kg at best, the faster 1 h from 03:00 0.75
        write_series(tmp_path / "lab.csv", dip({4: 2000.0, 5: 2000.0}))
        clock.advance(1800)
        sched.tick()
        replan = sched.get_job(job.id).plans[-1]
        assert replan.kind == "replan" and replan.options
        assert {o["hardware"]["option"] for o in replan.options} == {0}
        after = sched.get_run(run.id)
        assert after.planned is not None and after.planned["hardware"]["option"] == 0
        assert [r.spec.power_watts for r in provider.prepared] == [1000] and provider.terminated == []
    finally:
        sched.shutdown()


class FullCluster(QueueingProvider):
    """A cluster that holds the run's job but refuses to let it go for capacity at its start."""

    def launch(self, request: LaunchRequest) -> Handle:
        raise CapacityError(self.name, request.region, "partition full", "FAKE_CAPACITY")


def test_a_refused_queued_run_does_not_fall_back_to_other_hardware_on_the_same_cluster(
    tmp_path: Path,
) -> None:
    clock, provider = FixedClock(NOW), FullCluster(starts_queued=False)
    sched, job = queued_on_cluster(tmp_path, clock, provider, 1, replan_interval_s=86400)
    try:
        tick_at(sched, clock, 1)
        run = sched.get_run(job.runs[0].id)
        assert run.status is RunState.FAILED and run.planned is not None
        assert run.planned["hardware"]["option"] == 0
        assert "hpc:lab on 4 vCPUs 1h passed over (the cluster holds this run's job" in run.events[-1].reason
    finally:
        sched.shutdown()
