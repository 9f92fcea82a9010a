"""The scheduler's tables (SQLAlchemy 2 ORM). The schema itself is created and changed only by the
Alembic migrations in `migrations/`; these classes must match the latest one (a test checks).

Times are stored as naive UTC (SQLite has no time zone type) and come back timezone-aware through
`UtcDateTime`, so nothing downstream ever compares a naive and an aware datetime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    desc,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# a run holds a handle (a JSON null, what the ORM writes for a handle set to None, is none; SQL NULL
# is not <> anything): the predicate of the partial indexes `ix_runs_held_*`, which a query can use
# only when it says the same (queueing.holds_handle)
HOLDS_HANDLE_SQL = "CAST(handle AS TEXT) <> 'null'"
# a run that is a chunk of an interruptible job: the predicate of the partial index `ix_runs_chunks_start`
CHUNK_SQL = "chunk_index IS NOT NULL"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Every column's type is given explicitly, so the models read like the migration."""


class JobRow(Base):
    __tablename__ = "jobs"
    # migration 0010: the job list's order (newest first, then id), so a page is an index range
    __table_args__ = (
        Index("ix_jobs_created_id", desc("created_at"), "id"),
        # migration 0011: the tick's look for active schedules reads them alone, not every active job
        Index("ix_jobs_recurring_status", "recurring", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # migration 0006: scheduled (submitted) or tracked (posted to the ledger); the ownership labels
    kind: Mapped[str] = mapped_column(String(16), default="scheduled", server_default="scheduled")
    organisation: Mapped[str | None] = mapped_column(String(63), nullable=True)
    team: Mapped[str | None] = mapped_column(String(63), nullable=True)
    project: Mapped[str | None] = mapped_column(String(63), nullable=True)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # one run per occurrence of a schedule, whichever daemon or thread creates it
        UniqueConstraint("job_id", "nominal", name="uq_runs_job_nominal"),
        Index("ix_runs_state_start", "state", "planned_start"),
        Index("ix_runs_release", "release_state", "release_next_at"),
        # migration 0012: the re-plan pass's looks, each a range of an index: runs planned long ago (or
        # never), and the chunks (partial: only chunks), instead of every waiting run with an OR
        Index("ix_runs_state_last_planned", "state", "last_planned_at"),
        Index(
            "ix_runs_chunks_start",
            "state",
            "planned_start",
            sqlite_where=text(CHUNK_SQL),
            postgresql_where=text(CHUNK_SQL),
        ),
        # migration 0011: partial, only the runs holding a handle (few wait or end unlaunched holding
        # one), so the tick's looks for queued jobs out of step or left behind read those alone
        Index(
            "ix_runs_held_start",
            "state",
            "planned_start",
            sqlite_where=text(HOLDS_HANDLE_SQL),
            postgresql_where=text(HOLDS_HANDLE_SQL),
        ),
        Index(
            "ix_runs_held_unlaunched",
            "state",
            "launched_at",
            "release_state",
            sqlite_where=text(HOLDS_HANDLE_SQL),
            postgresql_where=text(HOLDS_HANDLE_SQL),
        ),
        # migration 0006: the ledger's totals read this covering index, never the wide rows
        Index(
            "ix_runs_ledger",
            "ended_at",
            "kg_co2e",
            "organisation",
            "team",
            "project",
            "provider",
            "region",
            "energy_kwh",
            "planned_kg_co2e",
            "baseline_kg_co2e",
            "embodied_kg_co2e",  # migration 0010
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    nominal: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    window_earliest: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_s: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    region: Mapped[str | None] = mapped_column(String(128), nullable=True)
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    planned_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    planned_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    planned: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    instance_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    console_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    refusals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    terminate_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # migration 0002
    # migration 0003: a launch that ended without a clear answer, and how often find() was asked since
    launch_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    launch_looks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    launch_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)  # migration 0004
    # migration 0005: the instance release, kept until the provider confirms the instance is gone
    release_state: Mapped[str | None] = mapped_column(String(16), nullable=True)  # pending | done
    release_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    release_next_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    release_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # migration 0007: one chunk of an interruptible job (1-based index, of count); stopped at stop_at
    chunk_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    report_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    prestart_replanned: Mapped[bool] = mapped_column(Boolean, default=False)
    launch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    launched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # migration 0006: the job's labels, copied when the run is made, and the ledger's numbers: the
    # plan's (when adopted) and the tracker report's (when it arrives), so totals are SQL sums
    organisation: Mapped[str | None] = mapped_column(String(63), nullable=True)
    team: Mapped[str | None] = mapped_column(String(63), nullable=True)
    project: Mapped[str | None] = mapped_column(String(63), nullable=True)
    energy_kwh: Mapped[float | None] = mapped_column(Float, nullable=True)
    kg_co2e: Mapped[float | None] = mapped_column(Float, nullable=True)
    planned_kg_co2e: Mapped[float | None] = mapped_column(Float, nullable=True)
    baseline_kg_co2e: Mapped[float | None] = mapped_column(Float, nullable=True)
    # migration 0010: the embodied part of the run's footprint (SCI's M), from its tracker report
    embodied_kg_co2e: Mapped[float | None] = mapped_column(Float, nullable=True)


class LeadershipRow(Base):
    """One row: the epoch goes up each time a daemon becomes active (a fencing token for its writes)."""

    __tablename__ = "leadership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str | None] = mapped_column(Text, nullable=True)
    since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DaemonKeyRow(Base):
    """Keys made once per database and shared by every daemon on it (report tokens derive from one)."""

    __tablename__ = "daemon_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class PlanRow(Base):
    """Every plan ever made for a run: the first, each re-plan (adopted or not, and why), each
    capacity fallback."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    generated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    adopted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    gain_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    option: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    options: Mapped[list[Any]] = mapped_column(JSON, default=list)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    signal: Mapped[str | None] = mapped_column(String(16), nullable=True)
    notices: Mapped[list[Any]] = mapped_column(JSON, default=list)


class RunEventRow(Base):
    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)


class RunEndRow(Base):
    """Migration 0012: a run that reached a terminal state, written in the transaction that moved it,
    and deleted once the tick has looked at its job (closed when it was a one-off job with no run left
    to end). So the tick's close looks at the jobs whose runs ended since, not at every active job; a
    row read is deleted by its id, so one committed while the tick looked waits for the next tick."""

    __tablename__ = "run_ends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32))


class ReportRow(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(16))  # local: read from the run dir; remote: posted back
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    # why the report was not counted (see report_check); None: it counts. Kept aside, never summed
    rejected: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
