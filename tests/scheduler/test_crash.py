"""Crash safety with real daemons in subprocesses: kill -9 with runs waiting, running and mid-launch,
restart, and nothing is lost or launched twice (SQLite and PostgreSQL); the PostgreSQL hot standby
takes over; a second daemon on SQLite is refused."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.scheduler import DaemonLockedError, RunState, Scheduler
from tests.scheduler.daemon_main import PRELOAD, kill9, run_daemon_with_env, stop_process
from tests.scheduler.helpers import NOW, hourly, spec, wait_for, window, write_series


def overrides(tmp_path: Path, db_url: str | None) -> dict[str, Any]:
    csv = tmp_path / "lab.csv"
    write_series(csv, hourly(datetime.now(UTC) - timedelta(days=1), 72, lambda h: 300.0))
    out: dict[str, Any] = {
        "ukci_enabled": False,
        "cache": {"enabled": False},
        "data_dir": str(tmp_path / "data"),
        "intensity": {"files": {"LAB-ZONE": str(csv)}},
        "locations": [{"region": "lab", "zone": "LAB-ZONE", "country": "ES"}],
        "tracker": {"detect_cloud": False},
        "scheduler": {
            "poll_interval_s": 0.2,
            "standby_poll_s": 0.2,
            "local_tracker": False,
            "cancel_wait_s": 0,
        },
    }
    if db_url:
        out["db_url"] = db_url
    return out


_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(PRELOAD)


class Daemon:
    """A daemon (`daemon_main.run_daemon`) in its own process, forked from a server that has already
    imported carbonshift, in this process's environment; its role lines are read from a file."""

    def __init__(
        self, tmp_path: Path, name: str, settings: dict[str, Any], crash: str = "", job: str = ""
    ) -> None:
        self.name = name
        self.role_path = tmp_path / f"{name}.roles"
        self.role_path.touch()
        self.proc = _CTX.Process(
            target=run_daemon_with_env,
            args=(dict(os.environ), "", json.dumps(settings), str(self.role_path), crash, job),
            name=name,
            daemon=False,
        )
        self.proc.start()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    @property
    def lines(self) -> list[str]:
        return self.role_path.read_text().splitlines()

    def wait_line(self, prefix: str, timeout: float = 20) -> str:
        def seen() -> bool:
            return any(line.startswith(prefix) for line in self.lines)

        wait_for(lambda: seen() or self.proc.exitcode is not None, timeout, f"{self.name}: {prefix}")
        time.sleep(0.05)
        found = [line for line in self.lines if line.startswith(prefix)]
        assert found, f"{self.name} exited ({self.proc.exitcode}) without {prefix!r}: {self.lines}"
        return found[0]

    def wait_exit(self, timeout: float = 20) -> int | None:
        self.proc.join(timeout)
        return self.proc.exitcode

    def kill9(self) -> None:
        kill9(self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def marker_command(marker: Path, seconds: float) -> str:
    return f"echo $CARBONSHIFT_RUN_ID >> {marker}; sleep {seconds}"


def status(client: Scheduler, job_id: str) -> str:
    return client.get_job(job_id).status


def wait_status(client: Scheduler, job_id: str, wanted: str, timeout: float = 20) -> None:
    wait_for(
        lambda: status(client, job_id) == wanted,
        timeout,
        f"job {job_id} {wanted} (now {status(client, job_id)})",
    )


def test_kill_9_with_runs_waiting_running_and_mid_launch_loses_nothing_and_doubles_nothing(
    tmp_path: Path, db_url: str | None
) -> None:
    settings = overrides(tmp_path, db_url)
    client = Scheduler.from_settings(load_settings(None, **settings))  # submits and reads; never started
    marker = tmp_path / "launches.txt"
    daemons: list[Daemon] = []
    try:
        # daemon 1 dies right after the provider started the run of job 'crash-after'
        d1 = Daemon(tmp_path, "d1", settings, "after-launch", "crash-after")
        daemons.append(d1)
        d1.wait_line("ROLE active")
        now = datetime.now(UTC)
        hour = now + timedelta(hours=1)
        running = client.submit(
            spec(name="running", command=marker_command(marker, 3), duration="10m", window=window(now, hour))
        )
        wait_status(client, running.id, "running")
        soon = datetime.now(UTC) + timedelta(seconds=4)  # after the waits above, on a slow machine too
        waiting = client.submit(
            spec(
                name="waiting", command=marker_command(marker, 0.2), duration="1m", window=window(soon, hour)
            )
        )
        tight_deadline = soon + timedelta(minutes=1, seconds=1)  # latest start: soon + 1 s
        tight = client.submit(
            spec(
                name="tight",
                command=marker_command(marker, 0.2),
                duration="1m",
                window=window(soon, tight_deadline),
            )
        )
        wait_status(client, waiting.id, "waiting")
        wait_status(client, tight.id, "waiting")
        crash_after = client.submit(
            spec(
                name="crash-after",
                command=marker_command(marker, 0.5),
                duration="1m",
                window=window(now, hour),
            )
        )
        assert d1.wait_exit() == -signal.SIGKILL
        assert status(client, running.id) == "running"
        assert status(client, waiting.id) == "waiting" and status(client, tight.id) == "waiting"
        assert status(client, crash_after.id) == "launching"  # the launch got through; its record did not

        # down until the tight run's latest start has passed; 'waiting' came due meanwhile
        wait_for(lambda: datetime.now(UTC) > soon + timedelta(seconds=1.5), 10, "downtime")

        # daemon 2 recovers all of it, then dies after committing 'launching' for 'crash-before'
        d2 = Daemon(tmp_path, "d2", settings, "before-launch", "crash-before")
        daemons.append(d2)
        d2.wait_line("ROLE active")
        for job in (running, waiting, crash_after):
            wait_status(client, job.id, "succeeded")
        wait_status(client, tight.id, "missed")
        missed = client.get_job(tight.id).runs[0]
        assert "latest start" in missed.events[-1].reason
        recovered = client.get_job(crash_after.id).runs[0]
        assert any("recovered after a restart" in e.reason for e in recovered.events)
        late = client.get_job(waiting.id).runs[0]
        assert late.launched_at is not None and late.planned_start is not None
        assert late.launched_at > late.planned_start  # came due during the downtime, ran at restart

        crash_before = client.submit(
            spec(
                name="crash-before",
                command=marker_command(marker, 0.2),
                duration="1m",
                window=window(datetime.now(UTC), hour),
            )
        )
        assert d2.wait_exit() == -signal.SIGKILL
        assert status(client, crash_before.id) == "launching"  # committed, never sent

        d3 = Daemon(tmp_path, "d3", settings)
        daemons.append(d3)
        d3.wait_line("ROLE active")
        wait_status(client, crash_before.id, "succeeded")
        relaunched = client.get_job(crash_before.id).runs[0]
        assert any("no launch by the leader of epoch" in e.reason for e in relaunched.events)

        launched = marker.read_text().split()
        jobs = {j.id: j for j in client.list_jobs()}
        assert len(jobs) == 5  # nothing lost
        expected = [jobs[j.id].runs[0].id for j in (running, waiting, crash_after, crash_before)]
        assert sorted(launched) == sorted(expected)  # each launched exactly once; 'tight' never
        assert all(len(j.runs) == 1 for j in jobs.values())
    finally:
        for d in daemons:
            d.stop()
        client.shutdown()


def test_postgres_hot_standby_takes_over_when_the_active_daemon_dies(tmp_path: Path, pg_url: str) -> None:
    settings = overrides(tmp_path, pg_url)
    client = Scheduler.from_settings(load_settings(None, **settings))
    marker = tmp_path / "launches.txt"
    d1 = Daemon(tmp_path, "d1", settings)
    d2: Daemon | None = None
    try:
        d1.wait_line("ROLE active")
        d2 = Daemon(tmp_path, "d2", settings)
        d2.wait_line("ROLE standby")
        now = datetime.now(UTC)
        hour = now + timedelta(hours=1)
        running = client.submit(
            spec(name="running", command=marker_command(marker, 2), duration="1m", window=window(now, hour))
        )
        wait_status(client, running.id, "running")
        later = client.submit(
            spec(
                name="later",
                command=marker_command(marker, 0.2),
                duration="1m",
                window=window(now + timedelta(seconds=3), hour),
            )
        )
        wait_status(client, later.id, "waiting")
        killed_at = time.monotonic()
        d1.kill9()
        d2.wait_line("ROLE active", timeout=15)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s < 10
        wait_status(client, running.id, "succeeded")
        wait_status(client, later.id, "succeeded")
        expected = [client.get_job(j.id).runs[0].id for j in (running, later)]
        assert sorted(marker.read_text().split()) == sorted(expected)
    finally:
        d1.stop()
        if d2 is not None:
            d2.stop()
        client.shutdown()


def test_a_second_daemon_on_sqlite_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    settings = overrides(tmp_path, None)
    d1 = Daemon(tmp_path, "d1", settings)
    try:
        d1.wait_line("ROLE active")
        d2 = Daemon(tmp_path, "d2", settings)
        line = d2.wait_line("REFUSED")
        assert d2.wait_exit() == 3
        assert "already running" in line and f"pid {d1.pid}" in line and "PostgreSQL" in line
    finally:
        d1.stop()


def test_a_second_scheduler_in_one_process_is_refused_too(tmp_path: Path) -> None:
    settings = load_settings(None, **overrides(tmp_path, None))
    first = Scheduler.from_settings(settings, clock=FixedClock(NOW))
    first.start(background=False)
    try:
        second = Scheduler.from_settings(settings, clock=FixedClock(NOW))
        with pytest.raises(DaemonLockedError, match="already running"):
            second.start(background=False)
        assert second.role == "stopped"
        job = second.submit(spec(window=window(NOW, NOW + timedelta(hours=3))))  # the API still works
        assert job.runs[0].status is RunState.PLANNED
    finally:
        first.shutdown()


def test_a_daemon_whose_lock_connection_drops_steps_down_and_the_standby_takes_over(
    tmp_path: Path, pg_url: str
) -> None:
    """No split brain: losing the advisory lock's connection (a network cut, a server restart) makes
    the active daemon stop acting at its next tick, and it waits as a standby itself."""
    from sqlalchemy import text

    from carbonshift.scheduler.lock import PgAdvisoryLock

    settings = load_settings(None, **overrides(tmp_path, pg_url))
    first, second = Scheduler.from_settings(settings), Scheduler.from_settings(settings)
    try:
        first.start()
        second.start()
        assert (first.role, second.role) == ("active", "standby")
        lock = first._lock
        assert isinstance(lock, PgAdvisoryLock) and lock._conn is not None
        backend = lock._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with second.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        wait_for(lambda: second.is_active, 10, "the standby to take over")
        wait_for(lambda: first.role == "standby", 10, "the old daemon to step down")
    finally:
        first.shutdown()
        second.shutdown()


def _process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stale_leader_paused_inside_launch_and_resumed_launches_nothing_twice(
    tmp_path: Path, pg_url: str
) -> None:
    """Two real daemons on PostgreSQL. The active one is frozen (SIGSTOP) inside the provider's launch;
    its lock connection is cut, the standby takes over and runs the job; then the old one resumes,
    finishes its launch call and tries to record it. One process ran, the run is settled once, and
    the old daemon steps down."""
    from sqlalchemy import text

    settings = overrides(tmp_path, pg_url)
    marker = tmp_path / "started.txt"
    client = Scheduler.from_settings(load_settings(None, **settings))
    daemons: list[Daemon] = []
    try:
        old = Daemon(tmp_path, "old", settings, "pause-in-launch", "frozen")
        daemons.append(old)
        old.wait_line("ROLE active")
        new = Daemon(tmp_path, "new", settings)
        daemons.append(new)
        new.wait_line("ROLE standby")
        job = client.submit(
            spec(
                name="frozen",
                command=marker_command(marker, 0.3),
                duration="1m",
                window=window(datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1)),
            )
        )
        wait_for(lambda: _process_state(old.pid) == "T", 20, "the old leader to freeze inside launch")
        with client.engine.connect() as admin:  # cut the frozen leader's lock connection
            holders = (
                admin.execute(  # the lock connection names its daemon's pid (lock.PgAdvisoryLock)
                    text("SELECT pid FROM pg_stat_activity WHERE application_name LIKE :name"),
                    {"name": f"carbonshift-daemon pid {old.pid} %"},
                )
                .scalars()
                .all()
            )
            assert len(holders) == 1
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holders[0]})
            admin.commit()
        new.wait_line("ROLE active")
        wait_status(client, job.id, "succeeded", timeout=30)
        os.kill(old.pid, signal.SIGCONT)  # the stale leader finishes its launch call now
        old.wait_line("ROLE standby")
        time.sleep(1.0)  # time for anything the resumed daemon would (wrongly) do
        started = marker.read_text().split()
        run = client.get_job(job.id).runs[0]
        assert started == [run.id]  # one process ran the job, once
        assert run.status == RunState.SUCCEEDED
        to_running = [e for e in run.events if e.to_state == "running"]
        assert len(to_running) == 1
        assert any("no launch by the leader of epoch" in e.reason for e in run.events)
    finally:
        for d in daemons:
            with contextlib.suppress(ProcessLookupError):
                os.kill(d.pid, signal.SIGCONT)
            d.stop()
        client.shutdown()
