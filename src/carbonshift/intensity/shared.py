"""What a long-running process (the scheduler daemon) keeps between plans: one thread pool for fetching
zones in parallel, and the merged series it already built, per (zone, signal, hour).

A command plans once and exits, so it merges each zone's series once. The daemon plans on every
`POST /api/v1/plan` (139 regions), every submission and every re-plan, and merging every zone again
each time (and starting a new thread pool for it) was most of a plan's cost. Here each merged series is
built over the plan's window widened to whole hours and reused, read out of it, by every plan whose
window falls in the same hours, for as long as its inputs are what they were:

- no source has answered again for one of its places since (each live answer bumps that place's
  generation, and an entry remembers the generations it was built from);
- the clock hour it was built in has not ended, and it is younger than `ttl_s` (the forecast TTL,
  `cache.forecast_ttl_s`: how long a fetched forecast counts as fresh anyway);
- when a source failed while it was built, younger than `FAILURE_MEMORY_S`, after which the service
  would ask that source again.

Each plan still has its own IntensityService (its own notices): an entry remembers the notices its
build produced and the service repeats them, so a plan served from here says what a fresh one says.
Another process writing the shared SQLite cache (a `carbonshift intensity` run) is seen once the entry
expires, within `ttl_s`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from carbonshift.intensity.types import GridZone, IntensitySeries, Signal, TimeSpan

HOUR_S = 3600
FAILURE_MEMORY_S = 120  # a source that just failed is not asked again for this long (the service's rule)

Place = tuple[str, str]  # (source name, the source's key for the zone)
# the zone's token (`SharedIntensity.zone_token`), signal, hour-aligned span start and end (epoch s)
MergedKey = tuple[int, Signal, int, int]


def hour_span(span: TimeSpan) -> TimeSpan:
    """`span` widened to whole hours (UTC): the unit merged series are kept in."""
    return TimeSpan.from_epoch(*hour_span_s(span.start_s, span.end_s))


def hour_span_s(start_s: int, end_s: int) -> tuple[int, int]:
    """`hour_span` in epoch seconds."""
    return start_s - start_s % HOUR_S, -(-end_s // HOUR_S) * HOUR_S


MAX_ZONES = 1 << 14  # zone tokens remembered (a catalog has ~140 regions; config reloads make new zones)
WINDOWS_KEPT = 4  # windows remembered per entry: plans in the same second share one


@dataclass(frozen=True)
class MergedEntry:
    series: IntensitySeries  # over the hour-aligned span of its key
    notices: tuple[str, ...]  # what building it noticed (fallbacks, failed sources)
    inputs: tuple[tuple[Place, int], ...]  # each (source, place) it read, with that place's generation
    expires_s: int
    whole_s: tuple[int, int]  # the series' own span in epoch s (read once, not per plan and zone)
    _windows: dict[tuple[int, int], IntensitySeries] = field(default_factory=dict, compare=False, repr=False)

    def window(self, span: TimeSpan, span_s: tuple[int, int] | None = None) -> IntensitySeries:
        """The series read out for `span` (`span_s`: its epoch seconds, where the caller has them).
        Plans arriving in the same second have the same window (a dry run's starts at now), so the
        last few are remembered: under load most plans then read their 139 series without building
        any (series are immutable, so sharing them is safe)."""
        key = (span.start_s, span.end_s) if span_s is None else span_s
        if key == self.whole_s:
            return self.series
        found = self._windows.get(key)
        if found is None:
            found = self.series.window(span)
            if len(self._windows) >= WINDOWS_KEPT:
                self._windows.clear()  # plain and thread-safe enough: at worst a window is built twice
            self._windows[key] = found
        return found


class SharedIntensity:
    """Thread-safe; one per process that plans repeatedly (see `runtime.service_factory`)."""

    def __init__(self, *, ttl_s: int, max_workers: int = 8, max_entries: int = 8192) -> None:
        if ttl_s < 0 or max_workers < 1 or max_entries < 1:
            raise ValueError("ttl_s must be >= 0, max_workers and max_entries >= 1")
        self.ttl_s = ttl_s
        self.max_workers = max_workers
        self.max_entries = max_entries
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="intensity")
        self._next_token = 0
        self._lock = threading.Lock()
        self._entries: dict[MergedKey, MergedEntry] = {}
        self._generations: dict[Place, int] = {}
        self._tokens: dict[GridZone, int] = {}
        self._token_of: dict[int, tuple[GridZone, int]] = {}  # by id(zone): the zone held, its token

    # ---- zones: keyed by a number --------------------------------------------------------------
    def zone_token(self, zone: GridZone) -> int:
        """A number for `zone`, the same for every equal zone: what merged series are keyed by. A
        GridZone hashes its 11 fields each time, and a plan looked up 139 of them; a daemon asks about
        the same zone objects (the advisor makes each region's once), so this is found by identity."""
        found = self._token_of.get(id(zone))
        if found is not None and found[0] is zone:
            return found[1]
        with self._lock:
            token = self._tokens.get(zone)
            if token is None:
                if len(self._tokens) >= MAX_ZONES:  # old tokens are never reused: their entries age out
                    self._tokens.clear()
                token = self._tokens[zone] = self._next_token
                self._next_token += 1
            if len(self._token_of) >= MAX_ZONES:
                self._token_of.clear()
            self._token_of[id(zone)] = (zone, token)
        return token

    # ---- generations: a source answering again -------------------------------------------------
    def generation(self, place: Place) -> int:
        with self._lock:
            return self._generations.get(place, 0)

    def answered(self, place: Place) -> int:
        """A source answered live for a place: every merged series that read it is out of date."""
        with self._lock:
            gen = self._generations.get(place, 0) + 1
            self._generations[place] = gen
            return gen

    # ---- merged series -------------------------------------------------------------------------
    def lookup(self, key: MergedKey, now_s: int) -> MergedEntry | None:
        """The entry kept for `key`, if still valid. Read without the lock (a plan looks up 139 of
        them; a dict read and each generation read are atomic), which answers as a locked read would:
        a source answering just after is seen by the next plan either way. Only dropping an entry
        that is out of date takes the lock."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        generations = self._generations
        current = now_s < entry.expires_s
        if current:
            for place, gen in entry.inputs:
                if generations.get(place, 0) != gen:
                    current = False
                    break
        if current:
            return entry
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        return None

    def store(
        self,
        key: MergedKey,
        series: IntensitySeries,
        *,
        notices: tuple[str, ...],
        inputs: tuple[tuple[Place, int], ...],
        failed: bool,
        now_s: int,
    ) -> None:
        life_s = min(self.ttl_s, FAILURE_MEMORY_S) if failed else self.ttl_s
        expires_s = min(now_s + life_s, now_s - now_s % HOUR_S + HOUR_S)
        if expires_s <= now_s:
            return  # a TTL of 0: nothing is kept
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._evict(now_s)
            edges = series.edges_s
            whole_s = (int(edges[0]), int(edges[-1]))
            self._entries[key] = MergedEntry(series, notices, inputs, expires_s, whole_s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict(self, now_s: int) -> None:
        """Drop expired entries; if none were, the oldest half (plain insertion order)."""
        expired = [k for k, e in self._entries.items() if now_s >= e.expires_s]
        for k in expired or list(self._entries)[: len(self._entries) // 2]:
            del self._entries[k]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
