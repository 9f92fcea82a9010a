"""The emissions ledger: what finished runs used, emitted, were planned to emit and would have emitted
had they run at once where they run today, totalled by owner, place and month.

Each run carries its ledger numbers as columns (migration 0006), written when they become known:
`planned_kg_co2e` and `baseline_kg_co2e` when a plan is adopted (`planned_numbers`), `energy_kwh`,
`kg_co2e` and `embodied_kg_co2e` when the tracker's report arrives (`actual_numbers`, applied by a
listener on every insert of a report, whichever path stores it). So `totals` is one grouped SQL query
(SQLAlchemy Core) of sums, never a loop over runs or a parse of JSON.

A run counts once it has ended and its report gave its emissions (`ended_at` and `kg_co2e` set); it
falls in the month it ended, in UTC. The saving of a run is its baseline minus what it emitted,
summed over the runs that have both. An ad-hoc run that `carbonshift track --server` posted
(`record_tracked`) was not shifted: its baseline is what it emitted, so it saves nothing, and it has no
plan.

Both parts of a run's footprint are kept: `kg_co2e` is the operational part (its energy, PUE
included, times the grid's intensity), `embodied_kg_co2e` the hardware's share of its manufacture and
disposal (SCI's M) as the tracker reported it, and `total_kg_co2e` their sum (a run that reported no
embodied part adds nothing to it). The saving is operational only: shifting a run in time or place
does not change the hardware it wears.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, event, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from carbonshift.config.jobspec import LABEL_KEYS, Labels
from carbonshift.errors import UserInputError
from carbonshift.ledger_figures import FIGURES
from carbonshift.scheduler.models import JobRow, ReportRow, RunEventRow, RunRow
from carbonshift.scheduler.report_check import storable
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.timeutil import isoformat_z, parse_datetime

GROUP_KEYS = ("organisation", "team", "project", "provider", "region", "month")
FILTER_KEYS = ("organisation", "team", "project", "provider", "region")
TRACKED = "tracked"

Bind = Engine | Connection | Session


# ---- the numbers each run carries ---------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def planned_numbers(planned: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The run's ledger columns from the plan option it now follows (its `planned` JSON)."""
    p = planned or {}
    return {
        "planned_kg_co2e": _number(p.get("kg_co2e")),
        "baseline_kg_co2e": _number(p.get("baseline_kg_co2e")),
    }


def actual_numbers(report: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The run's ledger columns from its tracker report (`embodied_kg_co2e`: None when the report
    has no embodied part, as reports of trackers before it did not)."""
    r = report or {}
    return {
        "energy_kwh": _number(r.get("energy_kwh")),
        "kg_co2e": _number(r.get("kg_co2e")),
        "embodied_kg_co2e": _number(r.get("embodied_kg_co2e")),
    }


@event.listens_for(ReportRow, "after_insert")
def _report_stored(_mapper: Any, connection: Connection, target: ReportRow) -> None:
    """Every report stored, whichever path stores it (a remote run's POST, a local run's report read
    at its end, a tracked run), writes its numbers onto its run in the same transaction: the latest
    report wins, as in the run's view."""
    if target.rejected is not None:
        return  # kept aside with its reason: never summed (see report_check)
    numbers = actual_numbers(target.body if isinstance(target.body, Mapping) else None)
    if numbers["kg_co2e"] is None and numbers["energy_kwh"] is None:
        return
    connection.execute(update(RunRow).where(RunRow.id == target.run_id).values(**numbers))


def labels_of(job: JobRow) -> dict[str, str | None]:
    return {k: getattr(job, k) for k in LABEL_KEYS}


# ---- totals -----------------------------------------------------------------------------------------


def check_group_by(group_by: Sequence[str] | str | None) -> list[str]:
    """'team,month' or ['team', 'month'] -> ['team', 'month']; UserInputError('group_by') otherwise."""
    if group_by is None:
        return []
    items = group_by.split(",") if isinstance(group_by, str) else list(group_by)
    keys = [k.strip() for k in items if k.strip()]
    for key in keys:
        if key not in GROUP_KEYS:
            raise UserInputError("group_by", f"unknown key {key!r}; use any of {', '.join(GROUP_KEYS)}")
    return list(dict.fromkeys(keys))


def _month(dialect: str) -> ColumnElement[Any]:
    """'YYYY-MM' of the run's end (stored as naive UTC)."""
    if dialect == "postgresql":
        return func.to_char(RunRow.ended_at, "YYYY-MM")
    # SQLite keeps SQLAlchemy's DateTime as text 'YYYY-MM-DD HH:MM:SS.ffffff': its first 7 characters
    # are the month, cheaper to take than strftime('%Y-%m', ...), which parses the whole time
    return func.substr(RunRow.ended_at, 1, 7)


