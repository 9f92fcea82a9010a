"""The scheduler daemon's facade: `Scheduler`, the Python API the HTTP API and the CLI build on.

It composes the parts, each in its own module with one job, and keeps the public API:

* `lifecycle.py`: transactions and the compare-and-set run state machine (`Store.move`), fenced with
  the leadership epoch. Every state change goes through it, committed, with its reason, before the
  action it announces.
* `leadership.py`: the single-daemon lock, the epoch, the hot-standby loop.
* `timers.py`: APScheduler wake-ups (tick, re-plan, a run's launch and stop times), re-derived from the
  tables at every activation.
* `pool.py`: provider calls on a bounded worker pool, each timed; the tick only records intents and
  outcomes.
* `launcher.py`: launching due runs (capacity fallbacks, misfires, overlap) and settling launches
  whose outcome is unclear.
* `polling.py`: following running runs to their end; `releases.py`: releasing cloud instances until
  the provider confirms they are gone.
* `schedules.py`: recurring occurrences; `replan.py`: re-planning with fresh forecasts; `chunks.py`:
  interruptible jobs run chunk by chunk; `planning.py`: making a plan for a run.
* `reports.py`: what runs report back; `queries.py` and `views.py`: the read side of the API.

The database is the source of truth. API calls work on any instance, active or not: they only write
rows, and the active daemon acts on them (a submission is picked up as `planned`, a cancellation as
`cancel_requested`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carbonshift import runtime
from carbonshift.advisor import Advice
from carbonshift.catalog import Catalog
from carbonshift.clock import Clock, SystemClock
from carbonshift.config import Settings
from carbonshift.config.jobspec import LABEL_KEYS, JobSpec, Labels
from carbonshift.errors import UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.providers.base import Provider
from carbonshift.providers.local import default_runs_dir
from carbonshift.providers.registry import get_provider
from carbonshift.schedule import next_occurrence
from carbonshift.scheduler import db, ledger, queries
from carbonshift.scheduler.chunks import Chunks
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.launcher import Launcher
from carbonshift.scheduler.leadership import Leadership, Role
from carbonshift.scheduler.lifecycle import PENDING, TERMINAL_STATES, Store, new_id, z
from carbonshift.scheduler.lock import DaemonLock, DaemonLockedError
from carbonshift.scheduler.models import JobRow, RunRow
from carbonshift.scheduler.planning import Plans
from carbonshift.scheduler.polling import Polling
from carbonshift.scheduler.pool import Call, ProviderCalls
from carbonshift.scheduler.queries import JobPage, NotFoundError, Position
from carbonshift.scheduler.releases import Releases
from carbonshift.scheduler.replan import Replanner
from carbonshift.scheduler.reports import Reports
from carbonshift.scheduler.schedules import Schedules
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.scheduler.timers import Timers
from carbonshift.scheduler.tokens import ReportTokens
from carbonshift.scheduler.views import JobView, RunView

__all__ = ["DaemonLockedError", "NotFoundError", "Scheduler", "live_run_ids"]

log = logging.getLogger(__name__)

ServiceFactory = Callable[[], IntensityService]


def live_run_ids(settings: Settings) -> set[str]:
    """Ids of every run not yet ended, from the scheduler's database: an instance tagged with one of
    them is not an orphan (the providers' orphan check asks this)."""
    sched = Scheduler(settings, providers={})
    try:
        with sched._tx() as s:
            return set(s.scalars(select(RunRow.id).where(RunRow.state.not_in(TERMINAL_STATES))))
    finally:
        sched.engine.dispose()


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
        self._background = True
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._tick_began: float | None = None  # time.monotonic() the last tick pass began
        self._healed_at = float("-inf")  # time.monotonic() the timers were last rebuilt for want of ticks

        store = Store(self.engine)
        plans = Plans(settings, self.providers, lambda: self.catalog, self._service_factory)
        self._ctx = Context(
            settings=settings,
            store=store,
            clock=self.clock,
            providers=self.providers,
            calls=ProviderCalls(self.cfg, store, self.clock, self._stop),
            timers=Timers(
                self.cfg, store, self.clock, on_tick=self._timer_tick, on_replan=self._timer_replan
            ),
            leadership=Leadership(
                self.url,
                self.cfg,
                store,
                self.clock,
                self._stop,
                on_activate=self._on_activate,
                after_activate=self._after_activate,
                on_lose=lambda: self._ctx.timers.stop(wait=False),  # from a timer thread: never wait
                on_confirmed=self._heal_timers,
            ),
            tokens=ReportTokens(store),
            plans=plans,
            chunks=Chunks(settings, store, plans),
        )
        self._store = store
        self._releases = Releases(self._ctx)
        self._polling = Polling(self._ctx, self._releases)
        self._launcher = Launcher(self._ctx, self._polling)
        self._schedules = Schedules(self._ctx)
        self._replanner = Replanner(self._ctx)
        self._reports = Reports(self._ctx, self._releases)

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
        return self._ctx.leadership.role

    @property
    def is_active(self) -> bool:
        return self.role == "active"

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
        if self.role != "stopped":
            return
        self._background = background
        self._ctx.leadership.start()

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
        leadership = self._ctx.leadership
        thread = leadership.take_standby_thread()
        self._ctx.timers.stop(wait=wait)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._ctx.calls.drain(wait)
        with self._tick_lock, self._replanner.lock:
            leadership.release()
        self.engine.dispose()

    def _on_activate(self) -> None:
        """Leadership taken (state lock held): the timers, re-derived from the tables, paused."""
        if self._background:
            self._ctx.timers.start()

    def _after_activate(self) -> None:
        """Without the state lock (a tick may need it): one recovery tick, then the timers run."""
        self._safely(self._recovery_tick)
        self._ctx.timers.resume()

    def _tick_stale_s(self) -> float:
        return max(self.cfg.tick_stale_s, 3 * self.cfg.poll_interval_s)

    def _heal_timers(self) -> None:
        """After each leadership check that found the lead held: when no tick has begun for
        `_tick_stale_s` and none is running (the timers' thread died, not a tick hung in a call),
        the timers are rebuilt from the tables (at most once per `_tick_stale_s`), so the daemon goes
        on scheduling. /healthz says stale until a tick has begun again."""
        began, now = self._tick_began, time.monotonic()
        stale_s = self._tick_stale_s()
        if (
            not self._background
            or began is None
            or now - began <= stale_s
            or now - self._healed_at <= stale_s
        ):
            return
        leadership = self._ctx.leadership
        with leadership.state_lock:  # never while it steps down (or after): a standby has no timers
            if leadership.role != "active" or not self._tick_lock.acquire(blocking=False):
                return  # a tick is running (or hung): new timers would only queue behind it
            try:
                log.warning("no tick for %.0f s while leading: rebuilding the timers", now - began)
                self._healed_at = now
                timers = self._ctx.timers
                timers.stop(wait=False)
                timers.start()
                timers.resume()
            finally:
                self._tick_lock.release()

    def _timer_tick(self) -> None:
        self._safely(self._tick_core)

    def _timer_replan(self) -> None:
        self._safely(self._replanner.replan_pass)

    @staticmethod
    def _safely(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduler: %s failed (retried at the next tick)", getattr(fn, "__name__", fn))

    def health(self) -> dict[str, Any]:
        """What /healthz shows. `active` only while the lead is confirmed (by the leadership check, at
        most a few `leadership_check_s` ago) and the tick is alive (its last pass began at most
        `tick_stale_s`, or 3 poll intervals, ago; a daemon driven by tick() has no timers to judge);
        otherwise an active daemon is `stale`: status 'stale', to be answered with 503."""
        role: str = self.role
        lead_age = self._ctx.leadership.lead_age_s()
        began = self._tick_began
        tick_age = None if began is None else round(time.monotonic() - began, 3)
        out: dict[str, Any] = {"status": "ok", "role": role, "last_tick_age_s": tick_age}
        if role != "active":
            return out
        problems = []
        if lead_age is None or lead_age > 3 * self.cfg.leadership_check_s + 2:
            problems.append("the daemon lock is not confirmed held")
        stale_s = self._tick_stale_s()
        if self._background and (tick_age is None or tick_age > stale_s):
            problems.append(f"no tick has begun in the last {stale_s:g} s")
        if problems:
            out.update(status="stale", role="stale", detail="; ".join(problems))
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
        self._replanner.replan_pass()

    def _tick_core(self, wait: bool = False) -> None:
        """One pass under the tick lock, fenced with this daemon's epoch. Provider calls go to the
        worker pool: the timers' pass (`wait=False`) hands them over and returns, their outcomes are
        recorded when they complete; `wait=True` (tick(), and the recovery tick of a daemon without
        timers) waits for each phase's calls before the next phase, as if they had run inline."""
        if not self.is_active:
            return
        ctx = self._ctx
        with self._tick_lock:
            if not ctx.leadership.lock_alive():
                ctx.leadership.lose()
                return
            self._tick_began = time.monotonic()
            now = self.clock.now()
            with ctx.store.fenced(ctx.leadership.epoch), ctx.calls.phases(wait) as settle:
                ctx.calls.expire()
                ctx.timers.adopt_planned()
                self._launcher.resolve_launching()
                settle()
                self._polling.poll_running()
                settle()
                self._schedules.advance_all(now)
                self._launcher.launch_due(now)
                settle()
                ctx.store.close_finished_jobs(now)
                self._releases.release_due(now)
                settle()

    def _recovery_tick(self) -> None:
        """The tick at activation: like tick() (waiting for its calls) on a daemon without timers,
        else like a timer's, so the timers resume at once whatever a provider does."""
        self._tick_core(wait=not self._background)

    # ---- the API -------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobView:
        """Store the job, plan its first run (for a schedule: its next occurrence) and, on the active
        daemon, schedule the launch. UserInputError when the window cannot be met or no configured
        provider can run it; nothing is stored then."""
        plans = self._ctx.plans
        now = self.clock.now()
        nominal: datetime | None = None
        if spec.schedule is not None:
            nominal = next_occurrence(spec, now)
            if nominal is None:
                raise UserInputError("schedule.cron", "the expression never fires")
            earliest, deadline = plans.window_for(spec, nominal)
        else:
            earliest, deadline = spec.resolve_window(now)
        planned = plans.plan(spec, earliest, deadline, now, chunked=spec.schedule is None)
        job_id = new_id("job")
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
            run = self._store.new_run(s, job, 1, nominal, earliest, deadline, spec.duration_s, now)
            plans.attach(s, run, planned, plans.first_reason(planned), now)
            run_ids = [run.id, *self._ctx.chunks.add(s, job, run, planned, now)]
        log.info("job %s (%s) submitted", job_id, spec.name)
        if self.is_active:
            for run_id in run_ids:
                self._ctx.timers.adopt(run_id)
        return self.get_job(job_id)

    def list_jobs(self, **labels: str | None) -> list[JobView]:
        """Every job, newest first; `team=`, `project=`, `organisation=` keep only jobs with that label."""
        return self.list_jobs_page(None, None, full=True, **labels).jobs

    def list_jobs_page(
        self, limit: int | None, after: Position | None = None, *, full: bool = False, **labels: str | None
    ) -> JobPage:
        """At most `limit` jobs (None: all) after `after` (the last job of the previous page; the API's
        cursor), newest first (created_at descending, then id), with the labels given. Only the page is
        read, from the index on that order; without `full`, each job is a summary (no run events, no
        plans but the one in force, and that without its ranked options), as the job list shows it."""
        unknown = set(labels) - set(LABEL_KEYS)
        if unknown:
            raise UserInputError(sorted(unknown)[0], f"not a label; filter by {', '.join(LABEL_KEYS)}")
        chosen = {k: v for k, v in labels.items() if v}
        with self._store.read() as s:
            return queries.job_page(s, limit, after, chosen, self.clock.now(), full=full)

    def totals(
        self,
        group_by: Sequence[str] | str | None = (),
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """The ledger's totals of finished runs, grouped and filtered (shape: `ledger.totals`)."""
        self._store.ensure_schema()
        return ledger.totals(self._store.reader, group_by, start, end, **filters)

    def record_tracked(
        self, report: dict[str, Any], labels: Labels | None = None, name: str | None = None
    ) -> RunView:
        """Store a run `carbonshift track --server` measured, so it counts in the ledger (idempotent by
        the report's run_id); each label not given takes the config's."""
        return self.get_run(self._reports.record_tracked(report, labels, name))

    def get_job(self, job_id: str) -> JobView:
        with self._store.read() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFoundError("job", job_id)
            return queries.job_views(s, [job], self.clock.now())[0]

    def get_run(self, run_id: str) -> RunView:
        with self._store.read() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            return queries.run_views(s, [run])[0]

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job: runs not started never start, running ones are stopped (on the active daemon
        at once, waiting up to `scheduler.cancel_wait_s` for them to end; elsewhere at the active
        daemon's next tick), and a schedule makes no more occurrences. Cancelling twice, or cancelling a
        one-off job that has already ended, changes nothing."""
        now = self.clock.now()
        to_stop: list[str] = []
        pending: list[str] = []
        with self._tx() as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise NotFoundError("job", job_id)
            if job.status == JobStatus.DONE.value:
                return queries.job_views(s, [job], now)[0]  # a finished one-off job stays as it ended
            if job.status != JobStatus.CANCELLED.value:
                job.status = JobStatus.CANCELLED.value
                job.status_reason = f"cancelled at {z(now)}"
                job.updated_at = now
            s.execute(
                update(RunRow)
                .where(RunRow.job_id == job_id, RunRow.state.not_in(TERMINAL_STATES))
                .values(cancel_requested=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            for run in s.scalars(
                select(RunRow).where(RunRow.job_id == job_id, RunRow.state.not_in(TERMINAL_STATES))
            ):
                if run.state not in PENDING:
                    to_stop.append(run.id)
                elif self._store.move(
                    s, run, RunState.CANCELLED, "cancelled before it started", now, ended_at=now
                ):
                    pending.append(run.id)
        for run_id in pending:
            self._ctx.timers.unschedule(run_id)
        if self.is_active:
            self._stop_and_wait(to_stop, now)
        return self.get_job(job_id)

    def _stop_and_wait(self, run_ids: list[str], now: datetime) -> None:
        """Stop these running runs and follow them for up to `scheduler.cancel_wait_s`."""
        for run_id in run_ids:
            self._polling.stop_run(run_id, now)
        deadline = time.monotonic() + self.cfg.cancel_wait_s
        left = list(run_ids)
        while left and time.monotonic() < deadline:
            for run_id in list(left):
                if self._polling.poll_run(run_id, self.clock.now()):
                    left.remove(run_id)
            if left:
                time.sleep(0.1)

    def run_log(self, job_id: str, run_id: str) -> str:
        """The captured stdout and stderr of a local run (the tail, at most scheduler.max_log_bytes)."""
        return queries.run_log(self._store, self.providers, job_id, run_id, self.cfg.max_log_bytes)

    def dry_run(self, spec: JobSpec) -> Advice:
        """The plan `submit` would start from (a schedule: its next occurrence); nothing is stored."""
        return self._ctx.plans.advise(spec, self.clock.now())

    def run_token_ok(self, run_id: str, token: str) -> bool:
        """Whether `token` is the run's report token (constant-time); NotFoundError for no such run."""
        return self._reports.token_ok(run_id, token)

    def record_report(self, run_id: str, token: str, report: dict[str, Any]) -> RunView:
        """A remote run's tracker reporting back. The token is the run's own (given at launch, stored
        only as a hash) and compared in constant time; PermissionError when it does not match. A
        report with an exit code ends a run still launching or running."""
        self._reports.record(run_id, token, report)
        return self.get_run(run_id)

    def metrics(self) -> dict[str, Any]:
        """Counters for Prometheus /metrics (see `queries.metrics`)."""
        return queries.metrics(self._store, self.role)

    # ---- for tests and tools: the parts' state -------------------------------------------------------
    def _tx(self) -> AbstractContextManager[Session]:
        """One short transaction (see `Store.tx`)."""
        return self._store.tx()

    @property
    def _lock(self) -> DaemonLock | None:
        """The single-daemon lock while held (or waited for, as a standby)."""
        return self._ctx.leadership.lock

    @property
    def _calls(self) -> dict[str, Call]:
        """Run id -> its provider work in flight (or queued)."""
        return self._ctx.calls.calls

    def _report_token(self, run_id: str) -> str:
        return self._ctx.tokens.token(run_id)
