"""Read-only views of jobs, runs and plans, as the HTTP API and the CLI show them.

Built from database rows in one place so every caller sees the same shape; `to_dict` is the JSON
contract (times ISO 8601 UTC with Z).
"""

from __future__ import annotations

from collections.abc import Sequence
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
PlanRecord = PlanRow | CoreRow
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


def actual_from_report(body: dict[str, Any], source: str, received_at: datetime | str) -> dict[str, Any]:
    """The measured numbers of a tracker report (what planned-vs-actual compares); `received_at` as a
    time, or already as `isoformat_z` writes it."""
    out = {k: body.get(k) for k in ACTUAL_KEYS if k in body}
    out["source"] = source
    out["received_at"] = received_at if isinstance(received_at, str) else isoformat_z(received_at)
    return out


def shown_status(job_status: JobStatus, recurring: bool, runs: Sequence[tuple[str, bool, bool]]) -> str:
    """A job's `status`: 'cancelled', 'scheduled' for a schedule, else its latest run's state, not
    counting the chunks the scheduler cancelled itself (the rest of a job whose chunk failed, or ended
    early; chunks a re-plan made unnecessary): a job whose chunk failed shows failed. `runs`: each run's
    (state, whether it is a chunk, whether its cancel was asked for), in order."""
    if job_status is JobStatus.CANCELLED:
        return "cancelled"
    if recurring:
        return "scheduled"
    cancelled = RunState.CANCELLED.value
    deciding = [state for state, chunk, asked in runs if not (chunk and state == cancelled and not asked)]
    last = deciding or [state for state, _chunk, _asked in runs]
    return last[-1] if last else "planned"


def plan_in_force(plans: Sequence[tuple[int, str, bool]], run_id: str, plan_id: int | None) -> int | None:
    """Which of a job's `plans` (each its id, run id and whether adopted, in order) the run follows
    now, by index: the last adopted one made for the run, or (a chunk) the one its `planned` names,
    made for its job's chunks and stored with another."""
    chosen = None
    for i, (pid, for_run, adopted) in enumerate(plans):
        if adopted and (for_run == run_id or pid == plan_id):
            chosen = i
    return chosen


def release_view(
    state: str | None, attempts: int, next_at: str | None, error: str | None, released_at: str | None
) -> dict[str, Any] | None:
    """A run's instance release (times as `isoformat_z` writes them): None before one was asked for;
    `next_at` only while it is pending."""
    if state is None:
        return None
    return {
        "state": state,
        "attempts": attempts,
        "next_at": next_at if state == "pending" else None,
        "error": error,
        "released_at": released_at,
    }


def chunk_view(index: int | None, count: int | None, stop_at: str | None) -> dict[str, Any] | None:
    """One chunk of an interruptible job (None for an unsplit run)."""
    return None if index is None else {"index": index, "count": count, "stop_at": stop_at}


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
    def from_row(cls, row: PlanRecord) -> PlanView:
        return cls(
            id=row.id,
            run_id=row.run_id,
            generated_at=row.generated_at,
            kind=row.kind,
            adopted=row.adopted,
            reason=row.reason,
            gain_pct=row.gain_pct,
            option=row.option,
            options=list(row.options or []),
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
            release=release_view(
                row.release_state,
                row.release_attempts,
                _iso(row.release_next_at),
                row.release_error,
                _iso(row.released_at),
            ),
            chunk=chunk_view(row.chunk_index, row.chunk_count, _iso(row.stop_at)),
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

    @classmethod
    def build(
        cls,
        row: JobRecord,
        runs: list[RunView],
        plans: list[PlanRecord],
        next_occurrence: datetime | None = None,
    ) -> JobView:
        job_status = JobStatus(row.status)
        status = shown_status(
            job_status,
            row.recurring,
            [(r.status.value, r.chunk is not None, r.cancel_requested) for r in runs],
        )
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
            plans=[PlanView.from_row(p) for p in plans],
            runs=runs,
            kind=row.kind or "scheduled",
            labels={"organisation": row.organisation, "team": row.team, "project": row.project},
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
        keys = [(p.id, p.run_id, p.adopted) for p in self.plans]
        chosen = plan_in_force(keys, run.id, (run.planned or {}).get("plan_id"))
        return None if chosen is None else self.plans[chosen]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape. A job list shows each job without its history (`plans`, the plan's
        `options`, each run's `events`): `listing` writes that summary straight from the stored rows."""
        plan = self.plan
        return {
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
            "plans": [p.to_dict() for p in self.plans],
            "runs": [r.to_dict() for r in self.runs],
        }
