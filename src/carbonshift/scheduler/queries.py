"""The read side of the API: jobs and runs as views (see views.py for their shape), a page of the job
list, a local run's log, and the counters /metrics shows. Reads only, each in a read-only transaction
(`Store.read`: on SQLite it never waits for the daemon's writes); works on any instance, active or not.

A job list reads only its page (a keyset range of the index on (created_at DESC, id)) and, unless the
full history is asked for, writes each job's summary (no run events, no plans but the one in force,
no ranked options) as JSON straight from the rows (listing.py). /metrics is a handful of grouped SQL
counts and sums, never a read of every run.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import CarbonshiftError
from carbonshift.providers.base import Provider
from carbonshift.providers.local import LocalProvider
from carbonshift.schedule import next_occurrence
from carbonshift.scheduler import listing
from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.models import JobRow, PlanRow, ReportRow, RunEventRow, RunRow
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.scheduler.views import (
    CoreRow,
    EventRecord,
    JobRecord,
    JobView,
    PlanRecord,
    ReportRecord,
    RunRecord,
    RunView,
)

__all__ = [
    "JobPage",
    "NotFoundError",
    "Position",
    "job_page",
    "job_views",
    "metrics",
    "run_log",
    "run_views",
]

_CHUNK = 500  # ids per IN (...) query


class NotFoundError(CarbonshiftError, LookupError):
    """No such job, run or log."""

    def __init__(self, what: str, ident: str, hint: str = "") -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"no {what} {ident!r}" + (f": {hint}" if hint else ""))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Position(Protocol):
    """A place in the job list: the last job of the previous page (the API's cursor decodes to one)."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class JobPage:
    """A page of the job list, in its order; `more`: whether jobs follow its last one. `jobs`: each a
    `JobView` for a page read with `full`, else a `JobSummary` (typed loosely: which one is chosen at
    run time, by the API's `full` parameter)."""

    jobs: list[Any]
    more: bool


def job_page(
    s: Session,
    limit: int | None,
    after: Position | None,
    labels: dict[str, str],
    now: datetime,
    *,
    full: bool = False,
) -> JobPage:
    """At most `limit` jobs (every one for None) following `after`, newest first (created_at
    descending, then id), with these labels. Reads the page's rows only: one more than `limit` tells
    whether there is a next page. `full`: each job as `job_views` builds it, else as the job list shows
    it (`listing.job_summaries`: its JSON, without the history)."""
    params: dict[str, Any] = dict(labels)
    if after is not None:
        params.update(after_at=after.created_at, after_id=after.id)
    if limit is not None:
        params["limit"] = limit + 1
    stmt = _page_query(full, tuple(sorted(labels)), after is not None, limit is not None)
    rows: list[CoreRow] = list(s.connection().execute(stmt, params).all())  # Core rows: no ORM layer
    more = limit is not None and len(rows) > limit
    if full:
        return JobPage(job_views(s, rows[:limit], now), more)
    return JobPage(listing.job_summaries(s, rows[:limit], now), more)


@functools.cache
def _page_query(full: bool, labels: tuple[str, ...], after: bool, limited: bool) -> Select[Any]:
    """The query for a page of this shape, its values bound at run time: built (and compiled) once."""
    jobs = JobRow.__table__
    stmt = select(jobs) if full else listing.summary_columns()
    stmt = stmt.where(*(jobs.c[k] == bindparam(k) for k in labels))
    if after:
        at = bindparam("after_at", type_=jobs.c.created_at.type)
        job_id = bindparam("after_id", type_=jobs.c.id.type)
        # "created_at < c OR (created_at = c AND id > i)", spelled so the first term bounds the index
        # range: with the OR alone SQLite scans the index from the newest job to the cursor
        stmt = stmt.where(jobs.c.created_at <= at, or_(jobs.c.created_at < at, jobs.c.id > job_id))
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id)
    return stmt.limit(bindparam("limit")) if limited else stmt


def job_views(s: Session, jobs: Sequence[JobRecord], now: datetime) -> list[JobView]:
    """Views of these jobs, with their runs and plans (a few queries, not one per job)."""
    # Core rows, not ORM objects: a listing only reads, and building ORM instances (identity map,
    # state) was about half of a page's database time
    if not jobs:
        return []
    ids = [j.id for j in jobs]
    runs: list[RunRecord] = []
    plans: list[PlanRecord] = []
    for part in _chunks(ids):
        runs += s.execute(select(RunRow.__table__).where(RunRow.job_id.in_(part)).order_by(RunRow.seq))
        plans += s.execute(select(_PLANS).where(_PLANS.c.job_id.in_(part)).order_by(_PLANS.c.id))
    runs_by_job: dict[str, list[RunView]] = {}
    for view in run_views(s, runs):
        runs_by_job.setdefault(view.job_id, []).append(view)
    plans_by_job: dict[str, list[PlanRecord]] = {}
    for plan in plans:
        plans_by_job.setdefault(plan.job_id, []).append(plan)
    out = []
    for job in jobs:
        nxt = None
        if job.recurring and job.status == JobStatus.ACTIVE.value:
            with contextlib.suppress(Exception):
                nxt = next_occurrence(parse_jobspec(job.spec, source=f"job {job.id}"), now)
        out.append(JobView.build(job, runs_by_job.get(job.id, []), plans_by_job.get(job.id, []), nxt))
    return out


