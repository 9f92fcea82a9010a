"""The daemon's wake-ups: APScheduler (3.x) jobs that only wake it, never hold state.

Interval jobs run the tick and the re-plan pass; a date job at each waiting run's planned start
launches it, and one at a chunk's planned end stops it. The jobs live in this daemon's memory only
(APScheduler's MemoryJobStore): every one is re-derived from the tables at each activation, so a lost
job costs at most one poll interval, never a run, and no two daemons ever share (and race on) one job
store. Misfire handling is set on purpose: `misfire_grace_time=None` (run however late) and
`coalesce=True` (many missed wake-ups become one); whether a late run still starts is the launcher's
decision, from its deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from carbonshift.clock import Clock
from carbonshift.scheduler.lifecycle import ACTIVE, PENDING, Store, z
from carbonshift.scheduler.models import RunRow
from carbonshift.scheduler.settings import SchedulerSettings
from carbonshift.scheduler.states import RunState

__all__ = ["Timers"]

log = logging.getLogger(__name__)


class Timers:
    """The APScheduler instance of an active daemon (none while standby or stopped)."""

    def __init__(
        self,
        cfg: SchedulerSettings,
        store: Store,
        clock: Clock,
        *,
        on_tick: Callable[[], None],
        on_replan: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self._on_tick, self._on_replan = on_tick, on_replan
        self._aps: Any = None  # apscheduler BackgroundScheduler while active
        self._lock = threading.Lock()

    def fire(self, action: str, run_id: str | None = None) -> None:
        """A timer went off: a run's launch or stop time is a tick (it acts on every run due)."""
        if action == "replan":
            self._on_replan()
        else:
            self._on_tick()

    # ---- start and stop ------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the timers, paused, from the tables: the tick and re-plan intervals, a launch timer per
        waiting run, a stop timer per running chunk. `resume()` lets them run."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)  # a tick every few seconds would drown the log
        aps = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},  # this daemon's own; re-derived at each activation
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        aps.start(paused=True)
        with self._lock:
            self._aps = aps
        now = datetime.now(UTC)
        for action in ("tick", "replan"):
            aps.add_job(
                self.fire,
                "interval",
                seconds=self.cfg.poll_interval_s,
                id=f"carbonshift:{action}",
                args=[action],
                replace_existing=True,
                next_run_time=now + timedelta(seconds=self.cfg.poll_interval_s),
            )
        with self.store.tx() as s:
            # the two columns, not the runs: with thousands waiting, decoding each one's plan was most
            # of a start
            waiting = list(
                s.execute(select(RunRow.id, RunRow.planned_start).where(RunRow.state.in_(PENDING)))
            )
        for run_id, start in waiting:
            if start is not None:
                self._schedule("launch", run_id, start, "launch it")
        if waiting:
            self.tick_soon()  # once, as schedule_launch would for each (the first tick then acts on all)
        with self.store.tx() as s:
            stops = list(
                s.execute(
                    select(RunRow.id, RunRow.stop_at).where(
                        RunRow.state.in_(ACTIVE), RunRow.stop_at.is_not(None)
                    )
                )
            )
        for run_id, at in stops:
            if at is not None:
                self.schedule_stop(run_id, at)

    def resume(self) -> None:
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.resume()

    def stop(self, wait: bool) -> None:
        """No more wake-ups. `wait=False` from a timer thread (never wait for ourselves)."""
        with self._lock:
            aps, self._aps = self._aps, None
        if aps is None:
            return
        with contextlib.suppress(Exception):
            if wait:
                # pause first: no new timer is handed to the executor while it shuts down (APScheduler 3
                # would otherwise log 'cannot schedule new futures after shutdown' now and then)
                aps.pause()
            aps.shutdown(wait=wait)

    # ---- one run's timers ------------------------------------------------------------------------------
    def schedule_launch(self, run_id: str, at: datetime) -> None:
        self._schedule("launch", run_id, at, "launch it")
        self.tick_soon()

    def tick_soon(self) -> None:
        """Bring the next tick forward to now: a run just planned, or moved by a re-plan, is queued
        ahead (or re-timed) at an engine that queues right away, not a poll interval later."""
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(Exception):
                # a one-off job of its own (not the interval tick moved): one that comes while a tick
                # runs waits for it (the tick lock) instead of being skipped with a warning
                aps.add_job(
                    self.fire,
                    "date",
                    run_date=datetime.now(UTC),
                    id="carbonshift:tick-soon",
                    args=["tick"],
                    replace_existing=True,
                )

    def schedule_stop(self, run_id: str, at: datetime) -> None:
        """A tick at a chunk's planned end, so it is paused then, not at the next poll."""
        self._schedule("stop", run_id, at, "stop it")

    def _schedule(self, action: str, run_id: str, at: datetime, what: str) -> None:
        aps = self._aps
        if aps is None:
            return
        try:
            aps.add_job(
                self.fire,
                "date",
                run_date=at,
                id=f"{action}:{run_id}",
                args=[action, run_id],
                replace_existing=True,
            )
        except Exception:
            log.exception("run %s: could not set its %s timer (the poll will %s)", run_id, action, what)

    def unschedule(self, run_id: str) -> None:
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.remove_job(f"launch:{run_id}")

    # ---- adopting planned runs -------------------------------------------------------------------------
    def adopt(self, run_id: str) -> None:
        """planned -> waiting: the launch timer is set (outside any transaction), then the state."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.PLANNED.value or run.planned_start is None:
                return
            start = run.planned_start
        self.schedule_launch(run_id, start)
        now = self.clock.now()
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == RunState.PLANNED.value:
                self.store.move(s, run, RunState.WAITING, f"scheduled to launch at {z(start)}", now)
        self.tick_soon()

    def adopt_planned(self) -> None:
        """Every run still `planned` (submitted through any instance) gets its timer and waits."""
        with self.store.tx() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.state == RunState.PLANNED.value)))
        for run_id in ids:
            self.adopt(run_id)
