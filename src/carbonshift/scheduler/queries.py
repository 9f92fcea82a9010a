"""The read side of the API: jobs and runs as views (see views.py for their shape), a local run's
log, and the counters /metrics shows. Reads only; works on any instance, active or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import CarbonshiftError
from carbonshift.providers.base import Provider
from carbonshift.providers.local import LocalProvider
from carbonshift.schedule import next_occurrence
from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.models import JobRow, PlanRow, ReportRow, RunEventRow, RunRow
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.scheduler.views import JobView, RunView

__all__ = ["NotFoundError", "job_views", "metrics", "run_log", "run_views"]

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


def job_views(s: Session, jobs: list[JobRow], now: datetime) -> list[JobView]:
    """Views of these jobs, with their runs and plans (a few queries, not one per job)."""
    if not jobs:
        return []
    ids = [j.id for j in jobs]
    runs: list[RunRow] = []
    plans: list[PlanRow] = []
    for part in _chunks(ids):
        runs += s.scalars(select(RunRow).where(RunRow.job_id.in_(part)).order_by(RunRow.seq))
        plans += s.scalars(select(PlanRow).where(PlanRow.job_id.in_(part)).order_by(PlanRow.id))
    runs_by_job: dict[str, list[RunView]] = {}
    for view in run_views(s, runs):
        runs_by_job.setdefault(view.job_id, []).append(view)
    plans_by_job: dict[str, list[PlanRow]] = {}
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


def run_views(s: Session, runs: list[RunRow]) -> list[RunView]:
    """Views of these runs, with their events and latest report."""
    ids = [r.id for r in runs]
    events: dict[str, list[RunEventRow]] = {}
    reports: dict[str, ReportRow] = {}
    for part in _chunks(ids):
        for e in s.scalars(select(RunEventRow).where(RunEventRow.run_id.in_(part)).order_by(RunEventRow.id)):
            events.setdefault(e.run_id, []).append(e)
        for r in s.scalars(
            select(ReportRow)
            .where(ReportRow.run_id.in_(part), ReportRow.rejected.is_(None))
            .order_by(ReportRow.id)
        ):
            reports[r.run_id] = r  # the latest report that counts wins
    out = []
    for run in runs:
        details = (run.handle or {}).get("details") or {}
        log_path = details.get("log_path")
        available = bool(log_path) and Path(str(log_path)).exists()
        out.append(
            RunView.from_row(run, events.get(run.id, []), reports.get(run.id), log_available=available)
        )
    return out


def run_log(store: Store, providers: dict[str, Provider], job_id: str, run_id: str, max_bytes: int) -> str:
    """The captured stdout and stderr of a local run (the tail, at most `max_bytes`)."""
    with store.tx() as s:
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
    """Counters for Prometheus /metrics: runs by status, jobs by status, and kg CO2e planned,
    measured and saved. planned/baseline/saving count runs that were launched (a waiting run has
    saved nothing yet); `actual_kg_co2e` sums the trackers' reports, and `planned_kg_co2e_measured`
    the plans of the same runs, so the two compare like for like."""
    with store.tx() as s:
        runs = list(s.scalars(select(RunRow)))
        jobs = list(s.scalars(select(JobRow.status)))
        counted = select(ReportRow).where(ReportRow.rejected.is_(None)).order_by(ReportRow.id)
        reports = {r.run_id: r for r in s.scalars(counted)}
    by_status = {state.value: 0 for state in RunState}
    planned = baseline = actual = planned_measured = 0.0
    launched = measured = 0
    for run in runs:
        by_status[run.state] = by_status.get(run.state, 0) + 1
        p = run.planned or {}
        if run.launched_at is not None:
            launched += 1
            planned += float(p.get("kg_co2e") or 0.0)
            baseline += float(p.get("baseline_kg_co2e") or 0.0)
        report = reports.get(run.id)
        if report is not None and isinstance(report.body.get("kg_co2e"), int | float):
            measured += 1
            actual += float(report.body["kg_co2e"])
            planned_measured += float(p.get("kg_co2e") or 0.0)
    jobs_by_status = {status.value: 0 for status in JobStatus}
    for status in jobs:
        jobs_by_status[status] = jobs_by_status.get(status, 0) + 1
    return {
        "role": role,
        "jobs_by_status": jobs_by_status,
        "runs_by_status": by_status,
        "runs_launched": launched,
        "planned_kg_co2e": planned,
        "baseline_kg_co2e": baseline,
        "saving_kg_co2e": baseline - planned,
        "saving_pct": (baseline - planned) / baseline * 100 if baseline > 0 else None,
        "runs_measured": measured,
        "actual_kg_co2e": actual,
        "planned_kg_co2e_measured": planned_measured,
    }
