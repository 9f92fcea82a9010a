"""The scheduler queues a run on a Kubernetes cluster ahead of its planned start (the provider's
`Queueing` capability), through the real `kubernetes` client against the local fake of the Jobs API
(kube_fake.py): a suspended Job right after submit, with the planned start as an annotation; a re-plan
patches the annotation; the launch at the planned start resumes that same Job; a cancel deletes it; a
restarted daemon finds the queued Job and creates no second one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.clock import FixedClock
from carbonshift.providers.base import Queueing
from carbonshift.providers.kubernetes import ANN_PLANNED_START, KubernetesProvider, job_name
from carbonshift.scheduler import RunState, Scheduler
from carbonshift.timeutil import isoformat_z
from tests.providers.kube_fake import FakeKubernetes
from tests.scheduler.helpers import NOW as START
from tests.scheduler.helpers import hourly, make_settings, spec, window, write_series

pytest.importorskip("kubernetes", reason="needs the kubernetes extra")

CLUSTER = "gpu-east"
NS = "ml"


def dip(hour: int, g_per_kwh: float = 100.0) -> list[Any]:
    """A day of 400 g/kWh before START and after, with one clean hour `hour` hours after START."""
    return hourly(START - timedelta(days=1), 72, lambda h: g_per_kwh if h == 24 + hour else 400.0)


def daemon(kube: FakeKubernetes, tmp_path: Path, clock: FixedClock, background: bool = False) -> Scheduler:
    settings = make_settings(
        tmp_path,
        {"lab": dip(2)},
        scheduler={"providers": ["local", "kubernetes"], "replan_min_gain_pct": 5},
        kubernetes={
            "clusters": {
                CLUSTER: {
                    "zone": "LAB-ZONE",
                    "country": "ES",
                    "server": kube.url,
                    "namespace": NS,
                    "image": "ghcr.io/acme/trainer:1.4",
                }
            }
        },
    )
    k8s = KubernetesProvider(settings, clock=clock.now)
    assert isinstance(k8s, Queueing) and k8s.starts_queued is False
    sched = Scheduler.from_settings(settings, clock=clock, providers={"kubernetes": k8s})
    sched.start(background=background)
    return sched


def submit(sched: Scheduler) -> str:
    job = sched.submit(
        spec(
            name="k8s-queued",
            duration="1h",
            placement={"providers": ["kubernetes"]},
            window=window(START, START + timedelta(hours=8)),
        )
    )
    assert job.runs[0].planned_start == START + timedelta(hours=2)
    return job.id


def test_a_run_waits_as_a_suspended_job_a_replan_moves_it_and_the_start_resumes_it(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    clock = FixedClock(START)
    sched = daemon(kube, tmp_path, clock)
    try:
        job_id = submit(sched)
        sched.tick()  # the tick after the submission queues it
        run = sched.get_job(job_id).runs[0]
        name = job_name(run.id)
        body = kube.job(name, NS)
        assert body["spec"]["suspend"] is True
        assert body["metadata"]["annotations"][ANN_PLANNED_START] == isoformat_z(START + timedelta(hours=2))
        assert run.status is RunState.WAITING and run.instance_id == f"{NS}/{name}"
        assert any("queued on kubernetes:gpu-east" in e.reason for e in run.events)
        uid = body["metadata"]["uid"]

        sched.tick()  # in step: nothing is sent again
        assert len(kube.calls("POST")) == 1 and not kube.calls("PATCH")

        # fresher forecast: 4 h after START is half as clean -> the run moves; the queued Job follows
        write_series(tmp_path / "lab.csv", dip(4, 50.0))
        clock.advance(1800)
        sched.tick()
        sched.tick()
        run = sched.get_job(job_id).runs[0]
        assert run.planned_start == START + timedelta(hours=4)
        body = kube.job(name, NS)
        assert body["metadata"]["annotations"][ANN_PLANNED_START] == isoformat_z(START + timedelta(hours=4))
        assert body["spec"]["suspend"] is True and body["metadata"]["uid"] == uid
        assert len(kube.jobs) == 1 and len(kube.calls("POST")) == 1

        clock.advance(4 * 3600 - 1800)  # to the new planned start
        sched.tick()
        run = sched.get_job(job_id).runs[0]
        assert run.status is RunState.RUNNING, [e.reason for e in run.events]
        body = kube.job(name, NS)
        assert body["spec"]["suspend"] is False and body["metadata"]["uid"] == uid
        assert len(kube.calls("POST")) == 1  # resumed, never created again

        kube.finish(name, NS)
        clock.advance(600)
        sched.tick()
        done = sched.get_run(run.id)
        assert done.status is RunState.SUCCEEDED and kube.jobs == {}
    finally:
        sched.shutdown()


def test_cancelling_a_queued_run_deletes_its_suspended_job(kube: FakeKubernetes, tmp_path: Path) -> None:
    clock = FixedClock(START)
    sched = daemon(kube, tmp_path, clock)
    try:
        job_id = submit(sched)
        sched.tick()
        assert len(kube.jobs) == 1
        job = sched.cancel(job_id)
        assert job.runs[0].status is RunState.CANCELLED
        sched.tick()
        assert kube.jobs == {} and kube.deleted_with == "Foreground"
        run = sched.get_job(job_id).runs[0]
        assert run.release is not None and run.release["state"] == "done", run.release
        sched.tick()
        assert len(kube.calls("DELETE")) == 1
    finally:
        sched.shutdown()


def test_a_restarted_daemon_finds_the_queued_job_and_creates_no_other(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    clock = FixedClock(START)
    sched = daemon(kube, tmp_path, clock)
    job_id = submit(sched)
    sched.tick()
    sched.shutdown()
    assert len(kube.calls("POST")) == 1

    again = daemon(kube, tmp_path, clock)
    try:
        again.tick()
        assert len(kube.calls("POST")) == 1 and not kube.calls("PATCH")
        clock.advance(2 * 3600)
        again.tick()
        run = again.get_job(job_id).runs[0]
        assert run.status is RunState.RUNNING
        assert kube.job(job_name(run.id), NS)["spec"]["suspend"] is False
        assert len(kube.jobs) == 1 and len(kube.calls("POST")) == 1
    finally:
        again.shutdown()


def test_a_daemon_that_stopped_while_resuming_the_queued_job_resumes_it_after_a_restart(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    """The daemon committed `launching` at the planned start and stopped before resuming the Job: the
    next daemon asks the cluster, which has the run's Job but still suspended (the launch did not get
    through), so it launches again, which resumes it; the run is not taken for running while held."""
    from carbonshift.scheduler.models import RunRow

    clock = FixedClock(START)
    sched = daemon(kube, tmp_path, clock)
    job_id = submit(sched)
    sched.tick()
    run_id = sched.get_job(job_id).runs[0].id
    clock.advance(2 * 3600)
    with sched._tx() as s:  # what a daemon killed right after committing `launching` leaves
        row = s.get(RunRow, run_id)
        assert row is not None
        row.state = RunState.LAUNCHING.value
        row.launched_at = clock.now()
    sched.shutdown()
    assert kube.job(job_name(run_id), NS)["spec"]["suspend"] is True

    again = daemon(kube, tmp_path, clock)
    try:
        again.tick()
        run = again.get_run(run_id)
        assert run.status is RunState.RUNNING, [e.reason for e in run.events]
        assert any("still holds its queued job" in e.reason for e in run.events)
        assert kube.job(job_name(run_id), NS)["spec"]["suspend"] is False
        assert len(kube.jobs) == 1 and len(kube.calls("POST")) == 1
    finally:
        again.shutdown()


def test_a_replan_to_another_cluster_deletes_the_queued_job_and_queues_it_there(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    def flat(g_per_kwh: float) -> list[Any]:
        return hourly(START - timedelta(days=1), 72, lambda h: g_per_kwh)

    clusters = {
        name: {"zone": zone, "country": "ES", "server": kube.url, "namespace": ns, "image": "img:1"}
        for name, zone, ns in (("east", "LAB-ZONE", NS), ("west", "LAB2-ZONE", "default"))
    }
    settings = make_settings(
        tmp_path,
        {"lab": dip(2), "lab2": flat(400.0)},
        scheduler={"providers": ["local", "kubernetes"], "replan_min_gain_pct": 5},
        kubernetes={"clusters": clusters},
    )
    clock = FixedClock(START)
    k8s = KubernetesProvider(settings, clock=clock.now)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"kubernetes": k8s})
    sched.start(background=False)
    try:
        job_id = submit(sched)
        sched.tick()
        run = sched.get_job(job_id).runs[0]
        name = job_name(run.id)
        assert run.region == "east" and kube.job(name, NS)["spec"]["suspend"] is True

        # fresher forecasts: the west cluster's grid is far cleaner 3 h after START
        write_series(tmp_path / "lab.csv", flat(400.0))
        write_series(tmp_path / "lab2.csv", dip(3, 20.0))
        clock.advance(1800)
        sched.tick()
        sched.tick()
        run = sched.get_job(job_id).runs[0]
        assert (run.region, run.planned_start) == ("west", START + timedelta(hours=3))
        assert (NS, name) not in kube.jobs  # the east cluster's queued Job is deleted
        west = kube.job(name, "default")
        assert west["spec"]["suspend"] is True
        assert west["metadata"]["annotations"][ANN_PLANNED_START] == isoformat_z(START + timedelta(hours=3))
        assert any("removed its queued job" in e.reason for e in run.events)
        assert run.instance_id == f"default/{name}"
    finally:
        sched.shutdown()


def test_a_running_daemon_queues_a_submitted_run_at_once_not_a_poll_interval_later(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    """With its timers running (poll interval: an hour), the daemon queues a run it adopts right away."""
    from tests.scheduler.helpers import wait_for

    clock = FixedClock(START)
    sched = daemon(kube, tmp_path, clock, background=True)
    try:
        wait_for(lambda: sched.health()["last_tick_age_s"] is not None, 10, "the first tick")
        job_id = submit(sched)
        run_id = sched.get_job(job_id).runs[0].id
        wait_for(lambda: (NS, job_name(run_id)) in kube.jobs, 10, "the suspended Job")
        assert kube.job(job_name(run_id), NS)["spec"]["suspend"] is True
        wait_for(lambda: sched.get_run(run_id).instance_id is not None, 10, "the queued Job on the run")
    finally:
        sched.shutdown()
