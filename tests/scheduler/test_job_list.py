"""The job list reads only its page (issue 13): a keyset range in the list's order, on SQLite and
PostgreSQL; summaries without the history; reads in read-only transactions that, on SQLite, never
wait for a writer; /metrics from grouped SQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from carbonshift.api.paging import After
from carbonshift.clock import FixedClock
from carbonshift.errors import UserInputError
from carbonshift.scheduler import Scheduler
from carbonshift.scheduler.db import SQLITE_BUSY_MS
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window


def _started(tmp_path: Path, db_url: str | None) -> tuple[Scheduler, FixedClock, FakeProvider]:
    provider = FakeProvider()
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(
        make_settings(tmp_path, db_url=db_url), clock=clock, providers={"local": provider}
    )  # type: ignore[dict-item]
    sched.start(background=False)
    return sched, clock, provider


def _submit_some(sched: Scheduler, clock: FixedClock) -> list[str]:
    """Seven jobs: two at one time and three at another (ties broken by id), two on their own;
    the ids in the list's order (newest first, then id)."""
    for n, team in enumerate(["a", "b", "a", "b", "a", "b", "a"]):
        if n in (1, 3, 6):
            clock.advance(60)
        sched.submit(
            spec(name=f"job{n}", labels={"team": team}, window=window(NOW, NOW + timedelta(hours=6)))
        )
    return [j.id for j in sorted(sched.list_jobs(), key=lambda j: (-j.created_at.timestamp(), j.id))]


def _launch_some(sched: Scheduler, clock: FixedClock) -> None:
    """`_submit_some`, launched: each job has a run with events."""
    _submit_some(sched, clock)
    sched.tick()


def _follow(sched: Scheduler, limit: int, **labels: str) -> list[list[str]]:
    pages: list[list[str]] = []
    after: After | None = None
    while True:
        page = sched.list_jobs_page(limit, after, **labels)
        pages.append([j.id for j in page.jobs])
        if not page.more:
            return pages
        last = page.jobs[-1]
        after = After(last.created_at, last.id)


def test_pages_follow_the_list_order_through_ties(tmp_path: Path, db_url: str | None) -> None:
    sched, clock, _provider = _started(tmp_path, db_url)
    try:
        order = _submit_some(sched, clock)
        assert [j.id for j in sched.list_jobs()] == order
        for limit in (1, 2, 3, 7):
            pages = _follow(sched, limit)
            assert [i for p in pages for i in p] == order, limit
            assert all(len(p) == limit for p in pages[:-1]) and 0 < len(pages[-1]) <= limit
        assert len(_follow(sched, 7)) == 1  # exactly one full page: nothing after it
        team_a = [j.id for j in sched.list_jobs(team="a")]
        assert len(team_a) == 4 and [i for p in _follow(sched, 3, team="a") for i in p] == team_a
        assert sched.list_jobs_page(None).jobs and not sched.list_jobs_page(None).more
        # a job submitted between pages comes first in the list, never in the middle of a listing
        first = sched.list_jobs_page(3)
        clock.advance(60)
        sched.submit(spec(name="late", window=window(NOW, NOW + timedelta(hours=6))))
        last = first.jobs[-1]
        rest = sched.list_jobs_page(10, After(last.created_at, last.id))
        assert [j.id for j in first.jobs] + [j.id for j in rest.jobs] == order
        with pytest.raises(UserInputError, match="colour"):
            sched.list_jobs_page(5, colour="red")
    finally:
        sched.shutdown()