_PLANS = PlanRow.__table__
_REPORTS = ReportRow.__table__
_COUNTED = select(_REPORTS.c.run_id, _REPORTS.c.received_at, _REPORTS.c.source, _REPORTS.c.body).where(
    _REPORTS.c.rejected.is_(None)
)


def run_views(s: Session, runs: Sequence[RunRecord]) -> list[RunView]:
    """Views of these runs, with their latest report and their events."""
    ids = [r.id for r in runs]
    history: dict[str, list[EventRecord]] = {}
    reports: dict[str, ReportRecord] = {}
    for part in _chunks(ids):
        for e in s.execute(
            select(RunEventRow.__table__).where(RunEventRow.run_id.in_(part)).order_by(RunEventRow.id)
        ):
            history.setdefault(e.run_id, []).append(e)
        for r in s.execute(_COUNTED.where(_REPORTS.c.run_id.in_(part)).order_by(_REPORTS.c.id)):
            reports[r.run_id] = r  # the latest report that counts wins
    out = []
    for run in runs:
        details = (run.handle or {}).get("details") or {}
        log_path = details.get("log_path")
        available = bool(log_path) and Path(str(log_path)).exists()
        out.append(
            RunView.from_row(run, history.get(run.id, []), reports.get(run.id), log_available=available)
        )
    return out


def run_log(store: Store, providers: dict[str, Provider], job_id: str, run_id: str, max_bytes: int) -> str:
    """The captured stdout and stderr of a local run (the tail, at most `max_bytes`)."""
    with store.read() as s:
        run = s.get(RunRow, run_id)
        if run is None or run.job_id != job_id:
            raise NotFoundError("run", run_id, f"job {job_id!r} has no such run")
        provider, handle, state = run.provider, run.handle, RunState(run.state)
    if provider != "local":
        raise NotFoundError("log", run_id, f"runs on {provider} have no log captured here; see console_url")
    local = providers.get("local")
    details = (handle or {}).get("details") or {}
    if details.get("log_path"):
        path = Path(str(details["log_path"]))
    elif isinstance(local, LocalProvider):
        path = local.log_path(run_id)
    else:
        raise NotFoundError("log", run_id, "no local provider here")
    if not path.exists():
        hint = "the run has not started yet" if state.pending else "its log is not on this machine"
        raise NotFoundError("log", run_id, hint)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size > max_bytes:
            fh.seek(size - max_bytes)
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = f"[... {size - max_bytes} earlier bytes not shown ...]\n" + text
    return text


def metrics(store: Store, role: str) -> dict[str, Any]:
    """Counters for Prometheus /metrics: runs by status, jobs by status, kg CO2e planned, measured and
    saved, and the reports refused. planned/baseline/saving count launched runs that have a plan (a
    waiting run has saved nothing yet; a tracked run was never planned); `actual_kg_co2e` and
    `actual_embodied_kg_co2e` sum the ledger's numbers of the runs whose report gave their emissions,
    and `planned_kg_co2e_measured` the plans of the same runs, so the two compare like for like. Grouped
    SQL sums over the ledger's columns: the cost does not grow with the history's JSON."""
    planned_kg = func.coalesce(func.sum(RunRow.planned_kg_co2e), 0.0)
    with store.read() as s:
        by_status = {state.value: 0 for state in RunState}
        by_status.update({k: int(n) for k, n in s.execute(_count_by(RunRow.state))})
        jobs_by_status = {status.value: 0 for status in JobStatus}
        jobs_by_status.update({k: int(n) for k, n in s.execute(_count_by(JobRow.status))})
        launched = int(s.scalar(select(func.count()).where(RunRow.launched_at.is_not(None))) or 0)
        planned, baseline = s.execute(
            select(planned_kg, func.coalesce(func.sum(RunRow.baseline_kg_co2e), 0.0)).where(
                RunRow.launched_at.is_not(None), RunRow.planned_kg_co2e.is_not(None)
            )
        ).one()
        measured, actual, embodied, planned_measured = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(RunRow.kg_co2e), 0.0),
                func.coalesce(func.sum(RunRow.embodied_kg_co2e), 0.0),
                planned_kg,
            ).where(RunRow.kg_co2e.is_not(None))
        ).one()
        rejected = s.scalar(select(func.count()).where(ReportRow.rejected.is_not(None)))
    planned, baseline = float(planned or 0.0), float(baseline or 0.0)
    return {
        "role": role,
        "jobs_by_status": jobs_by_status,
        "runs_by_status": by_status,
        "runs_launched": launched,
        "planned_kg_co2e": planned,
        "baseline_kg_co2e": baseline,
        "saving_kg_co2e": baseline - planned,
        "saving_pct": (baseline - planned) / baseline * 100 if baseline > 0 else None,
        "runs_measured": int(measured),
        "actual_kg_co2e": float(actual or 0.0),
        "actual_embodied_kg_co2e": float(embodied or 0.0),
        "planned_kg_co2e_measured": float(planned_measured or 0.0),
        "reports_rejected": int(rejected or 0),
    }


def _count_by(column: Any) -> Any:
    return select(column, func.count()).group_by(column)
