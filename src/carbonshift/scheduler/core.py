"""The scheduler daemon's engine: `Scheduler`, the Python API the HTTP API and the CLI build on.

How it stays correct through crashes and races:

* The database is the source of truth. APScheduler (3.x, its SQLAlchemy job store on the same
  database) only wakes the daemon: a date job at each waiting run's planned start, and interval jobs
  that run `tick` (launch what is due, follow running runs, create occurrences of schedules) and the
  re-planning pass. Every APScheduler job can be re-derived from the tables and is, at every start; a
  lost or dropped job costs at most one poll interval, never a run.
* Every state change is a compare-and-set (`UPDATE ... WHERE state = <expected>`) committed, with
  its reason, before the action it announces: `launching` and the run id are committed before
  `provider.launch`, so a restart finds the run in `launching` and asks `provider.find(run_id)`
  instead of launching a second time. Two threads, or two daemons during a takeover, can never both
  win the same transition.
* APScheduler's misfire handling is set on purpose: `misfire_grace_time=None` (run however late) and
  `coalesce=True` (many missed wake-ups become one), because the 1 s default silently drops a one-off
  job that comes due while the daemon is down. Whether a late run still starts is decided here, from
  its deadline: it starts if start + duration <= deadline (and, if set, within
  `scheduler.misfire_grace_s`), otherwise it is marked missed, with the reason.
* Provider calls never run inside the tick: each run's provider work (launch, with its capacity
  fallbacks; find; status and stop; release) goes to a bounded worker pool (`scheduler.provider_workers`
  threads), one piece of work per run at a time, fenced with the epoch of the tick that handed it over.
  The timers' pass returns at once; `tick()` waits for what it started. A call with no answer after
  `scheduler.provider_call_timeout_s` is given up on (a launch then counts as an unclear answer) and its
  late answer is not used.
* One active daemon per database (see `lock.py`): others refuse (SQLite) or wait as a hot standby
  (PostgreSQL). API calls work on any instance, active or not: they only write rows, and the active
  daemon acts on them (a submission is picked up as `planned`, a cancellation as `cancel_requested`).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import queue
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import CursorResult, and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from carbonshift import runtime
from carbonshift.advisor import Advice, advise
from carbonshift.catalog import Catalog
from carbonshift.clock import Clock, SystemClock
from carbonshift.config import Settings
from carbonshift.config.jobspec import LABEL_KEYS, JobSpec, Labels, Window, format_duration, parse_jobspec
from carbonshift.errors import CarbonshiftError, UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.planner.plan import PlanOption
from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    Provider,
)
from carbonshift.providers.local import LocalProvider, default_runs_dir
from carbonshift.providers.registry import get_provider
from carbonshift.providers.watchdog import overdue
from carbonshift.schedule import next_nominal, next_occurrence
from carbonshift.scheduler import db, ledger
from carbonshift.scheduler.lock import DaemonLock, DaemonLockedError, FileLock, PgAdvisoryLock
from carbonshift.scheduler.models import (
    DaemonKeyRow,
    JobRow,
    LeadershipRow,
    PlanRow,
    ReportRow,
    RunEventRow,
    RunRow,
)
from carbonshift.scheduler.states import ALLOWED, TERMINAL, JobStatus, RunState
from carbonshift.scheduler.views import JobView, RunView
from carbonshift.timeutil import isoformat_z, to_epoch_s

__all__ = ["DaemonLockedError", "NotFoundError", "Scheduler", "live_run_ids"]

log = logging.getLogger(__name__)

Role = Literal["stopped", "standby", "active"]
ServiceFactory = Callable[[], IntensityService]

_PENDING = (RunState.PLANNED.value, RunState.WAITING.value)
RELEASE_RETRY_S = 30.0  # a release not yet confirmed is tried again after this, doubling each time
RELEASE_RETRY_MAX_S = 3600.0
_ACTIVE = (RunState.LAUNCHING.value, RunState.RUNNING.value)
_TERMINAL = tuple(s.value for s in TERMINAL)
_CHUNK = 500  # ids per IN (...) query
PAUSED = "paused at its planned end"  # a chunk stopped by the daemon at its end: succeeded, not failed
SHUTDOWN_CALL_WAIT_S = 10.0  # at shutdown, the longest wait for provider calls in flight
_T = TypeVar("_T")

# APScheduler pickles a job's function by reference and its arguments by value: the function is this
# module's `_timer` and the argument a key into this registry, rewritten at every start.
_INSTANCES: weakref.WeakValueDictionary[str, Scheduler] = weakref.WeakValueDictionary()


class NotFoundError(CarbonshiftError, LookupError):
    """No such job, run or log."""

    def __init__(self, what: str, ident: str, hint: str = "") -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"no {what} {ident!r}" + (f": {hint}" if hint else ""))


def _timer(key: str, action: str, run_id: str | None = None) -> None:
    """APScheduler's entry point (module level, so the job store can pickle a reference to it)."""
    sched = _INSTANCES.get(key)
    if sched is None:
        log.debug("timer %s for an instance no longer here; ignored (re-derived at start)", action)
        return
    sched._on_timer(action, run_id)


def live_run_ids(settings: Settings) -> set[str]:
    """Ids of every run not yet ended, from the scheduler's database: an instance tagged with one of
    them is not an orphan (the providers' orphan check asks this)."""
    sched = Scheduler(settings, providers={})
    try:
        with sched._tx() as s:
            return set(s.scalars(select(RunRow.id).where(RunRow.state.not_in(_TERMINAL))))
    finally:
        sched.engine.dispose()


