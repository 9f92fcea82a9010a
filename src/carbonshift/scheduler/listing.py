"""The job list's summaries (`GET /api/v1/jobs` without `full`), written as JSON straight from the
stored rows.

A summary is a job's full view (`JobView.to_dict`) less its history: no `plans`, no ranked `options`
on the plan in force, no run `events`. Most of what it still shows is stored as JSON: the spec, the
plan's option, baseline and notices, each run's planned option and refusals. Decoding those columns to
build views, only to encode them again, was most of a page's CPU time (issue 13), so here they are read
as the text the database holds and put into the answer as they are (`_Splicer`). The database writes
the times as `isoformat_z` does, and reads the handle's log path and the plan id by JSON path; Python
builds only the small part around the stored texts, from rows unpacked by position. Content is the
summary's exactly (whitespace inside a stored value aside); tests hold the two to each other on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, String, Text, bindparam, cast, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.jsonwire import encode_json
from carbonshift.schedule import next_occurrence
from carbonshift.scheduler.models import JobRow, PlanRow, ReportRow, RunRow
from carbonshift.scheduler.states import JobStatus
from carbonshift.scheduler.views import (
    CoreRow,
    actual_from_report,
    chunk_view,
    plan_in_force,
    release_view,
    shown_status,
)
from carbonshift.timeutil import isoformat_z

__all__ = ["JobSummary", "job_summaries", "summary_columns"]

_CHUNK = 500  # ids per IN (...) query


@dataclass(frozen=True)
class JobSummary:
    """One job as the job list shows it: its JSON (UTF-8), with what paging needs beside it."""

    id: str
    created_at: datetime
    json: bytes

    def to_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.json))


class _IsoZ(FunctionElement[str]):
    """A stored time as `isoformat_z` writes it (ISO 8601 to the second, with a Z), written by the
    database: times are stored as naive UTC."""

    type = String()
    name = "iso_z"
    inherit_cache = True


@compiles(_IsoZ, "sqlite")
def _iso_z_sqlite(element: _IsoZ, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {compiler.process(element.clauses, **kw)})"


@compiles(_IsoZ, "postgresql")
def _iso_z_postgresql(element: _IsoZ, compiler: SQLCompiler, **kw: Any) -> str:
    return f'to_char({compiler.process(element.clauses, **kw)}, \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'


def _iso(column: Any) -> ColumnElement[str]:
    return _IsoZ(column).label(column.key)


def _text(column: Any) -> ColumnElement[str]:
    """A JSON column as its stored text, never decoded."""
    return cast(column, Text).label(column.key)


_JOBS, _RUNS, _PLANS, _REPORTS = (t.__table__ for t in (JobRow, RunRow, PlanRow, ReportRow))


def summary_columns() -> Select[Any]:
    """The jobs' columns a summary reads (`job_summaries` takes rows of this select)."""
    j = _JOBS.c
    return select(
        j.id,
        j.name,
        j.kind,
        j.organisation,
        j.team,
        j.project,
        j.status,
        j.recurring,
        j.status_reason,
        j.created_at,  # the time itself: a cursor names it to the microsecond
        _IsoZ(j.created_at).label("created_z"),
        _iso(j.updated_at),
        _text(j.spec),
    )


_R = _RUNS.c
_RUN_COLUMNS = (
    select(
        _R.id,
        _R.job_id,
        _R.seq,
        _R.state,
        _R.provider,
        _R.region,
        _R.zone,
        _iso(_R.nominal),
        _iso(_R.window_earliest),
        _iso(_R.deadline),
        _iso(_R.planned_start),
        _iso(_R.planned_end),
        _text(_R.planned),
        RunRow.planned["plan_id"].as_integer().label("plan_id"),
        _R.instance_id,
        _R.console_url,
        _text(_R.refusals),
        _R.error,
        _R.note,
        _R.exit_code,
        _R.cancel_requested,
        _iso(_R.launched_at),
        _iso(_R.ended_at),
        _iso(_R.created_at),
        _iso(_R.updated_at),
        _R.release_state,
        _R.release_attempts,
        _iso(_R.release_next_at),
        _R.release_error,
        _iso(_R.released_at),
        _R.chunk_index,
        _R.chunk_count,
        _iso(_R.stop_at),
        RunRow.handle[("details", "log_path")].as_string().label("log_path"),
    )
    .where(_R.job_id.in_(bindparam("ids", expanding=True)))
    .order_by(_R.seq)
)
_P = _PLANS.c
_PLAN_COLUMNS = (
    select(
        _P.id,
        _P.job_id,
        _P.run_id,
        _iso(_P.generated_at),
        _P.kind,
        _P.adopted,
        _P.reason,
        _P.gain_pct,
        _text(_P.option),
        _text(_P.baseline),
        _P.signal,
        _text(_P.notices),
    )
    .where(_P.job_id.in_(bindparam("ids", expanding=True)), _P.adopted.is_(True))
    .order_by(_P.id)
)
_REPORT_COLUMNS = (
    select(_REPORTS.c.run_id, _REPORTS.c.source, _iso(_REPORTS.c.received_at), _REPORTS.c.body)
    .where(_REPORTS.c.run_id.in_(bindparam("ids", expanding=True)), _REPORTS.c.rejected.is_(None))
    .order_by(_REPORTS.c.id)
)