def test_a_page_after_a_cursor_is_an_index_range_on_sqlite(tmp_path: Path) -> None:
    """The query `list_jobs_page` sends for a page after a cursor seeks to the cursor in the index on
    (created_at DESC, id): a SEARCH, not a SCAN from the newest job, and no sort."""
    sched, clock, _provider = _started(tmp_path, None)
    try:
        order = _submit_some(sched, clock)
        sent: list[tuple[str, Any]] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, parameters: Any, *_args: Any) -> None:
            if "FROM jobs" in statement and "ORDER BY" in statement:
                sent.append((statement, parameters))

        middle = sched.list_jobs()[3]
        page = sched.list_jobs_page(2, After(middle.created_at, middle.id))
        assert [j.id for j in page.jobs] == order[4:6]
        assert len(sent) == 2  # list_jobs' listing, then the page's
        statement, parameters = sent[-1]
        with sched.engine.connect() as conn:
            plan = " | ".join(
                str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
        assert "SEARCH jobs USING INDEX ix_jobs_created_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        sched.shutdown()


def test_a_summary_is_the_full_view_less_its_history(tmp_path: Path, db_url: str | None) -> None:
    sched, clock, _provider = _started(tmp_path, db_url)
    try:
        _launch_some(sched, clock)
        full = [j.to_dict() for j in sched.list_jobs_page(None, full=True).jobs]
        summaries = [j.to_dict() for j in sched.list_jobs_page(None).jobs]
        assert len(full) == len(summaries) == 7
        for whole, short in zip(full, summaries, strict=True):
            assert whole["plans"] and whole["plan"]["options"] and whole["runs"][0]["events"]
            expected: dict[str, Any] = {k: v for k, v in whole.items() if k != "plans"}
            expected["plan"] = {k: v for k, v in whole["plan"].items() if k != "options"}
            expected["runs"] = [{k: v for k, v in r.items() if k != "events"} for r in whole["runs"]]
            assert short == expected
        assert sched.get_job(full[0]["id"]).to_dict() == full[0]
    finally:
        sched.shutdown()


def test_reads_on_sqlite_never_wait_for_a_writer(tmp_path: Path) -> None:
    """A listing, a job, the ledger and /metrics answer while another connection holds the write lock
    (a plain BEGIN: a WAL snapshot); a write would queue behind it (BEGIN IMMEDIATE)."""
    sched, clock, _provider = _started(tmp_path, None)
    try:
        job_id = _submit_some(sched, clock)[0]
        begins: list[str] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("BEGIN"):
                begins.append(statement)

        holder = sched.engine.connect()  # its transaction begins IMMEDIATE: it holds the write lock
        holder.exec_driver_sql("UPDATE jobs SET name = 'held' WHERE id = ?", (job_id,))
        try:
            begins.clear()
            t0 = time.monotonic()
            listed = sched.list_jobs_page(3)
            job = sched.get_job(job_id)
            totals = sched.totals()
            metrics = sched.metrics()
            waited = time.monotonic() - t0
            assert waited < 5, f"reads waited {waited:.1f} s for the writer"
            assert len(listed.jobs) == 3 and job.name != "held"  # the snapshot before the write
            assert totals["total"]["runs"] == 0 and metrics["jobs_by_status"]["active"] == 7
            assert begins and set(begins) == {"BEGIN"}, begins

            # a write would wait for the lock (busy_timeout), so it is started in a thread, then released
            done = threading.Event()

            def write() -> None:
                sched.cancel(job_id)
                done.set()

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            assert not done.wait(0.5)
            assert "BEGIN IMMEDIATE" in begins
        finally:
            holder.rollback()
            holder.close()
        assert done.wait(SQLITE_BUSY_MS / 1000)
        writer.join()
    finally:
        sched.shutdown()


def test_metrics_are_the_sums_of_the_stored_runs(tmp_path: Path, db_url: str | None) -> None:
    sched, clock, provider = _started(tmp_path, db_url)
    try:
        _launch_some(sched, clock)
        launched = [j.runs[0] for j in sched.list_jobs()]
        assert all(r.launched_at is not None for r in launched)
        measured = launched[:3]
        reports = [(0.5, 0.125, 0.0625), (1.0, 0.25, None), (0.25, 0.0625, 0.03125)]
        for run, (kwh, kg, embodied) in zip(measured, reports, strict=True):
            body: dict[str, Any] = {"exit_code": 0, "energy_kwh": kwh, "kg_co2e": kg}
            if embodied is not None:
                body["embodied_kg_co2e"] = embodied
            sched.record_report(run.id, provider.requests[run.id].report_token or "", body)
        with pytest.raises(UserInputError):
            sched.record_report(
                launched[4].id, provider.requests[launched[4].id].report_token or "", {"kg_co2e": -1}
            )
        m = sched.metrics()
        planned = [float((r.planned or {})["kg_co2e"]) for r in launched]
        baseline = [float((r.planned or {})["baseline_kg_co2e"]) for r in launched]
        assert m["runs_launched"] == 7 and m["runs_measured"] == 3 and m["reports_rejected"] == 1
        assert m["runs_by_status"]["succeeded"] == 3 and m["runs_by_status"]["running"] == 4
        assert m["jobs_by_status"]["done"] == 3 and m["jobs_by_status"]["active"] == 4
        assert m["planned_kg_co2e"] == pytest.approx(sum(planned))
        assert m["baseline_kg_co2e"] == pytest.approx(sum(baseline))
        assert m["saving_kg_co2e"] == pytest.approx(sum(baseline) - sum(planned))
        assert m["actual_kg_co2e"] == pytest.approx(0.125 + 0.25 + 0.0625)
        assert m["actual_embodied_kg_co2e"] == pytest.approx(0.0625 + 0.03125)
        assert m["planned_kg_co2e_measured"] == pytest.approx(sum(planned[:3]))
    finally:
        sched.shutdown()
