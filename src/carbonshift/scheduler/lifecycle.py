"""The run lifecycle, in one place: short transactions, the compare-and-set state move (fenced with
the leadership epoch), events, new runs, and closing finished jobs.

Every part of the scheduler writes a run's state through `Store.move` and nothing else, so the rule
"a state change is an `UPDATE ... WHERE state = <expected>` committed, with its reason, before the
action it announces" holds everywhere, and a daemon that lost the lead (its epoch is no longer the
database's) writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, and_, delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from carbonshift.providers.base import Handle
from carbonshift.scheduler import db, ledger
from carbonshift.scheduler.models import JobRow, LeadershipRow, RunEndRow, RunEventRow, RunRow
from carbonshift.scheduler.states import ALLOWED, TERMINAL, JobStatus, RunState
from carbonshift.timeutil import isoformat_z

__all__ = ["ACTIVE", "PAUSED", "PENDING", "TERMINAL_STATES", "Store", "new_id", "z"]

log = logging.getLogger(__name__)

PENDING = (RunState.PLANNED.value, RunState.WAITING.value)
ACTIVE = (RunState.LAUNCHING.value, RunState.RUNNING.value)
TERMINAL_STATES = tuple(s.value for s in TERMINAL)
CLOSE_BATCH = 500  # run_ends rows a statement of close_finished_jobs takes (bound parameters)
PAUSED = "paused at its planned end"  # a chunk stopped by the daemon at its end: succeeded, not failed


def new_id(prefix: str) -> str:
    """Short, unique, and a valid instance name on every cloud (lower case, starts with a letter)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def z(t: datetime) -> str:
    return isoformat_z(t)