class _Splicer:
    """Stored JSON texts put into an answer as they are. `stored` keeps a text and gives the marker
    to write where it goes; `dumps` encodes a value, then puts the texts, in the order their markers
    were given, where the markers come out: markers must be given in the order the answer writes them
    (its keys' order). The marker is a random nonce drawn per splicer, so no stored string can pass
    for one."""

    def __init__(self) -> None:
        self._marker = secrets.token_hex(12)
        self._written = f'"{self._marker}"'.encode()
        self._texts: list[bytes] = []

    def stored(self, text: str | None, empty: Any = None) -> Any:
        """The marker for this stored JSON text, or (SQL NULL, a stored null) `empty`; an empty list
        is written as one, without a marker."""
        if text is None or text == "null":
            return empty
        if text == "[]":
            return []
        if "NaN" in text or "Infinity" in text:
            # Python's json writes non-finite floats bare, which is not JSON: null, as every answer has
            text = json.dumps(json.loads(text, parse_constant=_null))
        self._texts.append(text.encode())
        return self._marker

    def dumps(self, value: Any) -> bytes:
        """`value` as compact UTF-8 JSON with the stored texts in place of their markers, written by
        the API's own `encode_json` (a non-finite float becomes null, text that is not valid Unicode is
        escaped)."""
        texts, self._texts = self._texts, []
        pieces = encode_json(value).split(self._written)
        if len(pieces) != len(texts) + 1:
            raise RuntimeError(f"{len(pieces) - 1} markers written for {len(texts)} stored texts")
        spliced = [b""] * (2 * len(texts) + 1)
        spliced[::2] = pieces
        spliced[1::2] = texts
        return b"".join(spliced)


def _null(_constant: str) -> None:
    """What NaN and Infinity decode to: JSON has no such number."""
    return None


def job_summaries(s: Session, jobs: Sequence[CoreRow], now: datetime) -> list[JobSummary]:
    """The summaries of these jobs (rows of `summary_columns`), in their order: one query per table
    (per 500 jobs), none per job."""
    if not jobs:
        return []
    # prepared statements run on the session's connection: no ORM layer, no per-page SQL building
    conn = s.connection()
    ids = [j[0] for j in jobs]
    runs: list[CoreRow] = []
    plans: list[CoreRow] = []
    for part in _chunks(ids):
        runs += conn.execute(_RUN_COLUMNS, {"ids": part}).all()
        plans += conn.execute(_PLAN_COLUMNS, {"ids": part}).all()
    reports: dict[str, CoreRow] = {}
    for part in _chunks([r[0] for r in runs]):
        for report in conn.execute(_REPORT_COLUMNS, {"ids": part}).all():
            reports[report[0]] = report  # by run_id: the latest report that counts wins
    runs_by_job: dict[str, list[CoreRow]] = {}
    for run in runs:
        runs_by_job.setdefault(run[1], []).append(run)  # by job_id
    plans_by_job: dict[str, list[CoreRow]] = {}
    for plan in plans:
        plans_by_job.setdefault(plan[1], []).append(plan)
    splicer = _Splicer()
    out = []
    for job in jobs:
        job_id, created_at = job[0], job[9]
        body = _job(splicer, job, runs_by_job.get(job_id, []), plans_by_job.get(job_id, []), reports, now)
        out.append(JobSummary(job_id, created_at, splicer.dumps(body)))
    return out


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


# the rows are unpacked in their select's column order (attribute access on a row costs ten times
# as much, a sizeable part of a page's time)


