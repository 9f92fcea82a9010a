"""The local provider, alone and under the scheduler, with real processes."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from carbonshift.providers.base import InstanceState, LaunchRequest, Provider
from carbonshift.providers.local import LocalProvider
from carbonshift.scheduler import RunState, Scheduler
from tests.scheduler.helpers import make_settings, spec, wait_for, window


def request(run_id: str, command: str | list[str], region: str = "lab") -> LaunchRequest:
    now = datetime.now(UTC)
    return LaunchRequest(
        run_id=run_id, spec=spec(command=command), region=region, deadline=now + timedelta(hours=1)
    )


def test_launch_is_idempotent_and_a_new_provider_reattaches(tmp_path: Path) -> None:
    marker = tmp_path / "launches"
    p1 = LocalProvider(tmp_path / "runs", use_tracker=False)
    assert isinstance(p1, Provider)
    req = request("run-a1", f"echo started >> {marker}; sleep 1.5; echo done")
    h1 = p1.launch(req)
    h2 = p1.launch(req)  # a retry after a timeout: the same process, not a second one
    assert h1.instance_id == h2.instance_id and h1.details["pid"] > 0
    assert p1.status(h1).state is InstanceState.RUNNING
    # a daemon restart: a fresh provider finds the run by its id and follows it to the end
    p2 = LocalProvider(tmp_path / "runs", use_tracker=False)
    found = p2.find("run-a1", "lab")
    assert found is not None and found.instance_id == h1.instance_id
    assert p2.launch(req).instance_id == h1.instance_id
    wait_for(lambda: p2.status(found).state is InstanceState.SUCCEEDED, what="the run to end")
    status = p2.status(found)
    assert status.exit_code == 0 and status.detail == "exit code 0"
    assert marker.read_text().count("started") == 1
    assert "done" in (tmp_path / "runs" / "run-a1" / "output.log").read_text()
    assert p2.find("run-a1", "lab") is not None  # an ended run is still found (never relaunched)
    assert p2.find("run-never", "lab") is None


def test_a_run_started_but_never_recorded_is_found_by_its_process(tmp_path: Path) -> None:
    p = LocalProvider(tmp_path / "runs", use_tracker=False)
    h = p.launch(request("run-b1", ["sleep", "3"]))
    (tmp_path / "runs" / "run-b1" / "pid.json").unlink()  # as if the daemon died before writing it
    found = LocalProvider(tmp_path / "runs", use_tracker=False).find("run-b1", "lab")
    assert found is not None and found.details["pid"] == h.details["pid"]
    p.terminate(h)


def test_terminate_stops_the_process_group_and_reads_as_terminated(tmp_path: Path) -> None:
    p = LocalProvider(tmp_path / "runs", use_tracker=False, terminate_grace_s=2)
    h = p.launch(request("run-c1", "sleep 60 & sleep 60; wait"))
    wait_for(lambda: len(psutil.Process(h.details["pid"]).children(recursive=True)) >= 2, what="children")
    kids = psutil.Process(h.details["pid"]).children(recursive=True)
    p.terminate(h)
    wait_for(lambda: p.status(h).state is InstanceState.TERMINATED, what="termination")
    wait_for(
        lambda: not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids),
        what="children gone",
    )


def test_failures_read_as_failed_with_the_exit_code(tmp_path: Path) -> None:
    p = LocalProvider(tmp_path / "runs", use_tracker=False)
    h = p.launch(request("run-d1", "exit 3"))
    wait_for(lambda: p.status(h).state is InstanceState.FAILED, what="failure")
    assert p.status(h).exit_code == 3
    missing = p.launch(request("run-d2", ["/nonexistent/program"]))
    wait_for(lambda: p.status(missing).state is InstanceState.FAILED, what="failure")
    assert p.status(missing).exit_code == 127
    # a supervisor killed outright leaves no exit record: failed, and said so
    h3 = p.launch(request("run-d3", ["sleep", "30"]))
    os.killpg(h3.details["pgid"], signal.SIGKILL)
    wait_for(lambda: p.status(h3).state is InstanceState.FAILED, what="failure")
    assert "without an exit record" in p.status(h3).detail


def test_the_daemon_runs_a_real_command_under_the_tracker_to_completion(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, scheduler={"poll_interval_s": 0.2})
    sched = Scheduler.from_settings(settings)
    sched.start()
    try:
        now = datetime.now(UTC)
        job = sched.submit(
            spec(
                command="echo hello from $CARBONSHIFT_RUN_ID; echo oops >&2",
                duration="5m",
                window=window(now, now + timedelta(hours=1)),
            )
        )
        wait_for(lambda: sched.get_job(job.id).status == "succeeded", timeout=30, what="the job to succeed")
        view = sched.get_job(job.id)
        run = view.runs[0]
        assert run.exit_code == 0 and run.instance_id and run.instance_id.startswith("pid:")
        assert run.actual is not None and run.actual["source"] == "local"
        assert run.actual["energy_kwh"] >= 0 and run.actual["kg_co2e"] is not None
        assert run.actual["zone"] == "LAB-ZONE"  # the tracker measured where the plan said it runs
        log = sched.run_log(job.id, run.id)
        assert f"hello from {run.id}" in log and "oops" in log
        assert sched.metrics()["runs_measured"] == 1
    finally:
        sched.shutdown()


def test_cancel_stops_a_running_local_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, scheduler={"poll_interval_s": 0.2, "local_tracker": False})
    sched = Scheduler.from_settings(settings)
    sched.start()
    try:
        now = datetime.now(UTC)
        job = sched.submit(spec(command=["sleep", "60"], window=window(now, now + timedelta(hours=2))))
        wait_for(lambda: sched.get_job(job.id).status == "running", what="the run to start")
        pid = sched.get_job(job.id).runs[0].instance_id
        started = time.monotonic()
        view = sched.cancel(job.id)
        assert view.status == "cancelled"
        assert view.runs[0].status is RunState.CANCELLED and time.monotonic() - started < 5
        assert pid is not None
        number = int(pid.removeprefix("pid:"))

        def gone() -> bool:
            try:
                return psutil.Process(number).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        # the signal is sent by cancel; on a loaded machine the process may take a moment to go
        wait_for(gone, what="the cancelled process to end", timeout=15)
    finally:
        sched.shutdown()


@pytest.mark.parametrize("bad", ["../escape", "a/b", ""])
def test_run_ids_must_be_safe_directory_names(tmp_path: Path, bad: str) -> None:
    from carbonshift.providers.base import ProviderError

    with pytest.raises(ProviderError):
        LocalProvider(tmp_path).run_dir(bad)
