"""Read-only views of jobs, runs and plans, as the HTTP API and the CLI show them.

Built from database rows in one place so every caller sees the same shape; `to_dict` is the JSON
contract (times ISO 8601 UTC with Z).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from carbonshift.scheduler.models import JobRow, PlanRow, ReportRow, RunEventRow, RunRow
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.timeutil import isoformat_z

# a view is built from an ORM object or from a Core row of the same table's columns (what a listing
# reads: cheaper, nothing to track); both answer the same attribute names
CoreRow = Row[*tuple[Any, ...]]
JobRecord = JobRow | CoreRow
RunRecord = RunRow | CoreRow
PlanRecord = PlanRow | CoreRow  # a summary's rows have no `options`
EventRecord = RunEventRow | CoreRow
ReportRecord = ReportRow | CoreRow

ACTUAL_KEYS = (
    "energy_kwh",
    "kg_co2e",
    "embodied_kg_co2e",
    "total_kg_co2e",
    "mean_g_per_kwh",
    "start",
    "end",
    "duration_s",
    "exit_code",
    "terminated_by",
    "zone",
    "signal",
    "pue",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else isoformat_z(value)


def actual_from_report(body: dict[str, Any], source: str, received_at: datetime) -> dict[str, Any]:
    """The measured numbers of a tracker report (what planned-vs-actual compares)."""
    out = {k: body.get(k) for k in ACTUAL_KEYS if k in body}
    out["source"] = source
    out["received_at"] = isoformat_z(received_at)
    return out


@dataclass(frozen=True)
class PlanView:
    id: int
    run_id: str
    generated_at: datetime
    kind: str
    adopted: bool
    reason: str
    gain_pct: float | None
    option: dict[str, Any] | None
    options: list[Any]
    baseline: dict[str, Any] | None
    signal: str | None
    notices: list[Any]

    @classmethod
    def from_row(cls, row: PlanRecord, *, with_options: bool = True) -> PlanView:
        """`with_options=False`: the row was read without its ranked options (a job list's summary,
        where they are most of a job's size); the view then has none."""
        return cls(
            id=row.id,
            run_id=row.run_id,
            generated_at=row.generated_at,
            kind=row.kind,
            adopted=row.adopted,
            reason=row.reason,
            gain_pct=row.gain_pct,
            option=row.option,
            options=list(row.options or []) if with_options else [],
            baseline=row.baseline,
            signal=row.signal,
            notices=list(row.notices or []),
        )

    @property
    def moved(self) -> bool:
        """A re-plan (or capacity fallback) that changed where or when the run starts."""
        return self.adopted and self.kind != "initial"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "generated_at": isoformat_z(self.generated_at),
            "kind": self.kind,
            "adopted": self.adopted,
            "moved": self.moved,
            "reason": self.reason,
            "gain_pct": None if self.gain_pct is None else round(self.gain_pct, 3),
            "option": self.option,
            "options": self.options,
            "baseline": self.baseline,
            "signal": self.signal,
            "notices": self.notices,
        }


@dataclass(frozen=True)
class RunEvent:
    at: datetime
    from_state: str | None
    to_state: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": isoformat_z(self.at),
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RunView:
    id: str
    job_id: str
    seq: int
    status: RunState
    provider: str | None
    region: str | None
    zone: str | None
    nominal: datetime | None
    window_earliest: datetime
    deadline: datetime
    planned_start: datetime | None
    planned_end: datetime | None
    planned: dict[str, Any] | None
    actual: dict[str, Any] | None
    instance_id: str | None
    console_url: str | None
    refusals: list[Any]
    error: str | None
    note: str | None
    exit_code: int | None
    cancel_requested: bool
    launched_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    events: list[RunEvent] = field(default_factory=list)
    log_available: bool = False
    release: dict[str, Any] | None = None  # the instance release: pending until the provider confirms
    # one chunk of an interruptible job: {"index", "count", "stop_at"} (stop_at: its planned end, where
    # the daemon pauses it; null for the last chunk); None for an unsplit run
    chunk: dict[str, Any] | None = None

    @classmethod
    def from_row(
        cls,
        row: RunRecord,
        events: list[EventRecord],
        report: ReportRecord | None,
        *,
        log_available: bool = False,
    ) -> RunView:
        return cls(
            id=row.id,
            job_id=row.job_id,
            seq=row.seq,
            status=RunState(row.state),
            provider=row.provider,
            region=row.region,
            zone=row.zone,
            nominal=row.nominal,
            window_earliest=row.window_earliest,
            deadline=row.deadline,
            planned_start=row.planned_start,
            planned_end=row.planned_end,
            planned=row.planned,
            actual=None
            if report is None
            else actual_from_report(report.body, report.source, report.received_at),
            instance_id=row.instance_id,
            console_url=row.console_url,
            refusals=list(row.refusals or []),
            error=row.error,
            note=row.note,
            exit_code=row.exit_code,
            cancel_requested=row.cancel_requested,
            launched_at=row.launched_at,
            ended_at=row.ended_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            events=[RunEvent(e.at, e.from_state, e.to_state, e.reason) for e in events],
            log_available=log_available,
            release=None
            if row.release_state is None
            else {
                "state": row.release_state,
                "attempts": row.release_attempts,
                "next_at": _iso(row.release_next_at) if row.release_state == "pending" else None,
                "error": row.release_error,
                "released_at": _iso(row.released_at),
            },
            chunk=None
            if row.chunk_index is None
            else {"index": row.chunk_index, "count": row.chunk_count, "stop_at": _iso(row.stop_at)},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "seq": self.seq,
            "status": self.status.value,
            "provider": self.provider,
            "region": self.region,
            "zone": self.zone,
            "nominal": _iso(self.nominal),
            "window": {"earliest": isoformat_z(self.window_earliest), "deadline": isoformat_z(self.deadline)},
            "planned_start": _iso(self.planned_start),
            "planned_end": _iso(self.planned_end),
            "planned": self.planned,
            "actual": self.actual,
            "instance_id": self.instance_id,
            "console_url": self.console_url,
            "refusals": self.refusals,
            "error": self.error,
            "note": self.note,
            "exit_code": self.exit_code,
            "cancel_requested": self.cancel_requested,
            "launched_at": _iso(self.launched_at),
            "ended_at": _iso(self.ended_at),
            "created_at": isoformat_z(self.created_at),
            "updated_at": isoformat_z(self.updated_at),
            "events": [e.to_dict() for e in self.events],
            "log_available": self.log_available,
            "release": self.release,
            "chunk": self.chunk,
        }


