"""The tick at rest reads nothing when nothing happened (migration 0012), and still does what it did:
a one-off job is closed at the first close after its last run ends (and not while a run is left to
end), whichever way the run ended; the re-plan pass's looks read ranges of indexes. On SQLite and on
PostgreSQL (when reachable)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, event, exists, func, select, text
from sqlalchemy.orm import Session

from carbonshift.clock import FixedClock
from carbonshift.scheduler import RunState, Scheduler, db
from carbonshift.scheduler.lifecycle import TERMINAL_STATES
from carbonshift.scheduler.models import JobRow, RunEndRow, RunRow
from carbonshift.scheduler.states import JobStatus
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window

ENDS = (RunState.CANCELLED, RunState.MISSED)  # what a waiting run may move to, as the daemon would


def _started(tmp_path: Path, db_url: str | None, **cfg: Any) -> tuple[Scheduler, FixedClock]:
    clock = FixedClock(NOW)
    settings = make_settings(tmp_path, db_url=db_url, scheduler=cfg)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": FakeProvider()})  # type: ignore[dict-item]
    sched.start(background=False)
    return sched, clock


def _submit(sched: Scheduler, name: str = "job", **fields: Any) -> str:
    if "schedule" not in fields:
        fields.setdefault("window", window(NOW + timedelta(hours=2), NOW + timedelta(hours=30)))
    return sched.submit(spec(name=name, **fields)).id


def _end(sched: Scheduler, run_id: str, to: RunState = RunState.MISSED) -> None:
    """The run moved to a terminal state through the state machine, as the daemon moves it."""
    with sched._tx() as s:
        run = s.get(RunRow, run_id)
        assert run is not None
        assert sched._store.move(s, run, to, "ended by the test", NOW, ended_at=NOW)


def _add_run(sched: Scheduler, job_id: str, seq: int) -> str:
    with sched._tx() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        run = sched._store.new_run(s, job, seq, None, NOW, NOW + timedelta(hours=30), 3600, NOW)
        return run.id


def _runs(sched: Scheduler, job_id: str) -> list[str]:
    with sched._tx() as s:
        return list(s.scalars(select(RunRow.id).where(RunRow.job_id == job_id).order_by(RunRow.seq)))


def _status(sched: Scheduler, job_id: str) -> str:
    with sched._tx() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        return job.status


def _left_to_close(s: Session) -> int:
    """What the close before migration 0012 would still close: active one-off jobs with no run left."""
    unfinished = exists().where(and_(RunRow.job_id == JobRow.id, RunRow.state.not_in(TERMINAL_STATES)))
    return (
        s.scalar(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.recurring.is_(False), JobRow.status == JobStatus.ACTIVE.value, ~unfinished)
        )
        or 0
    )


def test_a_job_is_closed_at_the_first_close_after_its_last_run_ends(
    tmp_path: Path, db_url: str | None
) -> None:
    sched, _clock = _started(tmp_path, db_url)
    try:
        job_id = _submit(sched)
        first = _runs(sched, job_id)[0]
        second = _add_run(sched, job_id, 2)  # planned: a run left to end
        sched.tick()
        _end(sched, first, RunState.CANCELLED)
        sched._store.close_finished_jobs(NOW)
        assert _status(sched, job_id) == JobStatus.ACTIVE.value  # its second run has not ended
        _end(sched, second)
        assert _status(sched, job_id) == JobStatus.ACTIVE.value  # closed by the close, not the move
        sched._store.close_finished_jobs(NOW)
        assert _status(sched, job_id) == JobStatus.DONE.value
        with sched._tx() as s:
            assert s.scalar(select(func.count()).select_from(RunEndRow)) == 0  # each end looked at once
    finally:
        sched.shutdown()


def test_a_schedule_or_a_cancelled_job_is_not_closed(tmp_path: Path, db_url: str | None) -> None:
    sched, _clock = _started(tmp_path, db_url)
    try:
        nightly = _submit(sched, "nightly", schedule={"cron": "0 22 * * *", "flex": "2h"})
        for run_id in _runs(sched, nightly):
            _end(sched, run_id)
        with sched._tx() as s:  # an occurrence born missed (the daemon was down through it)
            job = s.get(JobRow, nightly)
            assert job is not None
            sched._store.new_run(s, job, 9, NOW, NOW, NOW, 60, NOW, state=RunState.MISSED, reason="missed")
            assert s.scalar(select(func.count()).select_from(RunEndRow)) == 2
        cancelled = _submit(sched, "cancelled")
        sched.cancel(cancelled)
        sched.tick()
        assert _status(sched, nightly) == JobStatus.ACTIVE.value  # a schedule stays until cancelled
        assert _status(sched, cancelled) == JobStatus.CANCELLED.value
        with sched._tx() as s:
            assert s.scalar(select(func.count()).select_from(RunEndRow)) == 0
    finally:
        sched.shutdown()


def test_an_end_committed_while_the_close_looks_is_left_for_the_next(
    tmp_path: Path, db_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close deletes the ends it read, by id: one committed after its read is not lost."""
    sched, _clock = _started(tmp_path, db_url)
    store = sched._store
    try:
        early, late = _submit(sched, "early"), _submit(sched, "late")
        _end(sched, _runs(sched, early)[0])
        tx = store.tx

        @contextlib.contextmanager
        def tx_after_an_end() -> Iterator[Session]:
            monkeypatch.setattr(store, "tx", tx)  # once
            _end(sched, _runs(sched, late)[0])  # committed after the close read the ends
            with tx() as s:
                yield s

        monkeypatch.setattr(store, "tx", tx_after_an_end)
        store.close_finished_jobs(NOW)
        assert (_status(sched, early), _status(sched, late)) == ("done", "active")
        store.close_finished_jobs(NOW)
        assert _status(sched, late) == JobStatus.DONE.value
    finally:
        sched.shutdown()


