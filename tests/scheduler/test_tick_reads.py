"""What a tick reads at rest: its looks for queued jobs out of step or left behind read the partial
indexes of runs holding a handle (migration 0011), not every waiting or finished run, and a handle set
to None (stored by the ORM as a JSON null) is no handle to them, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text

from carbonshift.clock import FixedClock
from carbonshift.providers.base import QUEUED_FOR, Handle
from carbonshift.scheduler import Scheduler
from carbonshift.scheduler.lifecycle import z
from carbonshift.scheduler.models import RunRow
from carbonshift.scheduler.queueing import holds_handle
from tests.scheduler.helpers import NOW, FakeProvider, spec, window
from tests.scheduler.located import located_settings

NAME = "lab"


def _started(tmp_path: Path, db_url: str | None) -> tuple[Scheduler, FixedClock, FakeProvider]:
    clock = FixedClock(NOW)
    provider = FakeProvider(NAME)
    settings = located_settings(tmp_path, NAME, "r1", scheduler={"replan_interval_s": 86400}, db_url=db_url)
    sched = Scheduler.from_settings(settings, clock=clock, providers={NAME: provider})  # type: ignore[dict-item]
    sched.start(background=False)
    return sched, clock, provider


def _submit(sched: Scheduler) -> str:
    job = sched.submit(
        spec(
            placement={"regions": [f"{NAME}:r1"]},
            window=window(NOW + timedelta(hours=1), NOW + timedelta(hours=3)),
        )
    )
    return job.runs[0].id


def _plan(sched: Scheduler, statement: str, parameters: Any, only_held: bool = False) -> str:
    """The database's plan for a statement the scheduler sent, as one line. `only_held` (PostgreSQL):
    with the runs' other indexes dropped for the look (rolled back), so a table of a few rows shows
    whether the partial indexes can answer it, not which index its planner likes for so few."""
    with sched.engine.connect() as conn:
        if sched.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return " | ".join(str(row[-1]) for row in rows)
        with conn.begin():
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # still taken when nothing else can
            if only_held:
                names = conn.scalars(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE tablename = 'runs' "
                        "AND schemaname = current_schema()"
                    )
                )
                for name in [n for n in names if n.startswith("ix_") and not n.startswith("ix_runs_held_")]:
                    conn.exec_driver_sql(f'DROP INDEX "{name}"')
            plan = " | ".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            conn.rollback()
        return plan


def test_the_queue_looks_read_the_indexes_of_runs_holding_a_handle(
    tmp_path: Path, db_url: str | None
) -> None:
    sched, clock, _provider = _started(tmp_path, db_url)
    try:
        for _ in range(3):
            _submit(sched)
        sched.tick()
        sent: list[tuple[str, Any]] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, parameters: Any, *_args: Any) -> None:
            sent.append((statement, parameters))

        sched._launcher.queue.sync_due(clock.now())
        event.remove(sched.engine, "before_cursor_execute", _seen)
        looks = [(st, p) for st, p in sent if "FROM runs" in st]
        assert len(looks) == 2, looks  # no engine queues here: waiting runs holding one, ended ones
        for statement, parameters in looks:
            plan = _plan(sched, statement, parameters, only_held=True)
            assert "ix_runs_held_" in plan, plan  # the query says the partial indexes' predicate
        if sched.engine.dialect.name == "sqlite":
            plans = [_plan(sched, *look) for look in looks]
            assert "SEARCH runs USING INDEX ix_runs_held_start (state=? AND planned_start>?)" in plans[0]
            assert "ix_runs_held_unlaunched (state=? AND launched_at=? AND release_state=?)" in plans[1]
    finally:
        sched.shutdown()


def test_a_handle_set_to_none_is_no_handle_and_a_queued_one_left_behind_is_removed(
    tmp_path: Path, db_url: str | None
) -> None:
    """A run holding a job queued ahead at a provider that no longer queues has it removed (the
    handle then set to None: a JSON null, which the looks, and the index, count as no handle)."""
    sched, _clock, provider = _started(tmp_path, db_url)
    try:
        kept, queued, cleared = (_submit(sched) for _ in range(3))
        sched.tick()
        with sched._tx() as s:
            run = s.get(RunRow, queued)
            assert run is not None and run.planned_start is not None
            handle = Handle(NAME, "r1", queued, f"q-{queued}", None, {QUEUED_FOR: z(run.planned_start)})
            run.handle, run.instance_id = handle.to_dict(), handle.instance_id
            cleared_run = s.get(RunRow, cleared)
            assert cleared_run is not None
            cleared_run.handle = {**handle.to_dict(), "run_id": cleared}
        with sched._tx() as s:
            cleared_run = s.get(RunRow, cleared)
            assert cleared_run is not None
            cleared_run.handle = None  # written as a JSON null, as the removal below writes it

        def holding() -> set[str]:
            with sched._tx() as s:
                return set(s.scalars(select(RunRow.id).where(holds_handle())))

        assert holding() == {queued}
        with sched._tx() as s:
            stored = s.scalar(select(func.count()).select_from(RunRow).where(RunRow.handle.is_not(None)))
            assert stored == 2  # the JSON null is stored: a plain IS NOT NULL would read that run too
        sched.tick()
        assert provider.terminated == [queued]
        view = sched.get_run(queued)
        assert view.instance_id is None
        assert any("removed its queued job" in e.reason for e in view.events)
        assert holding() == set()
        sched.tick()
        assert provider.terminated == [queued]  # once
        assert sched.get_run(kept).instance_id is None and sched.get_run(cleared).instance_id is None
    finally:
        sched.shutdown()


def test_the_schedules_look_reads_its_index(tmp_path: Path) -> None:
    """Each tick's look for active schedules is a range of (recurring, status), not every active job."""
    sched, clock, _provider = _started(tmp_path, None)
    try:
        _submit(sched)
        sent: list[tuple[str, Any]] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, parameters: Any, *_args: Any) -> None:
            sent.append((statement, parameters))

        sched._schedules.advance_all(clock.now())
        event.remove(sched.engine, "before_cursor_execute", _seen)
        looks = [(st, p) for st, p in sent if "FROM jobs" in st]
        assert len(looks) == 1, looks
        plan = _plan(sched, *looks[0])
        assert "SEARCH jobs USING INDEX ix_jobs_recurring_status (recurring=? AND status=?)" in plan, plan
    finally:
        sched.shutdown()
