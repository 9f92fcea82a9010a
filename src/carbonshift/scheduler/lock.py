"""Only one active daemon per database.

* SQLite: an exclusive `flock` on `<db>.lock`, next to the database. The kernel drops it when the
  process dies (even by SIGKILL), so a restart never finds a stale lock, and a second daemon is refused
  at once with the first one's pid. A lease row in the database would need a timeout to expire, so a
  crashed daemon would block its own restart for that long; the file lock has no such window. (It
  assumes a local file system, which SQLite in WAL mode needs anyway.)
* PostgreSQL: a session-level `pg_advisory_lock` held on a dedicated connection for the daemon's whole
  life. When the daemon dies its connection drops and the server releases the lock, and a standby,
  polling `pg_try_advisory_lock`, takes over. The key is derived from the database and schema, so
  separate schemas (test runs, teams) never contend.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from carbonshift.errors import CarbonshiftError
from carbonshift.scheduler.db import lock_key, safe_url

log = logging.getLogger(__name__)


class DaemonLockedError(CarbonshiftError):
    """Another daemon is active on this database (SQLite: a second one is refused)."""


def _me() -> str:
    return (
        f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC).isoformat(timespec='seconds')}"
    )


class DaemonLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another daemon holds it."""
        ...

    def alive(self) -> bool:
        """Whether this process still holds the lock (a dropped PostgreSQL connection loses it)."""
        ...

    def holder(self) -> str:
        """Who holds it, in words, for messages."""
        ...

    def release(self) -> None: ...


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_fd(fd)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, (_me() + "\n").encode())
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        try:
            text_ = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            text_ = ""
        return text_ or "another process"

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None


def _lock_fd(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class PgAdvisoryLock:
    """The advisory lock on its own connection (NullPool: never recycled or shared). TCP keepalives
    on both ends, so a daemon cut off by the network loses the lock in seconds rather than hours."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "application_name": f"carbonshift-daemon pid {os.getpid()} on {socket.gethostname()}"[:63],
                "connect_timeout": 10,
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
        self._conn: Connection | None = None
        self._key: int | None = None
        self._held = False

    def _connect(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for setting in (
                "tcp_keepalives_idle = 5",
                "tcp_keepalives_interval = 2",
                "tcp_keepalives_count = 3",
            ):
                with contextlib.suppress(Exception):
                    conn.execute(text(f"SET {setting}"))
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            self._key = lock_key("daemon", self.url, str(schema))
            self._conn = conn
        return self._conn

    def try_acquire(self) -> bool:
        if self._held:
            return True
        try:
            conn = self._connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar_one())
        except Exception as exc:
            log.warning("daemon lock: PostgreSQL %s unreachable (%s)", safe_url(self.url), type(exc).__name__)
            self._drop()
            return False
        self._held = got
        return got

    def alive(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except Exception:
            log.error(
                "daemon lock: the lock connection to PostgreSQL dropped; this daemon is no longer active"
            )
            self._drop()
            return False
        return True

    def holder(self) -> str:
        if self._key is None:
            return "another daemon"
        unsigned = self._key & 0xFFFFFFFFFFFFFFFF
        try:
            row = (
                self._connect()
                .execute(
                    text(
                        "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                        "AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"
                    ),
                    {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
                )
                .first()
            )
        except Exception:
            return "another daemon"
        if row is None:
            return "another daemon"
        return f"{row[0]} (from {row[1] or 'local socket'}, connected {row[2]})"

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def release(self) -> None:
        if self._held and self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        self._drop()
        self._engine.dispose()