def _new_id(prefix: str) -> str:
    """Short, unique, and a valid instance name on every cloud (lower case, starts with a letter)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _z(t: datetime) -> str:
    return isoformat_z(t)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _option_dict(option: PlanOption, signal: str) -> dict[str, Any]:
    out = option.to_dict()
    out["ref"] = option.ref
    out["signal"] = signal
    return out


@dataclass(frozen=True)
class _Planned:
    """A plan made for one run: the advice, the option chosen and the launchable ones (fallbacks)."""

    advice: Advice
    chosen: PlanOption
    launchable: list[PlanOption]
    notes: list[str] = field(default_factory=list)

    def option_dicts(self) -> list[dict[str, Any]]:
        signal = self.advice.plan.signal.value
        return [_option_dict(o, signal) for o in self.launchable]


class _LateAnswer(BaseException):
    """A provider call answered after the tick gave up on it (past `provider_call_timeout_s`): raised
    in the worker instead of the answer, to unwind that run's work without recording it. A
    BaseException, so the `except Exception` around provider calls does not take it for an error."""

    def __init__(self, run_id: str, op: str, where: str, took: float, answer: str) -> None:
        super().__init__(f"run {run_id}: {op} on {where} answered after {took:.1f} s ({answer})")
        self.run_id, self.op, self.where, self.took, self.answer = run_id, op, where, took, answer


@dataclass(eq=False)
class _Call:
    """Provider work handed to the worker pool: one run's (for a launch, one job's due runs, in
    order). It holds its runs' ids in `Scheduler._calls` until its thread returns, even after it was
    given up on, so a run never has two calls in flight."""

    keys: tuple[str, ...]
    kind: str  # launch, find, poll, release
    job_id: str | None
    epoch: int | None  # the handing tick's leadership epoch: the worker's writes are fenced with it
    submitted: float  # time.monotonic()
    future: Future[None] = field(default_factory=Future)
    started: bool = False
    # the provider call in progress ("" between calls), for the per-call timeout
    op: str = ""
    op_where: str = ""
    op_run: str = ""
    op_since: float = 0.0
    on_timeout: Callable[[float], None] | None = None
    abandoned: bool = False  # given up on: its late answer is not used


class _Workers:
    """A fixed number of daemon threads running provider work. Not a ThreadPoolExecutor: its threads
    are joined at interpreter exit, so one provider call that never returns (Azure's `.result()` has
    no timeout) would keep the daemon from ever exiting."""

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[None], Callable[[], None]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"carbonshift-provider-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, future: Future[None], fn: Callable[[], None]) -> None:
        self._queue.put((future, fn))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued (shutdown)
            try:
                fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

    def close(self) -> None:
        """Each thread ends after the work queued before this (cancelled work is skipped)."""
        for _ in self._threads:
            self._queue.put(None)


def _answer(result: object) -> str:
    if isinstance(result, Handle):
        return f"instance {result.instance_id}"
    if isinstance(result, InstanceStatus):
        return f"state {result.state.value}"
    return "no result" if result is None else str(result)[:200]


class Scheduler:
    """Jobs and schedules, planned, launched at the chosen time, followed to the end.

    Construct with `from_settings`; `start()` makes this instance the active daemon (or a standby);
    the API methods (submit, get_job, cancel, ...) work whether or not it was started.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db_url: str | None = None,
        clock: Clock | None = None,
        providers: dict[str, Provider] | None = None,
        catalog: Catalog | None = None,
        service_factory: ServiceFactory | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.scheduler
        self.url = db.resolve_url(settings, db_url)
        self.engine = db.create_db_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.clock: Clock = clock or SystemClock()
        self.runs_dir = default_runs_dir(settings)
        self.providers: dict[str, Provider] = dict(providers or {})
        if providers is None:
            for name in self.cfg.providers:
                if name != "local":
                    self.providers[name] = get_provider(name, settings)
        if "local" not in self.providers:
            self.providers["local"] = get_provider("local", settings)
        self._catalog = catalog
        self._service_factory = service_factory or (lambda: runtime.build_service(settings, self.clock))
        self.report_url = self.cfg.report_url
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._replan_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._role: Role = "stopped"
        self._lock: DaemonLock | None = None
        self._aps: Any = None  # apscheduler BackgroundScheduler while active
        self._background = True
        self._stop = threading.Event()
        self._standby_thread: threading.Thread | None = None
        self._key = secrets.token_hex(8)
        self._epoch: int | None = None  # the leadership epoch this daemon claimed when it became active
        self._fence = threading.local()  # .epoch: the epoch a tick's (or re-plan's) writes are fenced by
        self._ctx = threading.local()  # .call: a worker's current _Call; .batch: a waiting tick's calls
        self._calls: dict[str, _Call] = {}  # run id -> its provider work in flight (or queued)
        self._calls_lock = threading.Lock()
        self._pool: _Workers | None = None
        self._lock_io = threading.Lock()  # one thread at a time on the daemon lock's connection
        self._token_key: bytes | None = None
        _INSTANCES[self._key] = self

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        clock: Clock | None = None,
        providers: dict[str, Provider] | None = None,
        **kwargs: Any,
    ) -> Scheduler:
        """The scheduler for these settings: database `db_url` (CARBONSHIFT_DB_URL) or SQLite in the
        data dir. Providers: the given ones, else those named in `scheduler.providers` (built by the
        provider registry); the local provider is always there."""
        return cls(settings, clock=clock, providers=providers, **kwargs)

    # ---- lifecycle ---------------------------------------------------------------------------------
    @property
    def role(self) -> Role:
        """'active' (this instance launches runs), 'standby' (waiting for the lock) or 'stopped'."""
        return self._role

    @property
    def is_active(self) -> bool:
        return self._role == "active"

    @property
    def database(self) -> str:
        """The database URL, password hidden (for logs and /healthz)."""
        return db.safe_url(self.url)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = runtime.build_catalog(self.settings)
        return self._catalog

    def start(self, *, background: bool = True) -> None:
        """Become the active daemon: take the single-daemon lock, migrate the schema, recover (runs
        found launching, running or overdue), and start the timers. On PostgreSQL with another daemon
        active, return at once as a hot standby that takes over when that one's connection drops;
        on SQLite raise DaemonLockedError. `background=False` starts no timers: the caller drives the
        daemon with `tick()` (tests with an injected clock, debugging)."""
        with self._state_lock:
            if self._role != "stopped":
                return
            self._ensure_schema()
            self._stop.clear()
            self._background = background
            lock = self._lock = self._make_lock()
            acquired = lock.try_acquire()
            if acquired:
                self._activate()
            else:
                holder = lock.holder()
        if acquired:
            self._after_activate()
            return
        with self._state_lock:
            if isinstance(lock, PgAdvisoryLock) and self.cfg.standby:
                log.info("standby: %s is active on %s; taking over when it stops", holder, self.database)
                self._enter_standby()
                return
            lock.release()
            self._lock = None
        if isinstance(lock, PgAdvisoryLock):
            raise DaemonLockedError(
                f"another carbonshift daemon is active on {self.database} ({holder}) and "
                "scheduler.standby is false: not starting a second one"
            )
        raise DaemonLockedError(
            f"another carbonshift daemon is already running on {self.database} ({holder}). SQLite allows "
            "one daemon per database file: stop that one first, or give this one another database "
            "(CARBONSHIFT_DB_URL), or use PostgreSQL, where a second daemon waits as a hot standby."
        )

    def wait_active(self, timeout: float) -> bool:
        """Wait until this instance is the active daemon (a standby taking over); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.is_active:
                return True
            time.sleep(0.05)
        return self.is_active

    def shutdown(self, wait: bool = True) -> None:
        """Stop the timers and give the lock back. Runs already started keep running (local ones in
        their own process sessions) and are picked up by the next daemon. Provider calls: no new ones;
        queued ones are dropped and those in flight get a short while (at most SHUTDOWN_CALL_WAIT_S,
        and the per-call timeout) to return; one that does not is left to finish on its own."""
        self._stop.set()
        with self._state_lock:
            aps, self._aps = self._aps, None
            thread, self._standby_thread = self._standby_thread, None
        if aps is not None:
            with contextlib.suppress(Exception):
                # pause first: no new timer is handed to the executor while it shuts down (APScheduler 3
                # would otherwise log 'cannot schedule new futures after shutdown' now and then)
                aps.pause()
                aps.shutdown(wait=wait)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._drain_calls(wait)
        with self._tick_lock, self._replan_lock, self._state_lock:
            if self._lock is not None:
                with self._lock_io:
                    self._lock.release()
                self._lock = None
            self._role = "stopped"
        self.engine.dispose()

    def _make_lock(self) -> DaemonLock:
        path = db.sqlite_path(self.url)
        if path is not None:
            return FileLock(path.with_name(path.name + ".lock"))
        return PgAdvisoryLock(self.url)

    def _activate(self) -> None:
        """With the lock and the state lock held: a new leadership epoch, then timers re-derived from
        the tables (paused)."""
        self._epoch = self._claim_epoch()
        if self._background:
            self._start_timers()
        self._role = "active"
        log.info("active daemon on %s", self.database)

    def _after_activate(self) -> None:
        """Without the state lock (a tick may need it): one recovery tick, then the timers run."""
        self._safely(self._recovery_tick)
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.resume()

    def _claim_epoch(self) -> int:
        """Raise the database's leadership epoch by one and hold the new value: writes a tick makes
        are fenced with it (see _move), so a daemon that lost the lock mid-launch writes nothing."""
        with self._tx() as s:
            row = s.get(LeadershipRow, 1, with_for_update=True)
            now = self.clock.now()
            if row is None:
                row = LeadershipRow(id=1, epoch=0)
                s.add(row)
            row.epoch += 1
            row.holder = f"pid {os.getpid()} on {socket.gethostname()}"
            row.since = now
            s.flush()
            epoch = row.epoch
        log.info("leadership epoch %d on %s", epoch, self.database)
        return epoch

    def _leading(self) -> bool:
        """Right before a provider call: this daemon still holds the lock and the epoch is still its
        own (no other daemon became active since)."""
        lock, epoch = self._lock, self._epoch
        if lock is None or epoch is None or not self._lock_alive(lock):
            return False
        with self._tx() as s:
            return s.scalar(select(LeadershipRow.epoch).where(LeadershipRow.id == 1)) == epoch

    def _lock_alive(self, lock: DaemonLock) -> bool:
        """`lock.alive()`, one thread at a time: the tick and the pool's workers (right before each
        launch) share the lock's one database connection."""
        with self._lock_io:
            return lock.alive()

    def _report_token(self, run_id: str) -> str:
        """The run's report token: derived from a per-database key and the run id, so every launch of
        the run, by any daemon, sends the same token in the same bootstrap (and a provider's
        idempotency key sees one request). Only its hash is stored with the run."""
        if self._token_key is None:
            with self._tx() as s:
                value = s.scalar(select(DaemonKeyRow.value).where(DaemonKeyRow.name == "report-token"))
            if value is None:
                try:
                    with self._tx() as s:
                        s.add(DaemonKeyRow(name="report-token", value=secrets.token_hex(32)))
                except IntegrityError:
                    pass  # another daemon made it first: use theirs
                with self._tx() as s:
                    value = s.scalar(select(DaemonKeyRow.value).where(DaemonKeyRow.name == "report-token"))
            assert value is not None
            self._token_key = bytes.fromhex(value)
        digest = hmac.new(self._token_key, f"report-token:{run_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _enter_standby(self) -> None:
        self._role = "standby"
        self._standby_thread = threading.Thread(
            target=self._standby_loop, name="carbonshift-standby", daemon=True
        )
        self._standby_thread.start()

    def _standby_loop(self) -> None:
        while not self._stop.wait(self.cfg.standby_poll_s):
            lock = self._lock
            if lock is None:
                return
            try:
                with self._lock_io:
                    acquired = lock.try_acquire()
            except Exception:
                log.exception("standby: cannot try the daemon lock")
                continue
            if acquired:
                with self._state_lock:
                    if self._stop.is_set():
                        return
                    log.warning("standby: the active daemon is gone; taking over on %s", self.database)
                    self._standby_thread = None
                    self._activate()
                self._after_activate()
                return

    def _lose_leadership(self) -> None:
        """The lock connection dropped: another daemon may take over, so stop acting at once."""
        with self._state_lock:
            if self._role != "active":
                return
            aps, self._aps = self._aps, None
            if aps is not None:
                with contextlib.suppress(Exception):
                    aps.shutdown(wait=False)  # from a timer thread: never wait for ourselves
            lock = self._lock
            if isinstance(lock, PgAdvisoryLock) and self.cfg.standby and not self._stop.is_set():
                self._enter_standby()
            else:
                self._role = "stopped"

    def _start_timers(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)  # a tick every few seconds would drown the log
        aps = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=db.APSCHEDULER_TABLE)},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        aps.start(paused=True)
        self._aps = aps
        now = datetime.now(UTC)
        for action in ("tick", "replan"):
            aps.add_job(
                _timer,
                "interval",
                seconds=self.cfg.poll_interval_s,
                id=f"carbonshift:{action}",
                args=[self._key, action],
                replace_existing=True,
                next_run_time=now + timedelta(seconds=self.cfg.poll_interval_s),
            )
        with self._tx() as s:
            waiting = {
                r.id: r.planned_start for r in s.scalars(select(RunRow).where(RunRow.state.in_(_PENDING)))
            }
        for job in aps.get_jobs():
            if job.id.startswith("launch:") and job.id.removeprefix("launch:") not in waiting:
                with contextlib.suppress(Exception):
                    aps.remove_job(job.id)
        for run_id, start in waiting.items():
            if start is not None:
                self._schedule_launch(run_id, start)
        with self._tx() as s:
            stops = list(
                s.execute(
                    select(RunRow.id, RunRow.stop_at).where(
                        RunRow.state.in_(_ACTIVE), RunRow.stop_at.is_not(None)
                    )
                )
            )
        for run_id, at in stops:
            if at is not None:
                self._schedule_stop(run_id, at)

    def _schedule_launch(self, run_id: str, at: datetime) -> None:
        self._schedule_timer("launch", run_id, at, "launch it")

    def _schedule_stop(self, run_id: str, at: datetime) -> None:
        """A tick at a chunk's planned end, so it is paused then, not at the next poll."""
        self._schedule_timer("stop", run_id, at, "stop it")

    def _schedule_timer(self, action: str, run_id: str, at: datetime, what: str) -> None:
        aps = self._aps
        if aps is None:
            return
        try:
            aps.add_job(
                _timer,
                "date",
                run_date=at,
                id=f"{action}:{run_id}",
                args=[self._key, action, run_id],
                replace_existing=True,
            )
        except Exception:
            log.exception("run %s: could not set its %s timer (the poll will %s)", run_id, action, what)

    def _unschedule(self, run_id: str) -> None:
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.remove_job(f"launch:{run_id}")

    def _on_timer(self, action: str, run_id: str | None) -> None:
        if action == "replan":
            self._safely(self._replan_pass)
        else:
            self._safely(self._tick_core)

    def _safely(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduler: %s failed (retried at the next tick)", fn.__name__)

    # ---- database helpers ----------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                db.upgrade(self.engine)
                self._schema_ready = True

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Session]:
        """One short transaction, committed on exit. Never nested, and never held across a provider
        call or an APScheduler job-store call (both may wait on the database themselves)."""
        self._ensure_schema()
        with self._sessions.begin() as session:
            yield session

    def _move(self, s: Session, run: RunRow, to: RunState, reason: str, now: datetime, **values: Any) -> bool:
        """Compare-and-set the run's state, with an event row; False when someone else moved it first."""
        frm = RunState(run.state)
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
        fence: int | None = getattr(self._fence, "epoch", None)
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
        log.info("run %s: %s -> %s: %s", run.id, frm.value, to.value, reason)
        return True

    @staticmethod
    def _note(s: Session, run: RunRow, reason: str, now: datetime) -> None:
        """An event that is not a state change (a re-plan, a refusal, a stop request)."""
        s.add(RunEventRow(run_id=run.id, at=now, from_state=run.state, to_state=run.state, reason=reason))

    # ---- planning ------------------------------------------------------------------------------------
    def _plan(
        self,
        spec: JobSpec,
        earliest: datetime,
        deadline: datetime,
        now: datetime,
        *,
        chunked: bool = False,
        duration_s: int | None = None,
    ) -> _Planned:
        """Plan one run in [earliest, deadline]. `chunked`: an interruptible spec may be split into
        chunks (the chosen option's `chunks`: one run each, see `_add_chunks`); otherwise it is
        planned as one contiguous run. `duration_s`: plan this much of the job (what is left of it)."""
        notes: list[str] = []
        split = spec.interruptible and chunked
        if spec.interruptible and not split:
            notes.append(
                "planned as one contiguous run: the chunks of a recurring job's occurrence are not "
                "executed separately"
            )
        update: dict[str, Any] = {
            "window": Window(earliest=earliest, deadline=deadline),
            "schedule": None,
            "interruptible": split,
        }
        if duration_s is not None:
            update["duration"] = timedelta(seconds=duration_s)
        one = spec.model_copy(update=update)
        advice = advise(
            one, catalog=self.catalog, service=self._service_factory(), now=now, signal=self.settings.signal
        )
        options = advice.plan.options
        launchable = [o for o in options if o.provider in self.providers]
        if not launchable:
            raise UserInputError(
                "placement.providers",
                f"no provider configured here can run this job: the plan's options are on "
                f"{', '.join(sorted({o.provider for o in options}))}; configured: "
                f"{', '.join(sorted(self.providers))}",
            )
        if launchable[0] is not options[0]:
            notes.append(
                f"the lowest-carbon option ({options[0].ref}) is on a provider not configured here; "
                f"using {launchable[0].ref}"
            )
        return _Planned(advice, launchable[0], launchable[: self.cfg.plan_options_kept], notes)

    def _plan_row(
        self,
        run: RunRow,
        planned: _Planned,
        kind: str,
        adopted: bool,
        reason: str,
        gain_pct: float | None = None,
        chosen: PlanOption | None = None,
    ) -> PlanRow:
        plan = planned.advice.plan
        option = chosen or planned.chosen
        return PlanRow(
            job_id=run.job_id,
            run_id=run.id,
            generated_at=plan.generated_at,
            kind=kind,
            adopted=adopted,
            reason=reason,
            gain_pct=gain_pct,
            option=_option_dict(option, plan.signal.value),
            options=planned.option_dicts(),
            baseline=plan.baseline.to_dict(),
            signal=plan.signal.value,
            notices=[*planned.notes, *plan.notes, *planned.advice.notices],
        )

    @staticmethod
    def _planned_fields(option: PlanOption, signal: str, plan_id: int | None) -> dict[str, Any]:
        planned = _option_dict(option, signal)
        planned["plan_id"] = plan_id
        return {
            "provider": option.provider,
            "region": option.region,
            "zone": option.zone,
            "planned_start": option.start,
            "planned_end": option.end,
            "planned": planned,
            **ledger.planned_numbers(planned),
        }

    def _attach_plan(self, s: Session, run: RunRow, planned: _Planned, reason: str, now: datetime) -> None:
        row = self._plan_row(run, planned, "initial", True, reason)
        s.add(row)
        s.flush()
        for key, value in self._planned_fields(planned.chosen, row.signal or "", row.id).items():
            setattr(run, key, value)
        run.plan_id = row.id
        run.last_planned_at = now

    def _add_chunks(
        self, s: Session, job: JobRow, run: RunRow, planned: _Planned, now: datetime, first_index: int = 1
    ) -> list[str]:
        """An interruptible plan split into chunks: `run` (its plan attached) becomes the first chunk
        and one run of the same job is made per further chunk, each with its planned start and end
        (`stop_at`, where the daemon stops it). Their planned kg CO2e, baseline and energy are the
        plan's, shared pro rata by chunk length. Numbered from `first_index` (after a preemption the
        re-planned chunks follow those already run). The ids of the runs made; none for one chunk."""
        chunks = planned.chosen.chunks
        if len(chunks) < 2:
            return []
        count = first_index - 1 + len(chunks)
        total_s = sum((b - a).total_seconds() for a, b in chunks)
        base = dict(run.planned or {})
        made: list[str] = []
        for k, (a, b) in enumerate(chunks):
            index = first_index + k
            if k == 0:
                row = run
            else:
                row = self._new_run(
                    s,
                    job,
                    run.seq + k,
                    run.nominal,
                    run.window_earliest,
                    run.deadline,
                    int((b - a).total_seconds()),
                    now,
                    reason=f"planned: chunk {index}/{count} of the job",
                )
                row.provider, row.region, row.zone = run.provider, run.region, run.zone
                row.plan_id, row.last_planned_at = run.plan_id, run.last_planned_at
                made.append(row.id)
            self._set_chunk(row, base, index, count, a, b, (b - a).total_seconds() / total_s)
        return made

    @staticmethod
    def _set_chunk(
        run: RunRow,
        base: dict[str, Any],
        index: int,
        count: int,
        start: datetime,
        end: datetime,
        share: float,
    ) -> None:
        planned = dict(base)
        for key in ("kg_co2e", "baseline_kg_co2e", "energy_kwh", "savings_kg"):
            if isinstance(planned.get(key), int | float):
                planned[key] = round(float(planned[key]) * share, 6)
        planned.update(start=_z(start), end=_z(end), chunk={"index": index, "count": count})
        run.planned = planned
        run.planned_start, run.planned_end = start, end
        run.duration_s = int((end - start).total_seconds())
        run.chunk_index, run.chunk_count = index, count
        # the last chunk is not stopped at its planned end: it runs until the job exits (the watchdog
        # still stops it past the deadline); every other chunk is paused at its end
        run.stop_at = end if index < count else None
        for key, value in ledger.planned_numbers(planned).items():  # the ledger's copies: the chunk's share
            setattr(run, key, value)

    def _end_chunks(self, s: Session, run: RunRow, why: str, now: datetime) -> list[str]:
        """The job of this chunk ends here (a chunk failed or was missed, or the job finished early):
        its chunks not yet started are cancelled, with the reason, in the caller's transaction. The
        ids cancelled (their launch timers are left to fire on nothing)."""
        pending = list(
            s.scalars(
                select(RunRow).where(
                    RunRow.job_id == run.job_id, RunRow.id != run.id, RunRow.state.in_(_PENDING)
                )
            )
        )
        done: list[str] = []
        for other in sorted(pending, key=lambda r: r.seq):
            label = f"chunk {other.chunk_index}/{other.chunk_count}" if other.chunk_index else "run"
            if self._move(
                s, other, RunState.CANCELLED, f"{label} not started: {why}", now, ended_at=now, error=why
            ):
                done.append(other.id)
        job = s.get(JobRow, run.job_id)
        if job is not None and done:
            job.status_reason = f"{why}; {len(done)} chunk(s) not started were cancelled"
            job.updated_at = now
        return done

    def _checkpoint_dir(self, job_id: str) -> Path:
        """An interruptible job's checkpoint directory on this machine, shared by all its runs."""
        return self.settings.resolved_data_dir() / "scheduler" / "checkpoints" / job_id

    def _run_env(
        self, job_id: str, provider: str, spec: JobSpec, chunk: tuple[int, int] | None
    ) -> dict[str, str]:
        """What the scheduler adds to a run's environment: a chunk's index and count, and (local runs of
        an interruptible job) the job's checkpoint directory, created here. Cloud runs get no
        checkpoint directory from the daemon (its disk is not theirs): give the job storage its chunks
        share (a bucket) through the spec's own `env` (CARBONSHIFT_* names are the scheduler's)."""
        env: dict[str, str] = {}
        if chunk is not None:
            env["CARBONSHIFT_CHUNK_INDEX"], env["CARBONSHIFT_CHUNK_COUNT"] = str(chunk[0]), str(chunk[1])
        if spec.interruptible and provider == "local":
            path = self._checkpoint_dir(job_id)
            path.mkdir(parents=True, exist_ok=True)
            env["CARBONSHIFT_CHECKPOINT_DIR"] = str(path)
        return env

    @staticmethod
    def _first_reason(planned: _Planned) -> str:
        o = planned.chosen
        saving = "" if o.savings_pct is None else f", {o.savings_pct:.1f}% below its baseline"
        return (
            f"first plan: {o.ref} at {_z(o.start)} ({o.kg_co2e:.4g} kg CO2e{saving}), "
            f"best of {len(planned.advice.plan.options)} option(s)"
        )

    @staticmethod
    def _window_for(spec: JobSpec, nominal: datetime) -> tuple[datetime, datetime]:
        assert spec.schedule is not None
        return nominal, nominal + spec.schedule.flex + spec.duration

    # ---- the API -------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobView:
        """Store the job, plan its first run (for a schedule: its next occurrence) and, on the active
        daemon, schedule the launch. UserInputError when the window cannot be met or no configured
        provider can run it; nothing is stored then."""
        now = self.clock.now()
        nominal: datetime | None = None
        if spec.schedule is not None:
            nominal = next_occurrence(spec, now)
            if nominal is None:
                raise UserInputError("schedule.cron", "the expression never fires")
            earliest, deadline = self._window_for(spec, nominal)
        else:
            earliest, deadline = spec.resolve_window(now)
        planned = self._plan(spec, earliest, deadline, now, chunked=spec.schedule is None)
        job_id = _new_id("job")
        labels = spec.labels.merged(self.settings.labels)
        with self._tx() as s:
            job = JobRow(
                id=job_id,
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                recurring=spec.schedule is not None,
                status=JobStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
                **{k: getattr(labels, k) for k in LABEL_KEYS},
            )
            s.add(job)
            s.flush()
            run = self._new_run(s, job, 1, nominal, earliest, deadline, spec.duration_s, now)
            self._attach_plan(s, run, planned, self._first_reason(planned), now)
            run_ids = [run.id, *self._add_chunks(s, job, run, planned, now)]
        log.info("job %s (%s) submitted", job_id, spec.name)
        if self.is_active:
            for run_id in run_ids:
                self._adopt(run_id)
        return self.get_job(job_id)

    def list_jobs(self, **labels: str | None) -> list[JobView]:
        """Every job, newest first; `team=`, `project=`, `organisation=` keep only jobs with that label."""
        unknown = set(labels) - set(LABEL_KEYS)
        if unknown:
            raise UserInputError(sorted(unknown)[0], f"not a label; filter by {', '.join(LABEL_KEYS)}")
        where = [getattr(JobRow, k) == v for k, v in labels.items() if v]
        with self._tx() as s:
            jobs = list(s.scalars(select(JobRow).where(*where).order_by(JobRow.created_at.desc(), JobRow.id)))
            return self._job_views(s, jobs)

    def totals(
        self,
        group_by: Sequence[str] | str | None = (),
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """The ledger's totals of finished runs, grouped and filtered (shape: `ledger.totals`)."""
        self._ensure_schema()
        return ledger.totals(self.engine, group_by, start, end, **filters)

    def record_tracked(
        self, report: dict[str, Any], labels: Labels | None = None, name: str | None = None
    ) -> RunView:
        """Store a run `carbonshift track --server` measured, so it counts in the ledger (idempotent by
        the report's run_id); each label not given takes the config's."""
        merged = (labels or Labels()).merged(self.settings.labels)
        with self._tx() as s:
            run_id, _created = ledger.record_tracked(s, report, merged, self.clock.now(), name)
        return self.get_run(run_id)

    def get_job(self, job_id: str) -> JobView:
        with self._tx() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFoundError("job", job_id)
            return self._job_views(s, [job])[0]

    def get_run(self, run_id: str) -> RunView:
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            return self._run_views(s, [run])[0]

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job: runs not started never start, running ones are stopped (on the active daemon
        at once, waiting up to `scheduler.cancel_wait_s` for them to end; elsewhere at the active
        daemon's next tick), and a schedule makes no more occurrences. Cancelling twice, or cancelling a
        one-off job that has already ended, changes nothing."""
        now = self.clock.now()
        to_stop: list[str] = []
        with self._tx() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFoundError("job", job_id)
            if job.status == JobStatus.DONE.value:
                return self._job_views(s, [job])[0]  # a finished one-off job stays as it ended
            if job.status != JobStatus.CANCELLED.value:
                job.status = JobStatus.CANCELLED.value
                job.status_reason = f"cancelled at {_z(now)}"
                job.updated_at = now
            s.execute(
                update(RunRow)
                .where(RunRow.job_id == job_id, RunRow.state.not_in(_TERMINAL))
                .values(cancel_requested=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            runs = list(
                s.scalars(select(RunRow).where(RunRow.job_id == job_id, RunRow.state.not_in(_TERMINAL)))
            )
            pending: list[str] = []
            for run in runs:
                if run.state in _PENDING:
                    if self._move(
                        s, run, RunState.CANCELLED, "cancelled before it started", now, ended_at=now
                    ):
                        pending.append(run.id)
                else:
                    to_stop.append(run.id)
        for run_id in pending:
            self._unschedule(run_id)
        if self.is_active:
            for run_id in to_stop:
                self._stop_run(run_id, now)
            deadline = time.monotonic() + self.cfg.cancel_wait_s
            left = list(to_stop)
            while left and time.monotonic() < deadline:
                for run_id in list(left):
                    if self._poll_run(run_id, self.clock.now()):
                        left.remove(run_id)
                if left:
                    time.sleep(0.1)
        return self.get_job(job_id)

    def run_log(self, job_id: str, run_id: str) -> str:
        """The captured stdout and stderr of a local run (the tail, at most scheduler.max_log_bytes)."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.job_id != job_id:
                raise NotFoundError("run", run_id, f"job {job_id!r} has no such run")
            provider, handle, state = run.provider, run.handle, RunState(run.state)
        if provider != "local":
            raise NotFoundError(
                "log", run_id, f"runs on {provider} have no log captured here; see console_url"
            )
        local = self.providers.get("local")
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
            if size > self.cfg.max_log_bytes:
                fh.seek(size - self.cfg.max_log_bytes)
            data = fh.read()
        text = data.decode("utf-8", errors="replace")
        if size > self.cfg.max_log_bytes:
            text = f"[... {size - self.cfg.max_log_bytes} earlier bytes not shown ...]\n" + text
        return text

    def dry_run(self, spec: JobSpec) -> Advice:
        """The plan `submit` would start from (a schedule: its next occurrence); nothing is stored."""
        return advise(
            spec,
            catalog=self.catalog,
            service=self._service_factory(),
            now=self.clock.now(),
            signal=self.settings.signal,
        )

    def run_token_ok(self, run_id: str, token: str) -> bool:
        """Whether `token` is the run's report token (constant-time); NotFoundError for no such run."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            expected = run.report_token_hash
        return expected is not None and hmac.compare_digest(_hash_token(token or ""), expected)

    def record_report(self, run_id: str, token: str, report: dict[str, Any]) -> RunView:
        """A remote run's tracker reporting back. The token is the run's own (given at launch, stored
        only as a hash) and compared in constant time; PermissionError when it does not match. A
        report with an exit code ends a run still launching or running."""
        now = self.clock.now()
        if not isinstance(report, dict):
            raise UserInputError("report", "a tracker report is a JSON object")
        ended = False
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            expected = run.report_token_hash
            # both sides are SHA-256 hex digests of equal length: compare_digest runs in constant time
            if expected is None or not hmac.compare_digest(_hash_token(token or ""), expected):
                raise PermissionError(f"run {run_id}: wrong report token")
            s.add(ReportRow(run_id=run_id, received_at=now, source="remote", body=dict(report)))
            for key, value in ledger.actual_numbers(report).items():
                setattr(run, key, value)
            code = report.get("exit_code")
            if run.state in _ACTIVE and isinstance(code, int) and not isinstance(code, bool):
                stop_reason, index, count = run.stop_reason, run.chunk_index, run.chunk_count
                paused = not run.cancel_requested and bool(stop_reason and stop_reason.startswith(PAUSED))
                extra: dict[str, Any] = {}
                if code == 0:
                    to = RunState.SUCCEEDED
                elif run.cancel_requested:
                    to = RunState.CANCELLED
                elif paused:  # a chunk stopped by the daemon at its planned end
                    to, extra = RunState.SUCCEEDED, {"note": stop_reason}
                else:
                    to = RunState.FAILED
                why = f"the run's tracker reported exit code {code}"
                moved = self._move(s, run, to, why, now, exit_code=code, ended_at=now, **extra)
                if moved and index is not None:
                    label = f"chunk {index}/{count}"
                    if to is RunState.FAILED:
                        self._end_chunks(s, run, f"{label} failed: {why}", now)
                    elif to is RunState.SUCCEEDED and not paused and index < (count or 0):
                        self._end_chunks(s, run, f"the job ended in {label}, before its planned end", now)
                ended = True
        if ended:
            self._release_instance(run_id)
        self._close_finished_jobs(now)
        return self.get_run(run_id)

    def metrics(self) -> dict[str, Any]:
        """Counters for Prometheus /metrics: runs by status, jobs by status, and kg CO2e planned,
        measured and saved. planned/baseline/saving count runs that were launched (a waiting run has
        saved nothing yet); `actual_kg_co2e` sums the trackers' reports, and `planned_kg_co2e_measured`
        the plans of the same runs, so the two compare like for like."""
        with self._tx() as s:
            runs = list(s.scalars(select(RunRow)))
            jobs = list(s.scalars(select(JobRow.status)))
            reports = {r.run_id: r for r in s.scalars(select(ReportRow).order_by(ReportRow.id))}
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
            "role": self.role,
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

    # ---- views ---------------------------------------------------------------------------------------
    def _job_views(self, s: Session, jobs: list[JobRow]) -> list[JobView]:
        if not jobs:
            return []
        ids = [j.id for j in jobs]
        runs: list[RunRow] = []
        plans: list[PlanRow] = []
        for part in _chunks(ids):
            runs += s.scalars(select(RunRow).where(RunRow.job_id.in_(part)).order_by(RunRow.seq))
            plans += s.scalars(select(PlanRow).where(PlanRow.job_id.in_(part)).order_by(PlanRow.id))
        views = self._run_views(s, runs)
        runs_by_job: dict[str, list[RunView]] = {}
        for view in views:
            runs_by_job.setdefault(view.job_id, []).append(view)
        plans_by_job: dict[str, list[PlanRow]] = {}
        for plan in plans:
            plans_by_job.setdefault(plan.job_id, []).append(plan)
        now = self.clock.now()
        out = []
        for job in jobs:
            nxt = None
            if job.recurring and job.status == JobStatus.ACTIVE.value:
                with contextlib.suppress(Exception):
                    nxt = next_occurrence(parse_jobspec(job.spec, source=f"job {job.id}"), now)
            out.append(JobView.build(job, runs_by_job.get(job.id, []), plans_by_job.get(job.id, []), nxt))
        return out

    def _run_views(self, s: Session, runs: list[RunRow]) -> list[RunView]:
        ids = [r.id for r in runs]
        events: dict[str, list[RunEventRow]] = {}
        reports: dict[str, ReportRow] = {}
        for part in _chunks(ids):
            for e in s.scalars(
                select(RunEventRow).where(RunEventRow.run_id.in_(part)).order_by(RunEventRow.id)
            ):
                events.setdefault(e.run_id, []).append(e)
            for r in s.scalars(select(ReportRow).where(ReportRow.run_id.in_(part)).order_by(ReportRow.id)):
                reports[r.run_id] = r  # the latest report wins
        out = []
        for run in runs:
            details = (run.handle or {}).get("details") or {}
            log_path = details.get("log_path")
            available = bool(log_path) and Path(str(log_path)).exists()
            out.append(
                RunView.from_row(run, events.get(run.id, []), reports.get(run.id), log_available=available)
            )
        return out

    # ---- the daemon's work ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One pass of everything due at `clock.now()`: what the timers do, on demand, except that it
        waits for the provider calls it hands to the worker pool (each at most
        `scheduler.provider_call_timeout_s`), phase by phase, so what it did is recorded when it
        returns. Tests with an injected clock set the clock and call this; so can a debugging session."""
        if not self.is_active:
            raise RuntimeError("tick() needs the active daemon: call start() first")
        self._tick_core(wait=True)
        self._replan_pass()

    def _tick_core(self, wait: bool = False) -> None:
        """One pass under the tick lock, fenced with this daemon's epoch. Provider calls go to the
        worker pool: the timers' pass (`wait=False`) hands them over and returns, their outcomes are
        recorded when they complete; `wait=True` (tick(), and the recovery tick of a daemon without
        timers) waits for each phase's calls before the next phase, as if they had run inline."""
        if not self.is_active:
            return
        with self._tick_lock:
            lock = self._lock
            if lock is None or not self._lock_alive(lock):
                self._lose_leadership()
                return
            now = self.clock.now()
            self._fence.epoch = self._epoch
            batch: list[_Call] = []
            self._ctx.batch = batch if wait else None

            def settle() -> None:
                if wait:
                    self._await(batch)
                    batch.clear()

            try:
                self._expire_calls()
                self._adopt_planned()
                self._resolve_launching(now)
                settle()
                self._poll_running()
                settle()
                self._advance_schedules(now)
                self._launch_due(now)
                settle()
                self._close_finished_jobs(now)
                self._release_due(now)
                settle()
            finally:
                self._fence.epoch = None
                self._ctx.batch = None

    def _recovery_tick(self) -> None:
        """The tick at activation: like tick() (waiting for its calls) on a daemon without timers,
        else like a timer's, so the timers resume at once whatever a provider does."""
        self._tick_core(wait=not self._background)

    # ---- provider calls: the worker pool ---------------------------------------------------------------
    def _submit(
        self, keys: Sequence[str], kind: str, work: Callable[[], None], job_id: str | None = None
    ) -> bool:
        """Hand provider work for these runs to the pool, fenced with the calling tick's epoch. False
        (nothing handed over) when one of the runs already has work in flight, when another launch of
        the same job is in flight, or when the daemon is stopping."""
        epoch: int | None = getattr(self._fence, "epoch", None)
        with self._calls_lock:
            if self._stop.is_set() or any(key in self._calls for key in keys):
                return False
            if job_id is not None and any(
                c.kind == "launch" and c.job_id == job_id for c in self._calls.values()
            ):
                return False
            call = _Call(tuple(keys), kind, job_id, epoch, time.monotonic())
            for key in keys:
                self._calls[key] = call
            pool = self._pool
            if pool is None:
                pool = self._pool = _Workers(self.cfg.provider_workers)
                weakref.finalize(self, pool.close)
            pool.submit(call.future, functools.partial(self._run_call, call, work))
        batch: list[_Call] | None = getattr(self._ctx, "batch", None)
        if batch is not None:
            batch.append(call)
        return True

    def _run_call(self, call: _Call, work: Callable[[], None]) -> None:
        """In a worker thread: the work, with the handing tick's epoch as this thread's fence (a
        daemon that lost the lead since writes no state), then the runs are free for the next call."""
        self._fence.epoch = call.epoch
        self._ctx.call = call
        with self._calls_lock:
            call.started = True
        try:
            work()
        except _LateAnswer as late:
            self._late_answer(late)
        except Exception:
            log.exception("run %s: %s failed; retried at the next tick", call.keys[0], call.kind)
        finally:
            self._fence.epoch = None
            self._ctx.call = None
            with self._calls_lock:
                for key in call.keys:
                    if self._calls.get(key) is call:
                        del self._calls[key]

    def _provider_call(
        self,
        run_id: str,
        op: str,
        where: str,
        fn: Callable[[], _T],
        on_timeout: Callable[[float], None] | None = None,
    ) -> _T:
        """Make one provider call. In a worker it is timed: past `provider_call_timeout_s` a tick gives
        up on it (`on_timeout(seconds)` records what that means for the run; see _expire_calls), and
        when it answers after that, _LateAnswer is raised instead of its answer. Elsewhere (the API's
        cancel and report paths) the call is simply made."""
        call: _Call | None = getattr(self._ctx, "call", None)
        if call is None:
            return fn()
        with self._calls_lock:
            call.op, call.op_where, call.op_run = op, where, run_id
            call.op_since, call.on_timeout = time.monotonic(), on_timeout
        try:
            result = fn()
        except Exception as exc:
            self._end_call(call, f"error: {exc}")
            raise
        self._end_call(call, _answer(result))
        return result

    def _end_call(self, call: _Call, answer: str) -> None:
        with self._calls_lock:
            late, took = call.abandoned, time.monotonic() - call.op_since
            op, where, run_id = call.op, call.op_where, call.op_run
            call.op, call.on_timeout = "", None
        if late:
            raise _LateAnswer(run_id, op, where, took, answer)

    def _expire_calls(self) -> None:
        """Give up on provider calls past `provider_call_timeout_s`: each is marked abandoned (its
        answer, when it comes, is not used) and its `on_timeout` records what that means for the run.
        Its thread stays busy until the call returns, and its runs get no other call until then."""
        limit = self.cfg.provider_call_timeout_s
        expired: list[tuple[str, str, str, float, Callable[[float], None] | None]] = []
        with self._calls_lock:
            now = time.monotonic()
            for call in set(self._calls.values()):
                if call.op and not call.abandoned and now - call.op_since > limit:
                    call.abandoned = True
                    expired.append(
                        (call.op_run, call.op, call.op_where, now - call.op_since, call.on_timeout)
                    )
        for run_id, op, where, took, on_timeout in expired:
            log.warning(
                "run %s: %s on %s gave no answer in %.0f s (scheduler.provider_call_timeout_s): given up "
                "on; an answer that comes later is not used",
                run_id,
                op,
                where,
                took,
            )
            if on_timeout is not None:
                try:
                    on_timeout(took)
                except Exception:
                    log.exception("run %s: recording the timeout of %s failed", run_id, op)

    def _await(self, calls: list[_Call]) -> None:
        """A waiting tick's barrier: until each of these calls has completed or was given up on (a
        call still queued behind busy workers: at most the per-call timeout after it was handed over),
        or the daemon is stopping."""
        limit = self.cfg.provider_call_timeout_s
        while not self._stop.is_set():
            self._expire_calls()
            with self._calls_lock:
                now = time.monotonic()
                pending = [
                    c.future
                    for c in calls
                    if not c.future.done() and not c.abandoned and (c.started or now - c.submitted <= limit)
                ]
            if not pending:
                return
            wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)

    def _late_answer(self, late: _LateAnswer) -> None:
        log.warning(
            "run %s: %s on %s answered %.0f s after it began, after it was given up on (%s): not used",
            late.run_id,
            late.op,
            late.where,
            late.took,
            late.answer,
        )
        if late.op != "launch":
            return
        try:
            with self._tx() as s:
                run = s.get(RunRow, late.run_id)
                if run is not None:
                    self._note(
                        s,
                        run,
                        f"the launch call on {late.where}, given up on, answered {late.took:.0f} s after it "
                        f"began ({late.answer}); not used: {late.where} is asked for this run instead",
                        self.clock.now(),
                    )
        except Exception:
            log.exception("run %s: noting a late launch answer failed", late.run_id)

    def _drain_calls(self, wait_for_them: bool) -> None:
        """At shutdown (no call is accepted once `_stop` is set): drop the queued calls (their runs
        are as the last tick left them; the next daemon goes on from there), give those in flight a
        short while, then let the pool's threads end."""
        with self._calls_lock:
            calls = set(self._calls.values())
            pool, self._pool = self._pool, None
            for call in calls:
                if call.future.cancel():
                    for key in call.keys:
                        if self._calls.get(key) is call:
                            del self._calls[key]
        running = [c for c in calls if not c.future.done()]
        if running and wait_for_them:
            wait(
                [c.future for c in running],
                timeout=min(SHUTDOWN_CALL_WAIT_S, self.cfg.provider_call_timeout_s),
            )
        left = [c for c in running if not c.future.done()]
        if left:
            log.warning(
                "shutdown: %d provider call(s) still in flight (%s): left to finish on their own; the next "
                "daemon settles their runs",
                len(left),
                ", ".join(f"{c.kind} {c.keys[0]}" for c in left),
            )
        if pool is not None:
            pool.close()

    def _adopt(self, run_id: str) -> None:
        """planned -> waiting: the launch timer is set (outside any transaction), then the state."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.PLANNED.value or run.planned_start is None:
                return
            start = run.planned_start
        self._schedule_launch(run_id, start)
        now = self.clock.now()
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == RunState.PLANNED.value:
                self._move(s, run, RunState.WAITING, f"scheduled to launch at {_z(start)}", now)

    def _adopt_planned(self) -> None:
        with self._tx() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.state == RunState.PLANNED.value)))
        for run_id in ids:
            self._adopt(run_id)

    def _resolve_launching(self, now: datetime) -> None:
        """A run found in `launching` with no call of this daemon in flight for it is one whose launch
        has no settled outcome: either a daemon stopped while launching it, or its launch call ended
        without a clear answer (`launch_error`: a timeout, an operation error, no answer within
        `provider_call_timeout_s`), so an instance may exist. Its provider, asked by run id (in the
        worker pool), decides: it has the instance (the launch got through: running) or not. Not found
        after a crash: the launch never got through (waiting, launched once). Not found after an
        unclear error: asked again on the next ticks, up to `launch_settle_looks`, then declared lost
        with an orphan check asked for. A run whose launch is still in flight here is left alone (one
        call per run): `_submit` refuses it."""
        with self._tx() as s:
            rows = [
                (r.id, r.provider, r.region)
                for r in s.scalars(select(RunRow).where(RunRow.state == RunState.LAUNCHING.value))
            ]
        for run_id, provider_name, region in rows:
            provider = self.providers.get(provider_name or "")
            if provider is None:
                log.warning("run %s: launching on %s, which is not configured here", run_id, provider_name)
                continue
            self._submit(
                [run_id],
                "find",
                functools.partial(self._resolve_one, run_id, str(provider_name), region or "", provider),
            )

    def _resolve_one(self, run_id: str, provider_name: str, region: str, provider: Provider) -> None:
        """In a worker: ask the provider for a launching run by its id, and settle the run."""
        try:
            handle = self._provider_call(
                run_id, "find", provider_name, functools.partial(provider.find, run_id, region)
            )
        except Exception as exc:
            log.warning("run %s: cannot ask %s for it (%s); retrying next tick", run_id, provider_name, exc)
            return
        now = self.clock.now()
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.LAUNCHING.value:
                return
            if handle is not None:
                after = "an unclear launch answer" if run.launch_error else "a restart"
                self._move(
                    s,
                    run,
                    RunState.RUNNING,
                    f"recovered after {after}: {provider_name} has instance {handle.instance_id} "
                    "for this run id (the launch had got through)",
                    now,
                    launch_error=None,
                    **self._handle_fields(handle),
                )
            elif run.launch_error is not None:
                self._unsettled_launch(s, run, provider_name, now)
            else:
                # a daemon stopped (or lost the lead) after committing `launching`; an earlier
                # leader may even still be inside the provider call, so the relaunch repeats that
                # very request (same idempotency key, same report token): it starts once
                earlier = run.launch_epoch
                by = f" by the leader of epoch {earlier}" if earlier not in (None, self._epoch) else ""
                self._move(
                    s,
                    run,
                    RunState.WAITING,
                    f"recovered after a restart or takeover: {provider_name} has no instance for this "
                    f"run id, so no launch{by} has got through yet; relaunching with the same "
                    "idempotency key and report token, so it starts once",
                    now,
                )

    def _unsettled_launch(self, s: Session, run: RunRow, provider_name: str, now: datetime) -> None:
        """One more look found no instance for a run whose launch answer was unclear."""
        run.launch_looks += 1
        limit = self.cfg.launch_settle_looks
        if run.launch_looks < limit:
            self._note(
                s,
                run,
                f"look {run.launch_looks} of {limit}: {provider_name} has no instance for this run yet "
                f"(the launch ended with: {run.launch_error})",
                now,
            )
            return
        why = (
            f"lost: the launch ended with '{run.launch_error}' and {provider_name} showed no instance for "
            f"this run id in {limit} looks; an instance may still appear: check with `carbonshift providers "
            f"orphans --provider {provider_name}`"
        )
        if self._move(s, run, RunState.FAILED, why, now, ended_at=now, error="launch outcome unknown: lost"):
            log.warning("run %s: %s", run.id, why)  # the orphan check a person should run

    @staticmethod
    def _handle_fields(handle: Handle) -> dict[str, Any]:
        return {
            "handle": handle.to_dict(),
            "instance_id": handle.instance_id,
            "console_url": handle.console_url,
        }

    def _poll_running(self) -> None:
        """Each running run's status (and a stop it needs: a cancel, the watchdog), in the pool."""
        with self._tx() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.state == RunState.RUNNING.value)))
        for run_id in ids:
            self._submit([run_id], "poll", functools.partial(self._poll_task, run_id))

    def _poll_task(self, run_id: str) -> None:
        self._poll_run(run_id, self.clock.now())

    def _poll_run(self, run_id: str, now: datetime) -> bool:
        """Ask the provider about a running run; finish it if it ended. True when it is over."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state not in _ACTIVE:
                return True
            if run.state != RunState.RUNNING.value or run.handle is None:
                return False
            provider = self.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
            cancel, sent = run.cancel_requested, run.terminate_sent_at
            deadline, stop_reason = run.deadline, run.stop_reason
            stop_at, chunk = run.stop_at, (run.chunk_index, run.chunk_count)
        if provider is None:
            return False
        try:
            status = self._provider_call(
                run_id, "status", handle.provider, functools.partial(provider.status, handle)
            )
        except Exception as exc:
            log.warning(
                "run %s: status from %s failed (%s); asking again next tick", run_id, handle.provider, exc
            )
            return False
        if status.state in (InstanceState.PENDING, InstanceState.RUNNING):
            resend = sent is None or (now - sent).total_seconds() > 2 * self.cfg.terminate_grace_s + 5
            margin = self.cfg.watchdog_margin_s
            if not cancel and stop_at is not None and now >= stop_at:
                if stop_reason is None or resend:
                    why = stop_reason or f"{PAUSED} (chunk {chunk[0]}/{chunk[1]})"
                    self._stop_run(run_id, now, stop_reason=why)
            elif (
                not cancel
                and margin is not None
                and overdue([(run_id, deadline)], now, timedelta(seconds=margin))
            ):
                if stop_reason is None or resend:
                    why = stop_reason or (
                        f"overdue: still running at {_z(now)}, past its deadline {_z(deadline)} + "
                        f"{format_duration(timedelta(seconds=int(margin)))}: stopped by the watchdog"
                    )
                    self._stop_run(run_id, now, stop_reason=why)
            elif cancel and resend:
                self._stop_run(run_id, now)
            return False
        self._finish(run_id, status, now)
        return True

    def _finish(self, run_id: str, status: InstanceStatus, now: datetime) -> None:
        """Record how a run ended. A chunk of an interruptible job: stopped by the daemon at its planned
        end, it succeeded (paused); failed or missed, its job's chunks not yet started are cancelled;
        interrupted by the cloud (spot / preemptible), what is left of the job is planned again."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value:
                return
            preempted = self._preempted(s, run, status)
        replanned: _Planned | None = None
        replan_error = ""
        if preempted is not None:
            spec, remaining, deadline = preempted
            try:
                replanned = self._plan(spec, now, deadline, now, chunked=True, duration_s=remaining)
            except CarbonshiftError as exc:
                replan_error = str(exc)
        moved = False
        new_runs: list[str] = []
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value:
                return
            state = status.state
            index, count, stop_reason = run.chunk_index, run.chunk_count, run.stop_reason
            label = f"chunk {index}/{count}" if index is not None else "the run"
            paused = not run.cancel_requested and bool(stop_reason and stop_reason.startswith(PAUSED))
            if state is InstanceState.SUCCEEDED:
                to, why = RunState.SUCCEEDED, f"ended: {status.detail or 'exit code 0'}"
            elif paused:
                to, why = (
                    RunState.SUCCEEDED,
                    f"{stop_reason}: stopped by the daemon ({status.detail or state.value})",
                )
            elif run.cancel_requested:
                to, why = RunState.CANCELLED, f"stopped on request: {status.detail or state.value}"
            elif run.stop_reason:
                to, why = RunState.FAILED, f"{run.stop_reason} ({status.detail or state.value})"
            elif preempted is not None:
                to, why = RunState.FAILED, f"interrupted by the cloud (spot / preemptible): {status.detail}"
            elif state is InstanceState.TERMINATED:
                to, why = RunState.FAILED, f"stopped outside carbonshift: {status.detail or 'terminated'}"
            elif state is InstanceState.UNKNOWN:
                to, why = RunState.FAILED, f"the provider no longer knows the instance: {status.detail}"
            else:
                to, why = RunState.FAILED, f"ended: {status.detail or 'failed'}"
            error = None if to in (RunState.SUCCEEDED, RunState.CANCELLED) else why
            extra: dict[str, Any] = {"note": stop_reason} if paused else {}
            moved = self._move(
                s, run, to, why, now, exit_code=status.exit_code, ended_at=now, error=error, **extra
            )
            if moved and status.report is not None:
                s.add(ReportRow(run_id=run_id, received_at=now, source="local", body=status.report))
            if moved and preempted is not None and to is RunState.FAILED:
                new_runs = self._after_preemption(s, run, replanned, replan_error, why, now)
            elif moved and index is not None and to is RunState.FAILED:
                self._end_chunks(s, run, f"{label} failed: {why}", now)
            elif (
                moved
                and to is RunState.SUCCEEDED
                and not paused
                and index is not None
                and index < (count or 0)
            ):
                self._end_chunks(
                    s, run, f"the job ended in {label}, before its planned end (exit code 0)", now
                )
        for new_id in new_runs:
            self._adopt(new_id)
        if moved:
            self._close_finished_jobs(now)  # now, not at the next pass: the poll ran in the pool
            self._release_instance(run_id)

    @staticmethod
    def _preempted(s: Session, run: RunRow, status: InstanceStatus) -> tuple[JobSpec, int, datetime] | None:
        """For a run of a one-off interruptible job that the cloud stopped (a spot / preemptible
        interruption: the provider reports FAILED with no exit code and a Server.* reason, or says
        preempted / evicted): the spec, the seconds of the job still to run (its duration less what its
        chunks ran to their end) and the deadline. None otherwise."""
        if status.state is not InstanceState.FAILED or status.exit_code is not None:
            return None
        if run.cancel_requested or run.stop_reason:
            return None
        detail = status.detail.lower()
        if not any(word in detail for word in ("server.", "preempt", "evict", "spot")):
            return None
        job = s.get(JobRow, run.job_id)
        if job is None or job.recurring:
            return None
        spec = parse_jobspec(job.spec, source=f"job {job.id}")
        if not spec.interruptible:
            return None
        done = s.scalar(
            select(func.coalesce(func.sum(RunRow.duration_s), 0)).where(
                RunRow.job_id == job.id, RunRow.state == RunState.SUCCEEDED.value
            )
        )
        remaining = spec.duration_s - int(done or 0)
        return (spec, remaining, run.deadline) if remaining > 0 else None

    def _after_preemption(
        self, s: Session, run: RunRow, planned: _Planned | None, error: str, why: str, now: datetime
    ) -> list[str]:
        """A chunk (or an unsplit run) the cloud interrupted: the job's chunks not yet started are
        replaced by a plan, made from now, for what is left of the job (numbered after those already
        made). The new runs' ids, to adopt once committed; none when nothing could be planned (the job
        then ends failed, with the reason)."""
        job = s.get(JobRow, run.job_id)
        assert job is not None
        label = f"chunk {run.chunk_index}/{run.chunk_count}" if run.chunk_index else "the run"
        if planned is None:
            self._end_chunks(
                s, run, f"{label} was interrupted and the rest could not be re-planned ({error})", now
            )
            job.status_reason = f"{why}; what is left could not be re-planned: {error}"
            job.updated_at = now
            return []
        for other in s.scalars(
            select(RunRow).where(RunRow.job_id == job.id, RunRow.id != run.id, RunRow.state.in_(_PENDING))
        ):
            self._move(
                s,
                other,
                RunState.CANCELLED,
                f"superseded: the job was re-planned after {label} was interrupted",
                now,
                ended_at=now,
            )
        last_seq, last_index = s.execute(
            select(func.max(RunRow.seq), func.max(RunRow.chunk_index)).where(RunRow.job_id == job.id)
        ).one()
        first_index = int(last_index or 1) + 1
        remaining = int(sum((b - a).total_seconds() for a, b in planned.chosen.chunks))
        o = planned.chosen
        reason = (
            f"re-planned after {label} was interrupted by the cloud: {format_duration(timedelta(seconds=remaining))} "
            f"left, {len(o.chunks)} chunk(s) on {o.ref} from {_z(o.start)} ({o.kg_co2e:.4g} kg CO2e)"
        )
        new = self._new_run(s, job, int(last_seq or 0) + 1, run.nominal, now, run.deadline, remaining, now)
        row = self._plan_row(new, planned, "preemption", True, reason)
        s.add(row)
        s.flush()
        for key, value in self._planned_fields(o, row.signal or "", row.id).items():
            setattr(new, key, value)
        new.plan_id, new.last_planned_at = row.id, now
        made = self._add_chunks(s, job, new, planned, now, first_index)
        if not made:
            self._set_chunk(new, dict(new.planned or {}), first_index, first_index, o.start, o.end, 1.0)
        job.status_reason = reason
        job.updated_at = now
        self._note(s, run, reason, now)
        return [new.id, *made]

    def _release_instance(self, run_id: str) -> None:
        """Release a finished cloud run's instance: recorded on the run first (`release_state`
        pending), then tried at once, and kept and retried with backoff, by whichever daemon is
        active, until the provider confirms the instance is gone. A powered-off VM is not gone: Azure
        keeps (and bills) a stopped VM, Compute Engine keeps its disk, so providers delete. Local runs
        have nothing left to release once their process group has exited."""
        now = self.clock.now()
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.handle is None or run.provider in (None, "local") or run.release_state:
                return
            run.release_state = "pending"
            run.release_next_at = now
        self._release_one(run_id, now)

    def _release_due(self, now: datetime) -> None:
        with self._tx() as s:
            ids = list(
                s.scalars(
                    select(RunRow.id).where(RunRow.release_state == "pending", RunRow.release_next_at <= now)
                )
            )
        for run_id in ids:
            self._submit([run_id], "release", functools.partial(self._release_task, run_id))

    def _release_task(self, run_id: str) -> None:
        self._release_one(run_id, self.clock.now())

    def _release_one(self, run_id: str, now: datetime) -> None:
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.release_state != "pending" or run.handle is None:
                return
            provider = self.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
        error: str | None = None
        gone = False
        if provider is None:
            error = f"provider {handle.provider} is not configured on this daemon"
        else:
            timed_out = functools.partial(self._release_timed_out, run_id, handle)
            try:
                self._provider_call(
                    run_id,
                    "terminate",
                    handle.provider,
                    functools.partial(provider.terminate, handle),
                    timed_out,
                )
                gone = self._provider_call(
                    run_id, "gone", handle.provider, functools.partial(provider.gone, handle), timed_out
                )
            except Exception as exc:
                error = str(exc) or type(exc).__name__
        self._release_outcome(run_id, handle, gone, error, now)

    def _release_timed_out(self, run_id: str, handle: Handle, took: float) -> None:
        """A release call given up on: a failed attempt, retried with backoff once the call returns."""
        limit = self.cfg.provider_call_timeout_s
        why = f"{took:.0f} s without an answer (scheduler.provider_call_timeout_s: {limit:g} s)"
        self._release_outcome(run_id, handle, False, why, self.clock.now())

    def _release_outcome(
        self, run_id: str, handle: Handle, gone: bool, error: str | None, now: datetime
    ) -> None:
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.release_state != "pending":
                return
            if gone:
                run.release_state, run.released_at, run.release_error = "done", now, None
                self._note(
                    s,
                    run,
                    f"instance {handle.instance_id} released: {handle.provider} confirms it is gone",
                    now,
                )
                return
            run.release_attempts += 1
            delay = min(RELEASE_RETRY_S * 2 ** (run.release_attempts - 1), RELEASE_RETRY_MAX_S)
            run.release_next_at = now + timedelta(seconds=delay)
            run.release_error = error or "terminate requested; the instance is not gone yet"
            self._note(
                s,
                run,
                f"release of {handle.instance_id}, attempt {run.release_attempts}: {run.release_error}; "
                f"trying again at {_z(run.release_next_at)}",
                now,
            )
        if error is not None:
            log.warning(
                "run %s: releasing its %s instance failed (%s); retried later", run_id, handle.provider, error
            )

    def _stop_run(self, run_id: str, now: datetime, stop_reason: str | None = None) -> None:
        """Ask the provider to stop a running run (a cancel, or the watchdog with `stop_reason`); the
        poll finishes it when it has ended."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value or run.handle is None:
                return
            run.terminate_sent_at = now
            if stop_reason is not None:
                run.stop_reason = stop_reason
            self._note(s, run, f"stop requested: {stop_reason or 'cancelled'}; terminating the run", now)
            provider = self.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
        if provider is None:
            return
        try:
            self._provider_call(
                run_id, "terminate", handle.provider, functools.partial(provider.terminate, handle)
            )
        except Exception as exc:
            log.warning("run %s: terminate on %s failed (%s); retrying", run_id, handle.provider, exc)

    def _close_finished_jobs(self, now: datetime) -> None:
        """A one-off job whose run has ended is done (a schedule stays active until cancelled)."""
        unfinished = exists().where(and_(RunRow.job_id == JobRow.id, RunRow.state.not_in(_TERMINAL)))
        with self._tx() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.recurring.is_(False), JobRow.status == JobStatus.ACTIVE.value, ~unfinished)
                .values(status=JobStatus.DONE.value, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    def _new_run(
        self,
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
        run = RunRow(
            id=_new_id("run"),
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
        return run

    # ---- recurring schedules ---------------------------------------------------------------------------
    def _advance_schedules(self, now: datetime) -> None:
        with self._tx() as s:
            ids = list(
                s.scalars(
                    select(JobRow.id).where(
                        JobRow.recurring.is_(True), JobRow.status == JobStatus.ACTIVE.value
                    )
                )
            )
        for job_id in ids:
            try:
                self._advance_schedule(job_id, now)
            except Exception:
                log.exception("job %s: could not create its next occurrence", job_id)

    def _advance_schedule(self, job_id: str, now: datetime) -> None:
        """Keep one occurrence planned ahead, and account for every occurrence whose time has come:
        one run per nominal time (a unique constraint guards it), planned in its own window, or
        recorded as missed when its window closed while no daemon was running."""
        created = 0
        while created < self.cfg.max_catchup:
            with self._tx() as s:
                job = s.get(JobRow, job_id)
                if job is None or job.status != JobStatus.ACTIVE.value:
                    return
                spec = parse_jobspec(job.spec, source=f"job {job_id}")
                mine = RunRow.job_id == job_id
                # aggregates, not every run: a nightly schedule has hundreds after a year
                last_nominal, last_seq = s.execute(
                    select(func.max(RunRow.nominal), func.max(RunRow.seq)).where(mine)
                ).one()
                pending = (
                    s.scalar(select(RunRow.id).where(mine, RunRow.state.in_(_PENDING)).limit(1)) is not None
                )
                created_at = job.created_at
            assert spec.schedule is not None
            seq = (last_seq or 0) + 1
            if last_nominal is not None:
                # max() keeps the column's type (aware UTC); the check is for drivers that drop it
                last = last_nominal if last_nominal.tzinfo else last_nominal.replace(tzinfo=UTC)
                # one occurrence per nominal local time, across DST too (see carbonshift.schedule)
                nxt = next_nominal(spec.schedule.cron, spec.schedule.timezone, last + timedelta(seconds=1))
            else:
                nxt = next_occurrence(spec, created_at)
            if nxt is None or (nxt > now and pending):
                return
            earliest, deadline = self._window_for(spec, nxt)
            latest_start = deadline - spec.duration
            planned: _Planned | None = None
            problem = ""
            if now > latest_start:
                problem = (
                    f"occurrence at {_z(nxt)} never started: its window (latest start {_z(latest_start)}) "
                    f"passed while no daemon was running (now {_z(now)})"
                )
            else:
                try:
                    planned = self._plan(spec, max(earliest, now), deadline, now)
                except CarbonshiftError as exc:
                    problem = f"occurrence at {_z(nxt)} could not be planned: {exc}"
            try:
                with self._tx() as s:
                    job = s.get(JobRow, job_id)
                    if job is None or job.status != JobStatus.ACTIVE.value:
                        return
                    if planned is None:
                        self._new_run(
                            s,
                            job,
                            seq,
                            nxt,
                            earliest,
                            deadline,
                            spec.duration_s,
                            now,
                            RunState.MISSED,
                            problem,
                        )
                        run_id = None
                    else:
                        run = self._new_run(s, job, seq, nxt, earliest, deadline, spec.duration_s, now)
                        reason = self._first_reason(planned).replace("first plan", f"occurrence {_z(nxt)}")
                        self._attach_plan(s, run, planned, reason, now)
                        run_id = run.id
            except IntegrityError:
                log.info("job %s: occurrence %s already exists", job_id, _z(nxt))
                return
            created += 1
            if run_id is not None:
                self._adopt(run_id)
            if nxt > now:
                return

    # ---- launching -----------------------------------------------------------------------------------
    def _launch_due(self, now: datetime) -> None:
        """Hand each job's due runs to the pool: one piece of work per job, its runs in order (so a
        schedule's overlap rule sees the run before), skipped while another launch of the job, or any
        call for one of its runs, is still in flight."""
        with self._tx() as s:
            rows = list(
                s.execute(
                    select(RunRow.id, RunRow.job_id)
                    .where(RunRow.state == RunState.WAITING.value, RunRow.planned_start <= now)
                    .order_by(RunRow.planned_start, RunRow.seq)
                )
            )
        by_job: dict[str, list[str]] = {}
        for run_id, job_id in rows:
            by_job.setdefault(job_id, []).append(run_id)
        for job_id, run_ids in by_job.items():
            self._submit(run_ids, "launch", functools.partial(self._launch_runs, run_ids), job_id=job_id)

    def _launch_runs(self, run_ids: list[str]) -> None:
        """In a worker: launch one job's due runs, one after the other."""
        for run_id in run_ids:
            try:
                self._launch(run_id, self.clock.now())
            except Exception:
                log.exception("run %s: launch step failed; retried next tick", run_id)

    def _launch(self, run_id: str, now: datetime) -> None:
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.WAITING.value or run.planned_start is None:
                return
            job = s.get(JobRow, run.job_id)
            assert job is not None
            if job.status == JobStatus.CANCELLED.value or run.cancel_requested:
                self._move(s, run, RunState.CANCELLED, "cancelled before it started", now, ended_at=now)
                return
            spec = parse_jobspec(job.spec, source=f"job {job.id}")
            duration = timedelta(seconds=run.duration_s)
            latest = run.deadline - duration
            chunk = None if run.chunk_index is None else (run.chunk_index, run.chunk_count or run.chunk_index)
            if chunk is not None:
                siblings = list(
                    s.scalars(select(RunRow).where(RunRow.job_id == job.id, RunRow.chunk_index.is_not(None)))
                )
                before = [r for r in siblings if (r.chunk_index or 0) < chunk[0] and r.state not in _TERMINAL]
                if before:
                    note = f"waits for chunk {before[0].chunk_index}/{before[0].chunk_count} to end"
                    if run.note != note:
                        run.note = note
                        self._note(s, run, note, now)
                    return
                # this chunk and the chunks after it must all still fit before the deadline
                later = sum(
                    r.duration_s for r in siblings if (r.chunk_index or 0) > chunk[0] and r.state in _PENDING
                )
                latest = run.deadline - duration - timedelta(seconds=later)
            if job.recurring and spec.schedule is not None:
                blocker = s.scalars(
                    select(RunRow).where(
                        RunRow.job_id == job.id, RunRow.state.in_(_ACTIVE), RunRow.id != run.id
                    )
                ).first()
                if blocker is not None:
                    self._overlap(s, run, blocker, spec.schedule.overlap, latest, now)
                    return
            late_s = (now - run.planned_start).total_seconds()
            if now > latest:
                self._move(
                    s,
                    run,
                    RunState.MISSED,
                    f"due at {_z(run.planned_start)} but not started by its latest start {_z(latest)} "
                    f"(deadline {_z(run.deadline)} minus duration {format_duration(duration)}); it is now "
                    f"{_z(now)}: the daemon was down or could not launch it in time",
                    now,
                    ended_at=now,
                    error="missed its deadline",
                )
                if chunk is not None:
                    self._end_chunks(s, run, f"chunk {chunk[0]}/{chunk[1]} missed its latest start", now)
                return
            grace = self.cfg.misfire_grace_s
            if grace is not None and late_s > grace:
                self._move(
                    s,
                    run,
                    RunState.MISSED,
                    f"due at {_z(run.planned_start)}, now {late_s:.0f} s late: more than "
                    f"scheduler.misfire_grace_s ({grace:.0f} s)",
                    now,
                    ended_at=now,
                    error="later than the misfire grace",
                )
                if chunk is not None:
                    self._end_chunks(s, run, f"chunk {chunk[0]}/{chunk[1]} was missed", now)
                return
            options = self._options_for(s, run)
            launch_spec = spec.model_copy(
                update={
                    "window": Window(earliest=run.window_earliest, deadline=run.deadline),
                    "schedule": None,
                }
            )
            deadline = run.deadline
            if run.stop_at is not None:
                # a chunk runs for its planned length, from when it starts (later, if it starts late)
                run.stop_at = now + duration
            job_id = job.id
        self._launch_options(
            run_id,
            launch_spec,
            deadline,
            options,
            late_s,
            now,
            env=functools.partial(self._run_env, job_id, spec=spec, chunk=chunk),
        )

    def _overlap(
        self, s: Session, run: RunRow, blocker: RunRow, policy: str, latest: datetime, now: datetime
    ) -> None:
        if policy == "skip":
            self._move(
                s,
                run,
                RunState.MISSED,
                f"skipped: run {blocker.id} of this schedule was still {blocker.state} when this occurrence "
                "was due (schedule.overlap: skip)",
                now,
                ended_at=now,
                error="skipped: the previous run was still going",
            )
        elif now > latest:
            self._move(
                s,
                run,
                RunState.MISSED,
                f"queued behind run {blocker.id} (schedule.overlap: queue) until its latest start "
                f"{_z(latest)} passed",
                now,
                ended_at=now,
                error="queued past its latest start",
            )
        else:
            note = (
                f"queued behind run {blocker.id}, still {blocker.state} (schedule.overlap: queue): starts "
                f"when it ends, if by {_z(latest)}"
            )
            if run.note != note:
                run.note = note
                self._note(s, run, note, now)

    def _options_for(self, s: Session, run: RunRow) -> list[dict[str, Any]]:
        """The run's own option first, then the plan's next-best ones (capacity fallbacks)."""
        plan = s.get(PlanRow, run.plan_id) if run.plan_id is not None else None
        options = [dict(o) for o in (plan.options if plan is not None else [])]
        mine = {**(run.planned or {}), "provider": run.provider, "region": run.region, "zone": run.zone}
        others = [o for o in options if (o.get("provider"), o.get("region")) != (run.provider, run.region)]
        return [mine, *others]

    def _launch_options(
        self,
        run_id: str,
        spec: JobSpec,
        deadline: datetime,
        options: list[dict[str, Any]],
        late_s: float,
        now: datetime,
        env: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        """Launch on the first option that has capacity. `env(provider)`: what the scheduler adds to
        the run's environment there (a chunk's index and count, a checkpoint directory)."""
        usable = [o for o in options if o.get("provider") in self.providers]
        if not usable:
            with self._tx() as s:
                run = s.get(RunRow, run_id)
                if run is not None and run.state == RunState.WAITING.value:
                    self._move(
                        s,
                        run,
                        RunState.FAILED,
                        f"no configured provider for any option (wanted {options[0].get('provider')})",
                        now,
                        ended_at=now,
                        error="provider not configured",
                    )
            return
        refused: list[str] = []
        for index, option in enumerate(usable):
            ref = f"{option['provider']}:{option['region']}"
            token = self._report_token(run_id)
            with self._tx() as s:
                run = s.get(RunRow, run_id)
                if run is None:
                    return
                values = {
                    "provider": option["provider"],
                    "region": option["region"],
                    "zone": option.get("zone"),
                    "report_token_hash": _hash_token(token),
                    "launch_attempts": run.launch_attempts + 1,
                    "launched_at": now,
                    "launch_error": None,
                    "launch_looks": 0,
                    "launch_epoch": getattr(self._fence, "epoch", None),
                }
                if index == 0:
                    lateness = f", {late_s:.0f} s after its planned start" if late_s >= 1 else ""
                    if not self._move(
                        s, run, RunState.LAUNCHING, f"launching on {ref}{lateness}", now, **values
                    ):
                        return
                else:
                    if run.state != RunState.LAUNCHING.value:
                        return
                    for key, value in values.items():
                        setattr(run, key, value)
                    run.planned = {
                        **option,
                        "note": f"capacity fallback: started at {_z(now)} in the plan's next-best region",
                    }
                    for key, number in ledger.planned_numbers(run.planned).items():
                        setattr(run, key, number)
                    s.add(
                        PlanRow(
                            job_id=run.job_id,
                            run_id=run.id,
                            generated_at=now,
                            kind="capacity",
                            adopted=True,
                            reason=f"capacity: {'; '.join(refused)}; launching on {ref}, the plan's next best",
                            option=option,
                            options=[o for o in options if o is not option],
                            baseline=None,
                            signal=option.get("signal"),
                            notices=[],
                        )
                    )
                    self._note(s, run, f"trying {ref} after a capacity refusal", now)
            provider = self.providers[str(option["provider"])]
            if not self._leading():
                # the lock or the epoch went to another daemon since this tick began: launch nothing;
                # the run stays launching and the new leader settles it by asking the provider
                log.warning("run %s: not launching on %s: this daemon is no longer the leader", run_id, ref)
                return
            request = LaunchRequest(
                run_id=run_id,
                spec=spec,
                region=str(option["region"]),
                deadline=deadline,
                report_url=None if self.report_url is None else self.report_url.replace("{run_id}", run_id),
                report_token=token,
                interruptible=spec.interruptible,  # spot / preemptible capacity only when the job allows it
                env={} if env is None else env(str(option["provider"])),
            )
            try:
                handle = self._provider_call(
                    run_id,
                    "launch",
                    ref,
                    functools.partial(provider.launch, request),
                    functools.partial(self._launch_timed_out, run_id, ref),
                )
            except CapacityError as exc:
                why = exc.reason.removeprefix(f"{exc.region}: ")
                refusal = {
                    "at": _z(self.clock.now()),
                    "provider": option["provider"],
                    "region": option["region"],
                    "reason": why,
                    "code": exc.code,
                }
                refused.append(f"{ref} refused ({why})")
                with self._tx() as s:
                    run = s.get(RunRow, run_id)
                    if run is None:
                        return
                    run.refusals = [*(run.refusals or []), refusal]
                    self._note(s, run, f"{ref} refused: {why}", now)
                continue
            except Exception as exc:
                # not a refusal: the request may have got through (a timeout after the API took it, a
                # long-running operation that failed late), so the run stays launching and the
                # provider is asked for it by run id on the next ticks (_resolve_launching)
                self._unclear_launch(run_id, ref, str(exc), now)
                return
            with self._tx() as s:
                run = s.get(RunRow, run_id)
                if run is None:
                    return
                if run.state != RunState.LAUNCHING.value:
                    # settled while the call was out (its tracker reported; a new leader ran it)
                    log.warning(
                        "run %s: launched on %s (%s) but the run is %s by now: not recorded",
                        run_id,
                        ref,
                        handle.instance_id,
                        run.state,
                    )
                    recorded = False
                else:
                    recorded = self._move(
                        s,
                        run,
                        RunState.RUNNING,
                        f"launched on {ref}: {handle.instance_id}",
                        self.clock.now(),
                        **self._handle_fields(handle),
                    )
                cancel = run.cancel_requested
                stop_at = run.stop_at
            if recorded and stop_at is not None:
                self._schedule_stop(run_id, stop_at)
            if not recorded and not self._leading():
                # a leader that lost the lead during the call (its write was fenced) steps down now:
                # the new leader has taken the shared timer jobs over, so no tick of ours would notice
                self._lose_leadership()
                return
            if cancel:
                self._stop_run(run_id, now)
            return
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == RunState.LAUNCHING.value:
                self._move(
                    s,
                    run,
                    RunState.FAILED,
                    "every option of the plan refused: " + "; ".join(refused),
                    now,
                    ended_at=now,
                    error="no capacity in any option",
                )

    def _unclear_launch(self, run_id: str, ref: str, detail: str, now: datetime) -> None:
        """A launch call ended with no clear answer: the run stays launching, with `launch_error`, and
        _resolve_launching asks the provider for it on the next ticks."""
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == RunState.LAUNCHING.value:
                run.launch_error = f"{ref}: {detail}"
                run.launch_looks = 0
                self._note(
                    s,
                    run,
                    f"launch on {ref} ended without a clear answer ({detail}); {ref} will be asked "
                    f"for this run on the next ticks (up to {self.cfg.launch_settle_looks} looks)",
                    now,
                )

    def _launch_timed_out(self, run_id: str, ref: str, took: float) -> None:
        """A launch call given up on (past the per-call timeout) is an unclear answer like any other:
        the instance may exist. Its thread may still return; that answer is not used (_LateAnswer),
        and the provider is asked for the run once the call has returned."""
        limit = self.cfg.provider_call_timeout_s
        detail = (
            f"no answer in {took:.0f} s, past scheduler.provider_call_timeout_s ({limit:g} s); "
            "a later answer is not used"
        )
        self._unclear_launch(run_id, ref, detail, self.clock.now())

    # ---- re-planning -----------------------------------------------------------------------------------
    def _gain_verdict(
        self, current_kg: float, new_kg: float, words: Callable[[float], str]
    ) -> tuple[float, bool, str]:
        """The re-plan rule, in one place: move only for a gain of at least replan_min_gain_pct."""
        gain = (current_kg - new_kg) / current_kg * 100 if current_kg > 0 else 0.0
        threshold = self.cfg.replan_min_gain_pct
        if gain > 0 and gain >= threshold:
            return gain, True, f"moved: {words(gain)}, at least the {threshold:g}% threshold"
        return gain, False, f"kept: {words(gain)}, under the {threshold:g}% threshold"

    def _replan_pass(self) -> None:
        """Plan each waiting run again with fresh forecasts when its interval is up, and once more
        shortly before it starts. A run moves only for a gain above the threshold; every plan is
        kept, with why it moved or did not."""
        if not self.is_active:
            return
        with self._replan_lock:
            self._fence.epoch = self._epoch
            try:
                self._replan_locked()
            finally:
                self._fence.epoch = None

    def _replan_locked(self) -> None:
        """The re-plan pass's work, under the re-plan lock and fenced with this daemon's epoch."""
        now = self.clock.now()
        interval = timedelta(seconds=self.cfg.replan_interval_s)
        before = timedelta(seconds=self.cfg.replan_before_start_s)
        due: list[tuple[str, str]] = []
        chunked: dict[str, RunRow] = {}  # job id -> its first chunk waiting: the job's chunks go together
        with self._tx() as s:
            for run in s.scalars(
                select(RunRow)
                .where(RunRow.state == RunState.WAITING.value, RunRow.planned_start > now)
                .order_by(RunRow.planned_start)
            ):
                assert run.planned_start is not None
                if run.chunk_index is not None:
                    chunked.setdefault(run.job_id, run)
                    continue
                last = run.last_planned_at
                if (
                    before > timedelta(0)
                    and not run.prestart_replanned
                    and run.planned_start - now <= before
                    and (last is None or last < run.planned_start - before)
                ):
                    due.append((run.id, "prestart"))
                elif last is None or now - last >= interval:
                    due.append((run.id, "replan"))
            chunk_due: list[tuple[str, str]] = []
            for job_id, run in chunked.items():
                assert run.planned_start is not None
                last = run.last_planned_at
                if (
                    before > timedelta(0)
                    and not run.prestart_replanned
                    and run.planned_start - now <= before
                    and (last is None or last < run.planned_start - before)
                ):
                    chunk_due.append((job_id, "prestart"))
                elif last is None or now - last >= interval:
                    chunk_due.append((job_id, "replan"))
        for run_id, kind in due:
            try:
                self._replan(run_id, kind, now)
            except Exception:
                log.exception("run %s: re-plan failed", run_id)
        for job_id, kind in chunk_due:
            try:
                self._replan_chunks(job_id, kind, now)
            except Exception:
                log.exception("job %s: re-plan of its chunks failed", job_id)

    def _replan_chunks(self, job_id: str, kind: str, now: datetime) -> None:
        """Re-plan an interruptible job's chunks not yet started, together, for the time they add up
        to, from now (or from the end of its chunk running now) to the deadline. They move only for a
        gain above the threshold, like a run; the chunks are re-made from the new plan (rows reused in
        order, extra ones cancelled, missing ones added) and every plan is kept."""
        with self._tx() as s:
            job = s.get(JobRow, job_id)
            if job is None or job.status != JobStatus.ACTIVE.value:
                return
            spec = parse_jobspec(job.spec, source=f"job {job.id}")
            runs = list(s.scalars(select(RunRow).where(RunRow.job_id == job_id)))
            pending = sorted(
                (r for r in runs if r.state in _PENDING and r.chunk_index is not None),
                key=lambda r: r.chunk_index or 0,
            )
            if not pending or any(
                r.state != RunState.WAITING.value or r.planned_start is None or r.planned_start <= now
                for r in pending
            ):
                return
            ends = [r.stop_at or r.planned_end for r in runs if r.state in _ACTIVE]
            earliest = max([now, pending[0].window_earliest, *(e for e in ends if e is not None)])
            deadline = pending[0].deadline
            remaining = sum(r.duration_s for r in pending)
            snapshot = [(r.id, r.plan_id) for r in pending]
            cur_ref = f"{pending[0].provider}:{pending[0].region}"
            current = [
                (r.planned_start, r.planned_end, float((r.planned or {}).get("energy_kwh") or 0.0))
                for r in pending
            ]
        planned: _Planned | None = None
        failure = ""
        try:
            planned = self._plan(spec, earliest, deadline, now, chunked=True, duration_s=remaining)
        except CarbonshiftError as exc:
            failure = f"re-plan failed ({exc}); keeping the current plan"
        move = False
        reason = ""
        gain: float | None = None
        if planned is not None:
            new = planned.chosen
            new_chunks = [(to_epoch_s(a), to_epoch_s(b)) for a, b in new.chunks]
            old_chunks = [
                (to_epoch_s(a), to_epoch_s(b)) for a, b, _ in current if a is not None and b is not None
            ]
            current_kg: float | None = None
            series = planned.advice.series.get(cur_ref)
            if series is not None and all(e > 0 for _, _, e in current):
                with contextlib.suppress(ValueError):
                    current_kg = sum(
                        e * series.mean_g_per_kwh(to_epoch_s(a), to_epoch_s(b)) / 1000
                        for a, b, e in current
                        if a is not None and b is not None
                    )
            where = f"{len(new.chunks)} chunk(s) on {new.ref} from {_z(new.start)}"
            if new.ref == cur_ref and new_chunks == old_chunks:
                gain = 0.0
                reason = f"kept: the chunks left ({cur_ref}) are still the best ({new.kg_co2e:.4g} kg CO2e on fresh forecasts)"
            elif current_kg is None:
                reason = "kept: the chunks left could not be evaluated on fresh forecasts"
            else:
                gain, move, reason = self._gain_verdict(
                    current_kg,
                    new.kg_co2e,
                    lambda pct: (
                        f"{where} emit {pct:.2f}% less than the chunks left "
                        f"({current_kg:.4g} -> {new.kg_co2e:.4g} kg CO2e on fresh forecasts)"
                    ),
                )
        launches: list[tuple[str, datetime]] = []
        made: list[str] = []
        with self._tx() as s:
            rows = [s.get(RunRow, run_id) for run_id, _ in snapshot]
            pending = [r for r in rows if r is not None]
            if not pending:
                return
            unchanged = len(pending) == len(snapshot) and all(
                r.state == RunState.WAITING.value and r.plan_id == plan_id
                for r, (_, plan_id) in zip(pending, snapshot, strict=True)
            )
            for r in pending:
                r.last_planned_at = now
                if kind == "prestart":
                    r.prestart_replanned = True
            first = pending[0]
            if planned is None:
                self._note(s, first, failure, now)
                return
            if not unchanged:
                move = False
                reason = "superseded: the chunks changed while they were being re-planned"
            row = self._plan_row(first, planned, kind, move, reason, gain)
            s.add(row)
            s.flush()
            if not move:
                return
            job = s.get(JobRow, job_id)
            assert job is not None
            new = planned.chosen
            first_index = first.chunk_index or 1
            count = first_index - 1 + len(new.chunks)
            total_s = sum((b - a).total_seconds() for a, b in new.chunks)
            base = {**_option_dict(new, row.signal or ""), "plan_id": row.id}
            for k, (a, b) in enumerate(new.chunks):
                if k < len(pending):
                    r = pending[k]
                else:
                    r = self._new_run(
                        s,
                        job,
                        max(p.seq for p in pending) + k - len(pending) + 1,
                        first.nominal,
                        first.window_earliest,
                        first.deadline,
                        int((b - a).total_seconds()),
                        now,
                        reason=f"planned: chunk {first_index + k}/{count} of the job, at a re-plan",
                    )
                    made.append(r.id)
                r.provider, r.region, r.zone = new.provider, new.region, new.zone
                r.plan_id, r.last_planned_at, r.updated_at = row.id, now, now
                self._set_chunk(r, base, first_index + k, count, a, b, (b - a).total_seconds() / total_s)
                if k < len(pending):
                    self._note(s, r, f"re-planned ({kind}) as chunk {first_index + k}/{count}: {reason}", now)
                    launches.append((r.id, a))
            for extra in pending[len(new.chunks) :]:
                self._move(
                    s,
                    extra,
                    RunState.CANCELLED,
                    f"not needed: re-planned ({kind}) into {len(new.chunks)} chunk(s): {reason}",
                    now,
                    ended_at=now,
                )
        for run_id, at in launches:
            self._schedule_launch(run_id, at)
        for run_id in made:
            self._adopt(run_id)

    def _replan(self, run_id: str, kind: str, now: datetime) -> None:
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.WAITING.value or run.planned_start is None:
                return
            job = s.get(JobRow, run.job_id)
            assert job is not None and run.planned_end is not None
            spec = parse_jobspec(job.spec, source=f"job {job.id}")
            plan_id, start, end = run.plan_id, run.planned_start, run.planned_end
            cur_ref = f"{run.provider}:{run.region}"
            energy = float((run.planned or {}).get("energy_kwh") or 0.0)
            earliest, deadline = max(run.window_earliest, now), run.deadline
        planned: _Planned | None = None
        failure = ""
        try:
            planned = self._plan(spec, earliest, deadline, now)
        except CarbonshiftError as exc:
            failure = f"re-plan failed ({exc}); keeping the current plan"
        move = False
        reason = ""
        gain: float | None = None
        if planned is not None:
            new = planned.chosen
            current_kg: float | None = None
            series = planned.advice.series.get(cur_ref)
            if series is not None and energy > 0:
                with contextlib.suppress(ValueError):
                    current_kg = energy * series.mean_g_per_kwh(to_epoch_s(start), to_epoch_s(end)) / 1000
            if new.ref == cur_ref and new.start_s == to_epoch_s(start):
                gain = 0.0
                reason = f"kept: {cur_ref} at {_z(start)} is still the best ({new.kg_co2e:.4g} kg CO2e on fresh forecasts)"
            elif current_kg is None:
                reason = f"kept: the current start ({cur_ref} at {_z(start)}) could not be evaluated on fresh forecasts"
            else:
                gain, move, reason = self._gain_verdict(
                    current_kg,
                    new.kg_co2e,
                    lambda pct: (
                        f"{new.ref} at {_z(new.start)} emits {pct:.2f}% less than {cur_ref} at "
                        f"{_z(start)} ({current_kg:.4g} -> {new.kg_co2e:.4g} kg CO2e on fresh forecasts)"
                    ),
                )
        new_start: datetime | None = None
        with self._tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return
            current = run.state == RunState.WAITING.value and run.plan_id == plan_id
            run.last_planned_at = now
            if kind == "prestart":
                run.prestart_replanned = True
            if planned is None:
                self._note(s, run, failure, now)
                return
            if not current:
                move = False
                reason = "superseded: the run changed while it was being re-planned"
            row = self._plan_row(run, planned, kind, move, reason, gain)
            s.add(row)
            s.flush()
            if move:
                fields = self._planned_fields(planned.chosen, row.signal or "", row.id)
                for key, value in fields.items():
                    setattr(run, key, value)
                run.plan_id = row.id
                run.updated_at = now
                new_start = planned.chosen.start
                self._note(s, run, f"re-planned ({kind}): {reason}", now)
        if new_start is not None:
            self._schedule_launch(run_id, new_start)