class Store:
    """The database side of the scheduler: sessions, the schema, and the run state machine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.reader = db.read_only(engine)
        self._read_sessions = sessionmaker(self.reader, expire_on_commit=False)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        # .epoch: the leadership epoch this thread's writes are fenced with (a tick, a re-plan, a worker
        # running provider work a tick handed over); unset for API calls
        self._fence = threading.local()

    # ---- transactions ------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                db.upgrade(self.engine)
                self._schema_ready = True

    @contextlib.contextmanager
    def tx(self) -> Iterator[Session]:
        """One short transaction, committed on exit. Never nested, and never held across a provider
        call or an APScheduler job-store call (both may wait on the database themselves)."""
        self.ensure_schema()
        with self.sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """One read-only transaction (the API's listings and views, the ledger, /metrics). On SQLite it
        takes no write lock (a WAL snapshot: it never waits for a tick's write, nor holds one up);
        nothing may be written in it."""
        self.ensure_schema()
        with self._read_sessions.begin() as session:
            yield session

    # ---- fencing -----------------------------------------------------------------------------------
    @property
    def fence(self) -> int | None:
        """The epoch this thread's state writes are fenced with (None: not fenced)."""
        epoch: int | None = getattr(self._fence, "epoch", None)
        return epoch

    @contextlib.contextmanager
    def fenced(self, epoch: int | None) -> Iterator[None]:
        """This thread's writes, for the duration, only while `epoch` is still the database's."""
        self._fence.epoch = epoch
        try:
            yield
        finally:
            self._fence.epoch = None

    # ---- the state machine -------------------------------------------------------------------------
    def move(self, s: Session, run: RunRow, to: RunState, reason: str, now: datetime, **values: Any) -> bool:
        """Compare-and-set the run's state, with an event row; False when someone else moved it first."""
        frm = RunState(run.state)
        job_id = run.job_id  # read before the move expires the row
        if to not in ALLOWED[frm]:
            raise RuntimeError(f"run {run.id}: {frm} -> {to} is not a transition")
        stmt = (
            update(RunRow)
            .where(RunRow.id == run.id, RunRow.state == frm.value)
            .values(state=to.value, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if to is RunState.LAUNCHING:
            stmt = stmt.where(RunRow.cancel_requested.is_(False))
        fence = self.fence
        if fence is not None:  # a tick's write: only while its epoch is still the database's
            stmt = stmt.where(exists().where(LeadershipRow.id == 1, LeadershipRow.epoch == fence))
        result = cast(CursorResult[Any], s.execute(stmt))
        s.expire(run)
        if result.rowcount != 1:
            if fence is not None:
                log.info(
                    "run %s: %s -> %s not written (moved by another, or epoch %d fenced)",
                    run.id,
                    frm.value,
                    to.value,
                    fence,
                )
            return False
        s.add(RunEventRow(run_id=run.id, at=now, from_state=frm.value, to_state=to.value, reason=reason))
        if to.terminal:
            s.add(RunEndRow(job_id=job_id))  # its job is looked at by the next close_finished_jobs
        log.info("run %s: %s -> %s: %s", run.id, frm.value, to.value, reason)
        return True

    @staticmethod
    def note(s: Session, run: RunRow, reason: str, now: datetime) -> None:
        """An event that is not a state change (a re-plan, a refusal, a stop request)."""
        s.add(RunEventRow(run_id=run.id, at=now, from_state=run.state, to_state=run.state, reason=reason))

    @staticmethod
    def new_run(
        s: Session,
        job: JobRow,
        seq: int,
        nominal: datetime | None,
        earliest: datetime,
        deadline: datetime,
        duration_s: int,
        now: datetime,
        state: RunState = RunState.PLANNED,
        reason: str = "planned",
    ) -> RunRow:
        """A new run of the job, with its first event (a terminal state: born missed, with the reason)."""
        run = RunRow(
            id=new_id("run"),
            job_id=job.id,
            seq=seq,
            nominal=nominal,
            state=state.value,
            window_earliest=earliest,
            deadline=deadline,
            duration_s=duration_s,
            refusals=[],
            cancel_requested=False,
            prestart_replanned=False,
            launch_attempts=0,
            created_at=now,
            updated_at=now,
            ended_at=now if state.terminal else None,
            error=reason if state.terminal else None,
            **ledger.labels_of(job),
        )
        s.add(run)
        s.flush()
        s.add(RunEventRow(run_id=run.id, at=now, from_state=None, to_state=state.value, reason=reason))
        if state.terminal:
            s.add(RunEndRow(job_id=job.id))
        return run

    @staticmethod
    def handle_fields(handle: Handle) -> dict[str, Any]:
        """A launched instance's columns on its run."""
        return {
            "handle": handle.to_dict(),
            "instance_id": handle.instance_id,
            "console_url": handle.console_url,
        }

    def close_finished_jobs(self, now: datetime) -> None:
        """A one-off job whose runs have all ended is done (a schedule stays active until cancelled).

        Only the jobs of the runs that ended since the last call are looked at (the `run_ends` rows
        `move` and `new_run` write with a terminal state, in the same transaction): at rest that is
        one read of an empty table, where looking at every active job read every waiting run (~14 ms
        a tick with 10,000 waiting). The rows read are deleted by their ids in the transaction that
        closes their jobs, so a row committed meanwhile is left for the next call."""
        with self.read() as s:
            ends = s.execute(select(RunEndRow.id, RunEndRow.job_id)).all()
        if not ends:
            return
        unfinished = exists().where(and_(RunRow.job_id == JobRow.id, RunRow.state.not_in(TERMINAL_STATES)))
        with self.tx() as s:
            for i in range(0, len(ends), CLOSE_BATCH):
                batch = ends[i : i + CLOSE_BATCH]
                s.execute(
                    update(JobRow)
                    .where(
                        JobRow.id.in_(sorted({job_id for _, job_id in batch})),
                        JobRow.recurring.is_(False),
                        JobRow.status == JobStatus.ACTIVE.value,
                        ~unfinished,
                    )
                    .values(status=JobStatus.DONE.value, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                s.execute(
                    delete(RunEndRow)
                    .where(RunEndRow.id.in_([end_id for end_id, _ in batch]))
                    .execution_options(synchronize_session=False)
                )


def paused(run: RunRow) -> bool:
    """Whether the daemon stopped this chunk at its planned end (it then succeeded, whatever its exit)."""
    return not run.cancel_requested and bool(run.stop_reason and run.stop_reason.startswith(PAUSED))
