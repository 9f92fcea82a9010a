"""Which daemon acts: the single-daemon lock, the leadership epoch that fences a tick's writes, and
the hot-standby loop.

One active daemon per database (see `lock.py`): others refuse (SQLite) or wait as a hot standby
(PostgreSQL) and take over when the active one's lock connection drops. Each activation raises the
database's epoch by one; every state write a tick makes is fenced with it (`Store.move`), so a daemon
that lost the lock mid-launch writes nothing, and right before each provider launch the launcher asks
`leading()` again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Literal

from sqlalchemy import select
from sqlalchemy.engine import URL

from carbonshift.clock import Clock
from carbonshift.scheduler import db
from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.lock import DaemonLock, DaemonLockedError, FileLock, PgAdvisoryLock
from carbonshift.scheduler.models import LeadershipRow
from carbonshift.scheduler.settings import SchedulerSettings

__all__ = ["Leadership", "Role"]

log = logging.getLogger(__name__)

Role = Literal["stopped", "standby", "active"]


class Leadership:
    """The lock, the role and the epoch of one daemon instance.

    The daemon passes three hooks: `on_activate` (with the state lock held, once the epoch is claimed:
    set the timers up, paused), `after_activate` (without it: the recovery tick, then the timers run)
    and `on_lose` (with it held: stop the timers at once, never waiting for a timer thread); and
    optionally `on_confirmed`, after each check that found the lead still held (from the check's thread).
    """

    def __init__(
        self,
        url: URL,
        cfg: SchedulerSettings,
        store: Store,
        clock: Clock,
        stop: threading.Event,
        *,
        on_activate: Callable[[], None],
        after_activate: Callable[[], None],
        on_lose: Callable[[], None],
        on_confirmed: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self._stop = stop
        self._on_activate, self._after_activate, self._on_lose = on_activate, after_activate, on_lose
        self._on_confirmed = on_confirmed
        self.role: Role = "stopped"
        self.lock: DaemonLock | None = None
        self.epoch: int | None = None  # the leadership epoch this daemon claimed when it became active
        self.state_lock = threading.Lock()
        self._lock_io = threading.Lock()  # one thread at a time on the daemon lock's connection
        self._standby_thread: threading.Thread | None = None
        self.confirmed_at: float | None = None  # time.monotonic() the lead was last confirmed (active only)

    @property
    def database(self) -> str:
        """The database URL, password hidden (for logs and /healthz)."""
        return db.safe_url(self.url)

    # ---- taking the lead ---------------------------------------------------------------------------
    def start(self) -> None:
        """Take the lock and activate; else wait as a standby (PostgreSQL with `scheduler.standby`) or
        raise DaemonLockedError. Returns at once when already started."""
        with self.state_lock:
            if self.role != "stopped":
                return
            self.store.ensure_schema()
            self._stop.clear()
            lock = self.lock = self._make_lock()
            acquired = lock.try_acquire()
            if acquired:
                self._activate()
            else:
                holder = lock.holder()
        if acquired:
            self._after_activate()
            return
        with self.state_lock:
            if isinstance(lock, PgAdvisoryLock) and self.cfg.standby:
                log.info("standby: %s is active on %s; taking over when it stops", holder, self.database)
                self._enter_standby()
                return
            lock.release()
            self.lock = None
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

    def _make_lock(self) -> DaemonLock:
        path = db.sqlite_path(self.url)
        if path is not None:
            return FileLock(path.with_name(path.name + ".lock"))
        return PgAdvisoryLock(self.url)

    def _activate(self) -> None:
        """With the lock and the state lock held: a new leadership epoch, then the daemon's setup."""
        self.epoch = self._claim_epoch()
        self._on_activate()
        self.role = "active"
        self.confirmed_at = time.monotonic()
        threading.Thread(
            target=self._watch, args=(self.epoch,), name="carbonshift-leadership", daemon=True
        ).start()
        log.info("active daemon on %s", self.database)

    def _claim_epoch(self) -> int:
        """Raise the database's leadership epoch by one and hold the new value: writes a tick makes
        are fenced with it (see Store.move), so a daemon that lost the lock mid-launch writes nothing."""
        with self.store.tx() as s:
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

    def _enter_standby(self) -> None:
        self.role = "standby"
        self._standby_thread = threading.Thread(
            target=self._standby_loop, name="carbonshift-standby", daemon=True
        )
        self._standby_thread.start()

    def _standby_loop(self) -> None:
        while not self._stop.wait(self.cfg.standby_poll_s):
            lock = self.lock
            if lock is None:
                return
            try:
                with self._lock_io:
                    acquired = lock.try_acquire()
            except Exception:
                log.exception("standby: cannot try the daemon lock")
                continue
            if acquired:
                with self.state_lock:
                    if self._stop.is_set():
                        return
                    log.warning("standby: the active daemon is gone; taking over on %s", self.database)
                    self._standby_thread = None
                    self._activate()
                self._after_activate()
                return

    # ---- keeping it ----------------------------------------------------------------------------------
    def lock_alive(self) -> bool:
        """Whether this daemon still holds its lock, one thread at a time: the tick and the pool's
        workers (right before each launch) share the lock's one database connection."""
        lock = self.lock
        if lock is None:
            return False
        with self._lock_io:
            return lock.alive()

    def leading(self) -> bool:
        """Right before a provider call: this daemon still holds the lock and the epoch is still its
        own (no other daemon became active since)."""
        epoch = self.epoch
        if epoch is None or not self.lock_alive():
            return False
        with self.store.tx() as s:
            return s.scalar(select(LeadershipRow.epoch).where(LeadershipRow.id == 1)) == epoch

    def _watch(self, epoch: int | None) -> None:
        """The active daemon's own check of its lead, every `leadership_check_s`, on this thread: a
        tick that no longer fires (or hangs) must not keep a daemon that lost the lock acting, or
        showing itself active. Ends when this activation is over."""
        while not self._stop.wait(self.cfg.leadership_check_s):
            if self.role != "active" or self.epoch != epoch:
                return
            try:
                leading = self.leading()
            except Exception as exc:  # the database, not the lock, did not answer: look again
                log.warning("leadership: could not check the epoch (%s); checking again", type(exc).__name__)
                continue
            if leading:
                self.confirmed_at = time.monotonic()
                if self._on_confirmed is not None:
                    try:
                        self._on_confirmed()
                    except Exception:
                        log.exception("leadership: the check's follow-up failed")
                continue
            log.warning("leadership: this daemon no longer holds the lock or the epoch on %s", self.database)
            self.lose()
            return

    def lead_age_s(self) -> float | None:
        """Seconds since the lead was last confirmed; None when not active."""
        at = self.confirmed_at
        return None if self.role != "active" or at is None else time.monotonic() - at

    def lose(self) -> None:
        """The lock connection dropped: another daemon may take over, so stop acting at once."""
        with self.state_lock:
            if self.role != "active":
                return
            self._on_lose()
            self.confirmed_at = None
            if isinstance(self.lock, PgAdvisoryLock) and self.cfg.standby and not self._stop.is_set():
                self._enter_standby()
            else:
                self.role = "stopped"

    # ---- giving it back ------------------------------------------------------------------------------
    def take_standby_thread(self) -> threading.Thread | None:
        """At shutdown (the stop event set): the standby thread, to join outside the state lock."""
        with self.state_lock:
            thread, self._standby_thread = self._standby_thread, None
        return thread

    def release(self) -> None:
        """Give the lock back; this instance is stopped."""
        with self.state_lock:
            if self.lock is not None:
                with self._lock_io:
                    self.lock.release()
                self.lock = None
            self.role = "stopped"
            self.confirmed_at = None