def _key_columns(key: str, dialect: str) -> list[ColumnElement[Any]]:
    """The SQL grouping of one key. A region is grouped with its provider (two providers' regions of
    one name stay apart) and shown as provider:region; the text is joined per group, not per run."""
    if key == "month":
        return [_month(dialect).label("k_month")]
    if key == "region":
        return [RunRow.provider.label("k_region_provider"), RunRow.region.label("k_region")]
    return [getattr(RunRow, key).label(f"k_{key}")]


def _key_value(key: str, row: Mapping[str, Any]) -> Any:
    if key == "region":
        provider, region = row["k_region_provider"], row["k_region"]
        return None if region is None else f"{provider}:{region}" if provider else region
    return row[f"k_{key}"]


def _dialect(bind: Bind) -> str:
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def _filters(filters: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise UserInputError(key, f"not a ledger filter; use any of {', '.join(FILTER_KEYS)}")
        if value is None or value == "":
            continue
        column = getattr(RunRow, key)
        if key == "region" and isinstance(value, str) and ":" in value:
            provider, _, region = value.partition(":")
            out.append(and_(RunRow.provider == provider, RunRow.region == region))
        elif isinstance(value, str):
            out.append(column == value)
        else:
            out.append(column.in_([str(v) for v in value]))
    return out


def _when(value: datetime | str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError as exc:
            raise UserInputError(name, str(exc)) from None
    if value.tzinfo is None:
        raise UserInputError(name, "a time without a zone; give one, e.g. 2026-11-01T00:00Z")
    return value.astimezone(UTC)


def _figures(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"runs": int(row["runs"] or 0), **{k: _number(row[k]) for k in FIGURES}}


def _add(total: dict[str, Any], group: Mapping[str, Any]) -> None:
    total["runs"] += group["runs"]
    for k in FIGURES:
        if group[k] is not None:
            total[k] = (total[k] or 0.0) + group[k]


def totals(
    bind: Bind,
    group_by: Sequence[str] | str | None = (),
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """Ledger totals of finished runs that ended in [start, end), grouped by `group_by` (any of
    GROUP_KEYS) and filtered by label, provider or region (`team="ml-platform"`; a list means any of).

    Returns `{"group_by", "from", "to", "groups": [{"key": {...}, "runs", "energy_kwh", "kg_co2e",
    "embodied_kg_co2e", "total_kg_co2e", "planned_kg_co2e", "baseline_kg_co2e", "saved_kg_co2e"}],
    "total": {"runs", ...}}`; `kg_co2e` is operational, `total_kg_co2e` operational plus embodied; a
    figure no counted run has is null. Groups are sorted by key (nulls last); `total` is the sum of the groups."""
    keys = check_group_by(group_by)
    t0, t1 = _when(start, "from"), _when(end, "to")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise UserInputError("to", f"must be after from ({isoformat_z(t0)})")
    dialect = _dialect(bind)
    columns = [c for k in keys for c in _key_columns(k, dialect)]
    both = and_(RunRow.baseline_kg_co2e.is_not(None), RunRow.kg_co2e.is_not(None))
    conditions = [RunRow.ended_at.is_not(None), RunRow.kg_co2e.is_not(None), *_filters(filters)]
    if t0 is not None:
        conditions.append(RunRow.ended_at >= t0)
    if t1 is not None:
        conditions.append(RunRow.ended_at < t1)
    stmt = (
        select(
            *columns,
            func.count().label("runs"),
            func.sum(RunRow.energy_kwh).label("energy_kwh"),
            func.sum(RunRow.kg_co2e).label("kg_co2e"),
            func.sum(RunRow.embodied_kg_co2e).label("embodied_kg_co2e"),
            func.sum(RunRow.kg_co2e + func.coalesce(RunRow.embodied_kg_co2e, 0.0)).label("total_kg_co2e"),
            func.sum(RunRow.planned_kg_co2e).label("planned_kg_co2e"),
            func.sum(RunRow.baseline_kg_co2e).label("baseline_kg_co2e"),
            func.sum(case((both, RunRow.baseline_kg_co2e - RunRow.kg_co2e))).label("saved_kg_co2e"),
        )
        .where(*conditions)
        .group_by(*columns)
    )
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
    else:
        rows = [dict(r._mapping) for r in bind.execute(stmt)]
    # (with no group_by, SQL answers one row even when no run counts: it is dropped)
    groups = [{"key": {k: _key_value(k, row) for k in keys}, **_figures(row)} for row in rows if row["runs"]]
    groups.sort(key=lambda g: [(g["key"][k] is None, g["key"][k] or "") for k in keys])
    total: dict[str, Any] = {"runs": 0, **dict.fromkeys(FIGURES)}
    for group in groups:
        _add(total, group)
    return {
        "group_by": keys,
        "from": None if t0 is None else isoformat_z(t0),
        "to": None if t1 is None else isoformat_z(t1),
        "groups": groups,
        "total": total,
    }


# ---- ad-hoc runs posted by `carbonshift track --server` -----------------------------------------------


def tracked_ids(report_run_id: str) -> tuple[str, str]:
    """(job id, run id) for a tracked run: derived from the tracker's run id, so posting the same
    report twice stores it once."""
    digest = hashlib.sha256(f"carbonshift-tracked:{report_run_id}".encode()).hexdigest()[:16]
    return f"job-t{digest}", f"run-t{digest}"


def _report_time(report: Mapping[str, Any], key: str, fallback: datetime) -> datetime:
    value = report.get(key)
    if isinstance(value, str) and value:
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    return fallback


def _region_of(report: Mapping[str, Any]) -> tuple[str | None, str | None]:
    location = report.get("location")
    ref = location.get("region") if isinstance(location, Mapping) else None
    if isinstance(ref, str) and ":" in ref:
        provider, _, region = ref.partition(":")
        return provider[:32], region[:128]
    return None, None


def record_tracked(
    session: Session, report: Mapping[str, Any], labels: Labels, now: datetime, name: str | None = None
) -> tuple[str, bool]:
    """Store a tracked run (a job of kind `tracked` with one finished run and its report) so it counts
    in the ledger. Returns (run id, created); the same report posted again is stored once."""
    rid = report.get("run_id")
    if not isinstance(rid, str) or not rid.strip():
        raise UserInputError("run_id", "a tracker report has its run_id")
    actual = actual_numbers(report)
    if actual["kg_co2e"] is None or actual["energy_kwh"] is None:
        raise UserInputError("kg_co2e", "the report has no energy_kwh and kg_co2e to count")
    job_id, run_id = tracked_ids(rid)
    if session.get(RunRow, run_id) is not None:
        return run_id, False
    start = _report_time(report, "start", now)
    end = max(_report_time(report, "end", now), start)
    command = report.get("command")
    argv = [str(a) for a in command] if isinstance(command, list) else []
    job_name = (name or "tracked")[:63]
    provider, region = _region_of(report)
    zone = report.get("zone")
    code = report.get("exit_code")
    exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    state = RunState.SUCCEEDED if exit_code in (0, None) else RunState.FAILED
    label_values = {k: getattr(labels, k) for k in LABEL_KEYS}
    session.add(
        JobRow(
            id=job_id,
            name=job_name,
            spec={
                "name": job_name,
                "command": argv,
                "duration": f"{max(int((end - start).total_seconds()), 1)}s",
                "labels": {k: v for k, v in label_values.items() if v is not None},
                "tracked_run_id": rid,
            },
            recurring=False,
            status=JobStatus.DONE.value,
            status_reason="a run tracked with carbonshift track --server",
            created_at=now,
            updated_at=now,
            kind=TRACKED,
            **label_values,
        )
    )
    session.flush()
    session.add(
        RunRow(
            id=run_id,
            job_id=job_id,
            seq=1,
            state=state.value,
            window_earliest=start,
            deadline=end,
            duration_s=max(int((end - start).total_seconds()), 0),
            provider=provider,
            region=region,
            zone=str(zone)[:64] if isinstance(zone, str) else None,
            refusals=[],
            cancel_requested=False,
            prestart_replanned=False,
            launch_attempts=0,
            exit_code=exit_code,
            launched_at=start,
            ended_at=end,
            created_at=now,
            updated_at=now,
            planned_kg_co2e=None,
            baseline_kg_co2e=actual["kg_co2e"],  # not shifted: it emitted what running it then there did
            **actual,
            **label_values,
        )
    )
    session.flush()
    session.add(
        RunEventRow(
            run_id=run_id,
            at=now,
            from_state=None,
            to_state=state.value,
            reason="tracked run posted to the ledger",
        )
    )
    session.add(ReportRow(run_id=run_id, received_at=now, source="tracked", body=storable(dict(report))))
    return run_id, True