@dataclass(frozen=True)
class JobView:
    id: str
    name: str
    status: str  # a one-off job shows its run's state; a schedule 'scheduled'; or 'cancelled'
    job_status: JobStatus
    spec: dict[str, Any]
    schedule: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    status_reason: str | None
    plans: list[PlanView]
    runs: list[RunView]
    kind: str = "scheduled"  # or "tracked": a run `carbonshift track --server` posted to the ledger
    labels: dict[str, str | None] = field(default_factory=dict)  # organisation, team, project
    # a job list's summary: built without the history (run events, the plans not in force, each
    # plan's ranked options), so `to_dict` leaves `plans`, the plan's `options` and run `events` out
    summary: bool = False

    @classmethod
    def build(
        cls,
        row: JobRecord,
        runs: list[RunView],
        plans: list[PlanRecord],
        next_occurrence: datetime | None = None,
        *,
        summary: bool = False,
    ) -> JobView:
        job_status = JobStatus(row.status)
        if job_status is JobStatus.CANCELLED:
            status = "cancelled"
        elif row.recurring:
            status = "scheduled"
        else:
            # the latest run, not counting the chunks the scheduler cancelled itself (the rest of a job
            # whose chunk failed, or ended early; chunks a re-plan made unnecessary): a job whose chunk
            # failed shows failed
            deciding = [
                r
                for r in runs
                if not (r.chunk is not None and r.status is RunState.CANCELLED and not r.cancel_requested)
            ] or runs
            status = deciding[-1].status.value if deciding else "planned"
        schedule = row.spec.get("schedule")
        if schedule is not None:
            schedule = {**schedule, "next_occurrence": _iso(next_occurrence)}
        return cls(
            id=row.id,
            name=row.name,
            status=status,
            job_status=job_status,
            spec=row.spec,
            schedule=schedule,
            created_at=row.created_at,
            updated_at=row.updated_at,
            status_reason=row.status_reason,
            plans=[PlanView.from_row(p, with_options=not summary) for p in plans],
            runs=runs,
            kind=row.kind or "scheduled",
            labels={"organisation": row.organisation, "team": row.team, "project": row.project},
            summary=summary,
        )

    @property
    def current_run(self) -> RunView | None:
        return self.runs[-1] if self.runs else None

    @property
    def plan(self) -> PlanView | None:
        """The plan the latest run follows now."""
        run = self.current_run
        if run is None:
            return None
        # a chunk follows the plan made for its job's chunks (stored with the chunk it was made for)
        plan_id = (run.planned or {}).get("plan_id")
        adopted = [p for p in self.plans if (p.run_id == run.id or p.id == plan_id) and p.adopted]
        return adopted[-1] if adopted else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape; a summary (see `summary`) leaves `plans`, the plan's `options` and each
        run's `events` out."""
        plan = self.plan
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "labels": self.labels,
            "status": self.status,
            "job_status": self.job_status.value,
            "status_reason": self.status_reason,
            "spec": self.spec,
            "schedule": self.schedule,
            "created_at": isoformat_z(self.created_at),
            "updated_at": isoformat_z(self.updated_at),
            "plan": None if plan is None else plan.to_dict(),
        }
        runs = [r.to_dict() for r in self.runs]
        if self.summary:
            if out["plan"] is not None:
                del out["plan"]["options"]
            for run in runs:
                del run["events"]
        else:
            out["plans"] = [p.to_dict() for p in self.plans]
        out["runs"] = runs
        return out