def test_every_job_the_full_look_would_close_is_closed(tmp_path: Path, db_url: str | None) -> None:
    """Jobs of one to three runs, a random share of them ended at random between closes: after each
    close, no active one-off job is left with every run ended (what the close before 0012 looked
    for, over every job), and none with a run left to end was closed."""
    sched, _clock = _started(tmp_path, db_url)
    rng = random.Random(13)
    try:
        jobs = {}
        for n in range(12):
            job_id = _submit(sched, f"j{n}")
            jobs[job_id] = _runs(sched, job_id) + [_add_run(sched, job_id, k + 2) for k in range(n % 3)]
        open_runs = [run_id for runs in jobs.values() for run_id in runs]
        while open_runs:
            rng.shuffle(open_runs)
            for _ in range(rng.randint(1, 4)):
                if open_runs:
                    _end(sched, open_runs.pop(), rng.choice(ENDS))
            sched._store.close_finished_jobs(NOW)
            with sched._tx() as s:
                assert _left_to_close(s) == 0
                for job_id, runs in jobs.items():
                    job = s.get(JobRow, job_id)
                    assert job is not None
                    assert (job.status == JobStatus.DONE.value) == all(r not in open_runs for r in runs)
    finally:
        sched.shutdown()


def test_at_rest_the_close_reads_only_the_ends_and_writes_nothing(tmp_path: Path, db_url: str | None) -> None:
    sched, _clock = _started(tmp_path, db_url)
    try:
        for n in range(3):
            _submit(sched, f"j{n}")
        sched.tick()
        sent: list[str] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
            sent.append(" ".join(statement.split()))

        sched._store.close_finished_jobs(NOW)
        event.remove(sched.engine, "before_cursor_execute", _seen)
        looks = [s for s in sent if not s.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SELECT 1"))]
        assert len(looks) == 1 and "FROM run_ends" in looks[0], sent
    finally:
        sched.shutdown()


def test_the_upgrade_leaves_a_job_whose_runs_all_ended_to_the_next_close(tmp_path: Path) -> None:
    """A job whose last run ended after the last close of a daemon before 0012 is still closed."""
    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine, "0011")
    t = "'2026-01-01 00:00:00'"
    with engine.begin() as conn:
        for job_id, recurring, state in (
            ("job-ended", 0, "succeeded"),
            ("job-waiting", 0, "waiting"),
            ("job-nightly", 1, "missed"),
        ):
            conn.exec_driver_sql(
                "INSERT INTO jobs (id, name, spec, recurring, status, created_at, updated_at) "
                f"VALUES ('{job_id}', 'j', '{{}}', {recurring}, 'active', {t}, {t})"
            )
            conn.exec_driver_sql(
                "INSERT INTO runs (id, job_id, seq, state, window_earliest, deadline, duration_s, refusals, "
                "cancel_requested, prestart_replanned, launch_attempts, created_at, updated_at) "
                f"VALUES ('run-{job_id}', '{job_id}', 1, '{state}', {t}, {t}, 60, '[]', 0, 0, 0, {t}, {t})"
            )
    engine.dispose()
    sched, _clock = _started(tmp_path, None)
    try:
        sched._store.close_finished_jobs(NOW)
        statuses = {j: _status(sched, j) for j in ("job-ended", "job-waiting", "job-nightly")}
        assert statuses == {"job-ended": "done", "job-waiting": "active", "job-nightly": "active"}
    finally:
        sched.shutdown()


def _plan(sched: Scheduler, statement: Any, index: str) -> str:
    """The database's plan for a look, as one line. PostgreSQL: with sequential scans off (still taken
    when no index can answer) and the runs' other indexes dropped for the look (rolled back), so a
    table of a few rows shows whether `index` can answer it, not which index its planner likes for
    so few (with 10,000 waiting runs, analysed, it takes that one: docs/benchmarks.md)."""
    compiled = statement.compile(sched.engine)
    with sched.engine.connect() as conn:
        if sched.engine.dialect.name == "sqlite":
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            params = tuple(
                p.replace(tzinfo=None).isoformat(" ") if hasattr(p, "tzinfo") else p for p in params
            )
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            return " | ".join(str(row[-1]) for row in rows)
        with conn.begin():
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            names = conn.scalars(
                text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'runs' AND schemaname = current_schema()"
                )
            )
            for name in [n for n in names if n.startswith("ix_") and n != index]:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
            rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
            plan = " | ".join(str(row[0]) for row in rows)
            conn.rollback()
            return plan


@pytest.mark.parametrize("before_s", [0, 900])
def test_the_replan_looks_are_ranges_of_indexes(tmp_path: Path, db_url: str | None, before_s: int) -> None:
    sched, _clock = _started(tmp_path, db_url, replan_before_start_s=before_s)
    try:
        for n in range(3):
            _submit(sched, f"j{n}")
        looks = sched._replanner._maybe_due(NOW)
        assert len(looks) == (4 if before_s else 3)
        expected = ["ix_runs_state_last_planned", "ix_runs_state_last_planned", "ix_runs_chunks_start"]
        for look, index in zip(looks, [*expected, "ix_runs_state_start"], strict=False):
            plan = _plan(sched, look, index)
            assert index in plan and "SCAN runs" not in plan and "Seq Scan" not in plan, plan
    finally:
        sched.shutdown()
