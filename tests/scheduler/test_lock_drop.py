"""Two real daemons on one PostgreSQL database keep scheduling when their lock connections drop.

Each daemon keeps its timers in its own memory (rebuilt from the tables when it becomes active), and
checks its lead on its own thread, so the drop of the active daemon's advisory-lock connection
(`pg_terminate_backend`, as a network cut or a server restart does) makes the standby take over and
the old leader step down to standby, twice in a row, with every job due before, during and after
launched exactly once. The health a daemon reports follows: `active` only while it holds the lock and
its tick is alive.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from carbonshift.config import load_settings
from carbonshift.scheduler import Scheduler
from tests.scheduler.helpers import spec, wait_for, window
from tests.scheduler.test_crash import Daemon, marker_command, overrides, wait_status


def _lock_backend(client: Scheduler, pid: int) -> int:
    """The PostgreSQL backend holding the advisory lock of the daemon in process `pid` (its lock
    connection; a standby's connection holds none)."""
    query = text(
        "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE :name"
    )
    with client.engine.connect() as conn:
        pids = list(conn.execute(query, {"name": f"carbonshift-daemon pid {pid} on %"}).scalars())
    assert len(pids) == 1, f"process {pid} holds the daemon lock on {len(pids)} connections"
    return int(pids[0])


def _terminate(client: Scheduler, backend: int) -> None:
    with client.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()


def _roles(daemon: Daemon) -> list[str]:
    return [line.removeprefix("ROLE ") for line in daemon.lines if line.startswith("ROLE ")]


def test_two_daemons_keep_launching_after_the_lock_connection_drops_twice(
    tmp_path: Path, pg_url: str
) -> None:
    settings = overrides(tmp_path, pg_url)
    # ticks 2 s apart: a leader that noticed a lost lock only on its next tick would act (and run its
    # timers) for up to 2 s after the drop; the lead is checked every 0.2 s on its own
    settings["scheduler"].update(poll_interval_s=2.0, leadership_check_s=0.2)
    client = Scheduler.from_settings(load_settings(None, **settings))  # submits and reads; never started
    marker = tmp_path / "launches.txt"
    d1 = Daemon(tmp_path, "d1", settings)
    d2: Daemon | None = None
    jobs = []
    try:
        d1.wait_line("ROLE active")
        d2 = Daemon(tmp_path, "d2", settings)
        d2.wait_line("ROLE standby")
        hour = datetime.now(UTC) + timedelta(hours=1)

        def submit(name: str, in_s: float) -> None:
            start = datetime.now(UTC) + timedelta(seconds=in_s)
            job = spec(
                name=name, command=marker_command(marker, 0.1), duration="1m", window=window(start, hour)
            )
            jobs.append(client.submit(job))

        # due while the lock changes hands: their launch timers are in the first leader's memory
        for i in range(3):
            submit(f"before-{i}", 3 + i)
        active, standby = d1, d2
        takeovers_s = []
        for drop in (1, 2):
            backend = _lock_backend(client, active.pid)
            dropped_at = time.monotonic()
            _terminate(client, backend)
            wait_for(
                lambda s=standby: _roles(s)[-1:] == ["active"], 15, f"drop {drop}: {standby.name} active"
            )
            takeovers_s.append(time.monotonic() - dropped_at)
            wait_for(
                lambda a=active: _roles(a)[-1:] == ["standby"], 15, f"drop {drop}: {active.name} standby"
            )
            submit(f"during-{drop}", 1)
            active, standby = standby, active
        assert _roles(d1) == ["active", "standby", "active"]
        assert _roles(d2) == ["standby", "active", "standby"]
        assert all(s < 10 for s in takeovers_s), takeovers_s
        print(
            f"\nlock drops: {len(takeovers_s)}, takeover after "
            + ", ".join(f"{t:.2f} s" for t in takeovers_s)
        )

        # jobs due in seconds after both drops: the leader (d1 again) launches every one, once
        for i in range(4):
            submit(f"after-{i}", 2)
        for job in jobs:
            wait_status(client, job.id, "succeeded", timeout=40)
        expected = sorted(client.get_job(job.id).runs[0].id for job in jobs)
        assert sorted(marker.read_text().split()) == expected  # each launched exactly once
        assert all(len(client.get_job(job.id).runs) == 1 for job in jobs)
        assert d1.proc.exitcode is None and d2.proc.exitcode is None  # both still running
    finally:
        d1.stop()
        if d2 is not None:
            d2.stop()
        client.shutdown()


def test_health_says_active_only_while_the_lock_is_held_and_the_tick_is_alive(
    tmp_path: Path, pg_url: str
) -> None:
    settings = overrides(tmp_path, pg_url)
    settings["scheduler"].update(leadership_check_s=0.2, tick_stale_s=0.5)
    first = Scheduler.from_settings(load_settings(None, **settings))
    second = Scheduler.from_settings(load_settings(None, **settings))
    try:
        first.start()
        second.start()
        wait_for(lambda: first.health()["last_tick_age_s"] is not None, 10, "a first tick")
        health = first.health()
        assert health["status"] == "ok" and health["role"] == "active"
        assert 0 <= health["last_tick_age_s"] < 5
        assert second.health() == {"status": "ok", "role": "standby", "last_tick_age_s": None}

        # a tick that cannot begin (held up, as by a hung database call) turns the active daemon stale
        release = threading.Event()
        held = threading.Event()

        def hold_the_tick() -> None:
            with first._tick_lock:
                held.set()
                release.wait(20)

        holder = threading.Thread(target=hold_the_tick, daemon=True)
        holder.start()
        assert held.wait(5)
        try:
            wait_for(lambda: first.health()["status"] == "stale", 10, "the held-up tick to be seen")
            stale = first.health()
            assert stale["role"] == "stale" and "no tick has begun" in stale["detail"]
            assert stale["last_tick_age_s"] > 0.5
        finally:
            release.set()
            holder.join(10)
        wait_for(lambda: first.health()["status"] == "ok", 10, "the tick to be alive again")

        # the lock connection drops: the first steps down on its own check, the standby takes over
        _terminate(second, _lock_backend(second, os.getpid()))
        wait_for(lambda: first.health()["role"] == "standby", 10, "the first to step down")
        wait_for(lambda: second.health()["role"] == "active", 10, "the standby to take over")
    finally:
        first.shutdown()
        second.shutdown()


def test_healthz_answers_503_with_the_tick_age_while_the_active_daemons_tick_is_held_up(
    tmp_path: Path,
) -> None:
    from tests.api.helpers import start_server

    api = start_server(tmp_path, scheduler={"poll_interval_s": 0.2, "tick_stale_s": 0.5})
    try:
        wait_for(lambda: api.get("/healthz", token="").json()["last_tick_age_s"] is not None, 10, "a tick")
        ok = api.get("/healthz", token="")
        assert ok.status_code == 200
        body = ok.json()
        assert body["status"] == "ok" and body["role"] == "active" and body["last_tick_age_s"] < 5
        with api.scheduler._tick_lock:  # the tick cannot begin, as when a database call hangs
            wait_for(lambda: api.get("/healthz", token="").status_code == 503, 10, "503 from /healthz")
            stale = api.get("/healthz", token="")
        assert stale.headers["content-type"].startswith("application/json")
        body = stale.json()
        assert body["status"] == "stale" and body["role"] == "stale" and body["last_tick_age_s"] > 0.5
        assert "no tick has begun" in body["detail"] and "version" in body
        wait_for(lambda: api.get("/healthz", token="").status_code == 200, 10, "200 again once it ticks")
    finally:
        api.stop()


def test_a_leader_whose_timers_die_rebuilds_them_and_keeps_launching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = overrides(tmp_path, None)
    settings["scheduler"].update(leadership_check_s=0.2, tick_stale_s=0.5)
    sched = Scheduler.from_settings(load_settings(None, **settings))
    marker = tmp_path / "launches.txt"
    try:
        sched.start()
        wait_for(lambda: sched.health()["last_tick_age_s"] is not None, 10, "a first tick")
        # the timers' thread is gone (as JobLookupError once made it die): nothing wakes the daemon
        sched._ctx.timers.stop(wait=False)
        start = datetime.now(UTC) + timedelta(seconds=1)
        job = sched.submit(
            spec(
                name="after",
                command=marker_command(marker, 0.1),
                duration="1m",
                window=window(start, start + timedelta(hours=1)),
            )
        )
        with caplog.at_level("WARNING", logger="carbonshift.scheduler.core"):
            wait_status(sched, job.id, "succeeded", timeout=20)
        assert any("rebuilding the timers" in r.getMessage() for r in caplog.records)
        assert marker.read_text().split() == [sched.get_job(job.id).runs[0].id]
        wait_for(lambda: sched.health()["status"] == "ok", 10, "healthy again")
    finally:
        sched.shutdown()
