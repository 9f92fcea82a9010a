"""A persistent cache of fetched intensity (SQLite), so repeated plans are fast and offline runs work
from what was fetched before.

Points are keyed by source, place (the source's key for a zone), signal and interval start; a newer fetch replaces an older value
for the same interval (a measurement replaces the forecast it supersedes). A separate table records
which span each fetch covered and when, which is what freshness is judged on. Failures are remembered
briefly too, so a dead source is not asked again by every command in a row.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from carbonshift.intensity.types import IntensitySeries, Kind, Provenance, Signal, TimeSpan, basis_of
from carbonshift.timeutil import from_epoch_s, to_epoch_s

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    source TEXT NOT NULL, zone TEXT NOT NULL, signal TEXT NOT NULL,
    start_s INTEGER NOT NULL, end_s INTEGER NOT NULL, g_per_kwh REAL NOT NULL,
    kind TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', provenance_source TEXT NOT NULL,
    fetched_at_s INTEGER NOT NULL, basis TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (source, zone, signal, start_s)
);
CREATE TABLE IF NOT EXISTS fetches (
    source TEXT NOT NULL, zone TEXT NOT NULL, signal TEXT NOT NULL,
    start_s INTEGER NOT NULL, end_s INTEGER NOT NULL, fetched_at_s INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fetches_key ON fetches (source, zone, signal, fetched_at_s);
CREATE TABLE IF NOT EXISTS failures (
    source TEXT PRIMARY KEY, reason TEXT NOT NULL, failed_at_s INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class CachedFetch:
    series: IntensitySeries
    fetched_at: datetime
    fresh: bool


class IntensityCache:
    """Thread-safe (one connection per thread); safe across processes (SQLite WAL, busy timeout)."""

    def __init__(self, path: Path, *, forecast_ttl_s: int = 900, history_ttl_s: int = 6 * 3600) -> None:
        self.path = path
        self.forecast_ttl_s = forecast_ttl_s
        self.history_ttl_s = history_ttl_s
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.executescript(SCHEMA)
            columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(points)")}
            if "basis" not in columns:  # a cache from before values carried their basis: start afresh
                conn.executescript("DROP TABLE points; DELETE FROM fetches;" + SCHEMA.split(";", 1)[0] + ";")

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        yield conn

    # ---- writes -------------------------------------------------------------------------------
    def store(self, source: str, place: str, series: IntensitySeries, span: TimeSpan, now: datetime) -> None:
        """Keep a successful fetch: its points and the span it answered for, under the source's key
        for the place (usually the zone id)."""
        now_s = to_epoch_s(now)
        rows = []
        for i in np.flatnonzero(~np.isnan(series.values)):
            p = series.provenances[int(series.prov_index[i])]
            rows.append(
                (
                    source,
                    place,
                    series.signal.value,
                    int(series.edges_s[i]),
                    int(series.edges_s[i + 1]),
                    float(series.values[i]),
                    p.kind.value,
                    p.note,
                    p.source,
                    to_epoch_s(p.fetched_at),
                    p.basis.value if p.basis is not None else "",
                )
            )
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    # drop cached points the new answer overlaps, so re-gridded data can't double up
                    conn.execute(
                        "DELETE FROM points WHERE source=? AND zone=? AND signal=? AND start_s<? AND end_s>?",
                        (source, place, series.signal.value, span.end_s, span.start_s),
                    )
                    conn.executemany("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
                conn.execute(
                    "INSERT INTO fetches VALUES (?,?,?,?,?,?)",
                    (source, place, series.signal.value, span.start_s, span.end_s, now_s),
                )
                conn.execute("DELETE FROM failures WHERE source=?", (source,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def record_failure(self, source: str, reason: str, now: datetime) -> None:
        with self._conn() as conn:
            conn.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?)", (source, reason, to_epoch_s(now)))

    def recent_failure(self, source: str, now: datetime, within_s: int) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT reason, failed_at_s FROM failures WHERE source=?", (source,)
            ).fetchone()
        if row is None or to_epoch_s(now) - int(row[1]) > within_s:
            return None
        return str(row[0])

    # ---- reads --------------------------------------------------------------------------------
    def lookup(
        self, source: str, place: str, zone: str, signal: Signal, span: TimeSpan, now: datetime
    ) -> CachedFetch | None:
        """What the cache holds for the span at a place (the source's key for it), as a series for
        `zone`, and whether a fresh fetch covered all of the span."""
        with self._conn() as conn:
            fetch = conn.execute(
                "SELECT fetched_at_s FROM fetches WHERE source=? AND zone=? AND signal=? "
                "AND start_s<=? AND end_s>=? ORDER BY fetched_at_s DESC LIMIT 1",
                (source, place, signal.value, span.start_s, span.end_s),
            ).fetchone()
            rows = conn.execute(
                "SELECT start_s, end_s, g_per_kwh, kind, note, provenance_source, fetched_at_s, basis FROM points "
                "WHERE source=? AND zone=? AND signal=? AND start_s<? AND end_s>? ORDER BY start_s",
                (source, place, signal.value, span.end_s, span.start_s),
            ).fetchall()
        if not rows and fetch is None:
            return None
        now_s = to_epoch_s(now)
        fresh = False
        fetched_at_s = int(fetch[0]) if fetch else max(int(r[6]) for r in rows)
        if fetch is not None:
            had_future = span.end_s > int(fetch[0])  # part of the span was still future when fetched
            ttl = self.forecast_ttl_s if had_future else self.history_ttl_s
            fresh = now_s - int(fetch[0]) <= ttl
        if rows:
            provs = [
                Provenance(
                    str(r[5]),
                    signal,
                    Kind(str(r[3])),
                    from_epoch_s(int(r[6])),
                    str(r[4]),
                    basis_of(str(r[7])),
                )
                for r in rows
            ]
            series = IntensitySeries.from_intervals(
                zone,
                signal,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                provs,
                span=span,
            )
        else:
            series = IntensitySeries.empty(zone, signal, span)
        return CachedFetch(series, from_epoch_s(fetched_at_s), fresh)

    def clear(self) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM points")
            conn.execute("DELETE FROM fetches")
            conn.execute("DELETE FROM failures")