def _job(
    splicer: _Splicer,
    job: CoreRow,
    runs: list[CoreRow],
    plans: list[CoreRow],
    reports: dict[str, CoreRow],
    now: datetime,
) -> dict[str, Any]:
    (job_id, name, kind, organisation, team, project, status, recurring, reason) = job[:9]
    (_created_at, created_at, updated_at, spec) = job[9:]
    job_status = JobStatus(status)
    schedule = None
    if recurring:  # a job is recurring when its spec has a schedule (set once, at submission)
        stored = json.loads(spec)
        schedule = stored.get("schedule")
        if schedule is not None:
            nxt = None
            if job_status is JobStatus.ACTIVE:
                with contextlib.suppress(Exception):
                    nxt = next_occurrence(parse_jobspec(stored, source=f"job {job_id}"), now)
            schedule = {**schedule, "next_occurrence": None if nxt is None else isoformat_z(nxt)}
    plan = None
    if runs:  # the latest run's id and plan_id; each plan's id, run id, adopted
        chosen = plan_in_force([(p[0], p[2], p[5]) for p in plans], runs[-1][0], runs[-1][13])
        plan = None if chosen is None else plans[chosen]
    # each run's state, whether it is a chunk, whether its cancel was asked for
    status = shown_status(job_status, recurring, [(r[3], r[30] is not None, r[20]) for r in runs])
    # the stored texts in the order they are written (see _Splicer): spec, plan, runs
    return {
        "id": job_id,
        "name": name,
        "kind": kind or "scheduled",
        "labels": {"organisation": organisation, "team": team, "project": project},
        "status": status,
        "job_status": job_status.value,
        "status_reason": reason,
        "spec": splicer.stored(spec),
        "schedule": schedule,
        "created_at": created_at,
        "updated_at": updated_at,
        "plan": None if plan is None else _plan(splicer, plan),
        "runs": [_run(splicer, r, reports.get(r[0])) for r in runs],
    }


def _plan(splicer: _Splicer, plan: CoreRow) -> dict[str, Any]:
    """`PlanView.to_dict` less `options`."""
    (plan_id, _job_id, run_id, generated_at, kind, adopted, reason, gain_pct) = plan[:8]
    (option, baseline, signal, notices) = plan[8:]
    return {
        "id": plan_id,
        "run_id": run_id,
        "generated_at": generated_at,
        "kind": kind,
        "adopted": adopted,
        "moved": adopted and kind != "initial",
        "reason": reason,
        "gain_pct": None if gain_pct is None else round(gain_pct, 3),
        "option": splicer.stored(option),
        "baseline": splicer.stored(baseline),
        "signal": signal,
        "notices": splicer.stored(notices, []),
    }


def _run(splicer: _Splicer, run: CoreRow, report: CoreRow | None) -> dict[str, Any]:
    """`RunView.to_dict` less `events`."""
    (run_id, job_id, seq, state, provider, region, zone, nominal, earliest, deadline) = run[:10]
    (planned_start, planned_end, planned, _plan_id, instance_id, console_url, refusals) = run[10:17]
    (error, note, exit_code, cancel_requested, launched_at, ended_at, created_at, updated_at) = run[17:25]
    (release_state, release_attempts, release_next_at, release_error, released_at) = run[25:30]
    (chunk_index, chunk_count, stop_at, log_path) = run[30:]
    return {
        "id": run_id,
        "job_id": job_id,
        "seq": seq,
        "status": state,
        "provider": provider,
        "region": region,
        "zone": zone,
        "nominal": nominal,
        "window": {"earliest": earliest, "deadline": deadline},
        "planned_start": planned_start,
        "planned_end": planned_end,
        "planned": splicer.stored(planned),
        "actual": None
        if report is None
        else actual_from_report(report[3], report[1], report[2]),  # body, source, received_at
        "instance_id": instance_id,
        "console_url": console_url,
        "refusals": splicer.stored(refusals, []),
        "error": error,
        "note": note,
        "exit_code": exit_code,
        "cancel_requested": cancel_requested,
        "launched_at": launched_at,
        "ended_at": ended_at,
        "created_at": created_at,
        "updated_at": updated_at,
        "log_available": bool(log_path) and Path(str(log_path)).exists(),
        "release": release_view(release_state, release_attempts, release_next_at, release_error, released_at),
        "chunk": chunk_view(chunk_index, chunk_count, stop_at),
    }
