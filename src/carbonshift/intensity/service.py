"""The merging service: one complete series for a zone, a span and a signal, saying where every value
came from.

Order of preference for each stretch of time:
1. measured history (the past), from live sources in the configured priority;
2. forecasts (the future; and the past where nothing was measured), same priority;
3. a modelled forecast (daily profile) from the zone's own history, for future gaps;
4. the zone's static annual average (average signal only), flagged static.
A source that fails costs one bounded attempt per command: it is then skipped (and remembered as
failing for a short while across commands), its cached data is used even when stale, and the reason
travels in the provenance of whatever replaced it. Average and marginal are never mixed: a marginal
request with no marginal data is an error, not a static average in disguise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from carbonshift.clock import Clock, SystemClock
from carbonshift.errors import NoDataError, UserInputError
from carbonshift.intensity.base import IntensitySource, SourceError, place_key
from carbonshift.intensity.cache import IntensityCache
from carbonshift.intensity.model import DAY_S, profile_forecast
from carbonshift.intensity.shared import FAILURE_MEMORY_S, Place, SharedIntensity, hour_span, hour_span_s
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.sources.static import StaticSource
from carbonshift.intensity.types import GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import isoformat_z, to_epoch_s

log = logging.getLogger(__name__)

__all__ = ["FAILURE_MEMORY_S", "IntensityService", "check_signal"]


@dataclass
class _Build:
    """What one merge (one zone, in one thread) read and noticed, for SharedIntensity to keep."""

    inputs: dict[Place, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    failed: bool = False


class IntensityService:
    """One command's (or one request's) view of intensity. With `shared` (a long-running process: the
    daemon), merged series are reused across services per (zone, signal, hour) and zones are fetched
    on the shared thread pool; see intensity/shared.py for when a kept series is used again."""

    def __init__(
        self,
        sources: Sequence[IntensitySource],
        *,
        cache: IntensityCache | None = None,
        clock: Clock | None = None,
        model_history_days: int = 7,
        shared: SharedIntensity | None = None,
    ) -> None:
        self.sources = list(sources)
        self.shared = shared
        self._builds = threading.local()  # the _Build of the merge running in this thread, if kept
        self.cache = cache
        self.clock = clock or SystemClock()
        self.model_history_days = model_history_days
        self.static = StaticSource()
        self.notices: list[str] = []
        self._tripped: dict[str, str] = {}
        # answers already fetched by this service: regions sharing a grid zone share one request
        self._memo: dict[tuple[str, str, Signal, TimeSpan], IntensitySeries] = {}
        self._unknown_zone: dict[tuple[str, str], str] = {}

    # ---- public API ---------------------------------------------------------------------------
    def series(self, zone: GridZone, span: TimeSpan, signal: Signal = Signal.AVERAGE) -> IntensitySeries:
        """A complete series (no gaps) over `span`, or NoDataError when nothing can honestly fill it."""
        if self.shared is None:
            return self._merged(zone, span, signal)
        span_s = (span.start_s, span.end_s)
        token = self.shared.zone_token(zone)
        kept = self._kept(token, span, span_s, signal, hour_span_s(*span_s), to_epoch_s(self.clock.now()))
        return kept or self._merge_and_keep(zone, span, signal, self.shared)

    def _kept(
        self,
        token: int,
        span: TimeSpan,
        span_s: tuple[int, int],
        signal: Signal,
        wide_s: tuple[int, int],
        now_s: int,
    ) -> IntensitySeries | None:
        """The shared merged series of the zone with this token for the hours around `span`
        (`wide_s`), read out for `span` (`span_s` in epoch s: worked out once per plan, not per zone),
        with the notices its build made; None when there is none still valid."""
        if self.shared is None:
            return None
        entry = self.shared.lookup((token, signal, *wide_s), now_s)
        if entry is None:
            return None
        for notice in entry.notices:
            self._notice(notice)
        return entry.window(span, span_s)

    def _merge_and_keep(
        self, zone: GridZone, span: TimeSpan, signal: Signal, shared: SharedIntensity
    ) -> IntensitySeries:
        wide = hour_span(span)
        build = self._builds.build = _Build()
        try:
            merged = self._merged(zone, wide, signal)
        except NoDataError:
            # the widened hours asked for something the window itself does not need (a marginal
            # series that starts at the window): the window alone, as without sharing, not kept
            self._builds.build = None
            return self._merged(zone, span, signal)
        finally:
            self._builds.build = None
        shared.store(
            (shared.zone_token(zone), signal, wide.start_s, wide.end_s),
            merged,
            notices=tuple(build.notices),
            inputs=tuple(build.inputs.items()),
            failed=build.failed,
            now_s=to_epoch_s(self.clock.now()),
        )
        return merged if wide == span else merged.window(span)

    def _merged(self, zone: GridZone, span: TimeSpan, signal: Signal) -> IntensitySeries:
        now = self.clock.now()
        now_s = to_epoch_s(now)
        live = [s for s in self.sources if s.supports(zone, signal)]
        failures: list[str] = []
        fetched: list[IntensitySeries] = []
        for source in live:
            got = self._fetch(source, zone, span, signal, failures)
            if got is not None:
                fetched.append(got)

        merged = IntensitySeries.empty(zone.id, signal, span)
        for got in fetched:  # 1. measured history first, in priority order
            past = got.before(now_s)
            merged = merged.filled_from(past.masked(past.kind_mask(Kind.MEASURED)))
        for got in fetched:  # 2. then anything the sources have (forecasts), in priority order
            merged = merged.filled_from(got)

        why = "; ".join(failures) if failures else ("no live source for this zone" if not live else "")
        if not merged.is_complete:  # 3. modelled forecast for what lies ahead
            future_gaps = [g for g in merged.missing_spans() if g.end_s > now_s]
            if future_gaps and live:
                model = self._modelled(live, zone, span, signal, future_gaps[0].start_s, now_s, failures)
                if model is not None:
                    merged = merged.filled_from(model.from_time(min(future_gaps[0].start_s, now_s)))
        if not merged.is_complete:  # 4. static annual average, average signal only
            if self.static.supports(zone, signal):
                note = f"live data unavailable: {why}" if why else "no live data for this span"
                merged = merged.filled_from(self.static.fetch(zone, span, signal, now, note=note))
            else:
                gaps = ", ".join(
                    f"{isoformat_z(g.start)}..{isoformat_z(g.end)}" for g in merged.missing_spans()
                )
                hint = (
                    "static tables are averages; configure WattTime (CARBONSHIFT_WATTTIME_USERNAME/_PASSWORD) "
                    "or ask for --signal average"
                    if signal is Signal.MARGINAL
                    else "the zone has no static value: map it to a file or use a known zone"
                )
                raise NoDataError(
                    f"no {signal.value} intensity for zone {zone.id} over {gaps}"
                    + (f" ({why})" if why else "")
                    + f"; {hint}"
                )
        return merged

    def series_many(
        self, zones: Sequence[GridZone], span: TimeSpan, signal: Signal = Signal.AVERAGE, max_workers: int = 8
    ) -> dict[GridZone, IntensitySeries]:
        """Series for several zones at once, keyed by zone (live sources are I/O bound, so threads
        help). Zones are distinct when anything about them differs: two regions in one grid zone share
        live data but keep their own static fallback values."""
        done: dict[GridZone, IntensitySeries] = {}
        if self.shared is not None:  # kept merges first: no thread needed
            # each zone by its token (hashing a GridZone hashes its 11 fields), each time once
            shared, by_token = self.shared, dict[int, GridZone]()
            for z in zones:
                by_token.setdefault(shared.zone_token(z), z)
            unique = list(by_token.values())
            span_s = (span.start_s, span.end_s)
            wide_s, now_s = hour_span_s(*span_s), to_epoch_s(self.clock.now())
            todo = []
            for token, z in by_token.items():
                kept = self._kept(token, span, span_s, signal, wide_s, now_s)
                if kept is None:
                    todo.append(z)
                else:
                    done[z] = kept
            if not todo:  # a warm daemon's plan: every zone kept, in the order asked
                return done
        else:
            unique = todo = list(dict.fromkeys(zones))
        if len(todo) <= 1 or not any(s.supports(z, signal) for z in todo for s in self.sources):
            done.update({z: self.series(z, span, signal) for z in todo})
            return {z: done[z] for z in unique}
        by_place: dict[tuple[str, ...], GridZone] = {}
        for z in todo:  # fetch each place once first, so the threads don't race for the same data
            by_place.setdefault(tuple(place_key(s, z) for s in self.sources), z)
        firsts = list(by_place.values())
        if self.shared is not None:  # the daemon's pool: no threads started per plan
            done.update(self._map(self.shared.pool, firsts, span, signal))
        else:
            with ThreadPoolExecutor(max_workers=min(max_workers, len(firsts))) as pool:
                done.update(self._map(pool, firsts, span, signal))
        return {z: done[z] if z in done else self.series(z, span, signal) for z in unique}

    def series_list(
        self, zones: Sequence[GridZone], span: TimeSpan, signal: Signal = Signal.AVERAGE
    ) -> list[IntensitySeries]:
        """`series_many`'s series in the order of `zones`, one per zone given (repeats included): what a
        plan reads them by. A warm daemon's plan, every zone kept, is answered without hashing a zone
        (a GridZone hashes its 11 fields; a plan has 139)."""
        if self.shared is not None:
            shared = self.shared
            span_s = (span.start_s, span.end_s)
            wide_s, now_s = hour_span_s(*span_s), to_epoch_s(self.clock.now())
            tokens = [shared.zone_token(z) for z in zones]
            got: dict[int, IntensitySeries] = {}
            for token in tokens:  # in order, as series_many asks (the notices come in its order)
                if token not in got:
                    kept = self._kept(token, span, span_s, signal, wide_s, now_s)
                    if kept is None:
                        break  # series_many from the start: a notice already made is not made twice
                    got[token] = kept
            else:
                return [got[token] for token in tokens]
        by_zone = self.series_many(zones, span, signal)
        return [by_zone[z] for z in zones]

    def _map(
        self, pool: Executor, zones: list[GridZone], span: TimeSpan, signal: Signal
    ) -> dict[GridZone, IntensitySeries]:
        return dict(zip(zones, pool.map(lambda z: self.series(z, span, signal), zones), strict=True))

    # ---- fetching through the cache -----------------------------------------------------------
    def _fetch(
        self,
        source: IntensitySource,
        zone: GridZone,
        span: TimeSpan,
        signal: Signal,
        failures: list[str],
    ) -> IntensitySeries | None:
        now = self.clock.now()
        key = place_key(source, zone)
        place = (source.name, key)
        build: _Build | None = getattr(self._builds, "build", None)
        if build is not None and self.shared is not None and place not in build.inputs:
            build.inputs[place] = self.shared.generation(place)
        memo_key = (source.name, key, signal, span)
        if memo_key in self._memo:
            return self._memo[memo_key]
        cached = self.cache.lookup(source.name, key, zone.id, signal, span, now) if self.cache else None
        if cached is not None and cached.fresh:
            self._memo[memo_key] = cached.series
            return cached.series
        reason = self._skip_reason(source, zone, now)
        if reason is None:
            try:
                series = source.fetch(zone, span, signal, now)
            except SourceError as exc:
                reason = exc.reason
                self._remember_failure(source, zone, exc, now)
            else:
                if self.cache is not None and not isinstance(source, FileSource):
                    self.cache.store(source.name, key, series, span, now)
                self._memo[memo_key] = series
                if self.shared is not None:  # it answered again: merges that read it are out of date
                    generation = self.shared.answered(place)
                    if build is not None:
                        build.inputs[place] = generation
                return series
        if build is not None:
            build.failed = True
        failures.append(f"{source.name}: {reason}")
        self._notice(f"{source.name} unavailable for {zone.id}: {reason}")
        if cached is not None and not np.isnan(cached.series.values).all():
            age = now - cached.fetched_at
            self._notice(f"using {source.name} data cached {_age(age)} ago for {zone.id}")
            return _annotated(cached.series, f"stale cache ({_age(age)} old); live fetch failed: {reason}")
        return None

    def _skip_reason(self, source: IntensitySource, zone: GridZone, now: object) -> str | None:
        if source.name in self._tripped:
            return self._tripped[source.name]
        if (source.name, zone.id) in self._unknown_zone:
            return self._unknown_zone[(source.name, zone.id)]
        if self.cache is not None and not isinstance(source, FileSource):
            recent = self.cache.recent_failure(source.name, self.clock.now(), FAILURE_MEMORY_S)
            if recent is not None:
                self._tripped[source.name] = f"{recent} (recently; not retried)"
                return self._tripped[source.name]
        return None

    def _remember_failure(
        self, source: IntensitySource, zone: GridZone, exc: SourceError, now: object
    ) -> None:
        if exc.unknown_zone:
            self._unknown_zone[(source.name, zone.id)] = exc.reason
            return
        self._tripped[source.name] = exc.reason  # auth, outage, rate limit: stop asking during this command
        if self.cache is not None and (exc.transient or exc.auth):
            self.cache.record_failure(source.name, exc.reason, self.clock.now())

    def _notice(self, text: str) -> None:
        build: _Build | None = getattr(self._builds, "build", None)
        if build is not None and text not in build.notices:
            build.notices.append(text)
        if text not in self.notices:
            self.notices.append(text)
            log.info(text)  # callers show notices themselves (CLI warnings, plan notes, API fields)

    # ---- modelled forecast --------------------------------------------------------------------
    def _modelled(
        self,
        live: Sequence[IntensitySource],
        zone: GridZone,
        span: TimeSpan,
        signal: Signal,
        gap_start_s: int,
        now_s: int,
        failures: list[str],
    ) -> IntensitySeries | None:
        anchor = min(gap_start_s, now_s)
        history_s = self.model_history_days * DAY_S
        for source in live:
            hist_span = TimeSpan.from_epoch(anchor - history_s, anchor)
            if isinstance(source, FileSource):
                # a file that ends before the span: model from the file's own last days
                data_end = int(source.data_for(zone).edges_s[-1])
                if data_end < anchor:
                    hist_span = TimeSpan.from_epoch(data_end - history_s, data_end)
            history = self._fetch(source, zone, hist_span, signal, failures)
            if history is None:
                continue
            model = profile_forecast(history, span, self.clock.now(), based_on=source.name)
            if model.is_complete:
                return model
        return None


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _annotated(series: IntensitySeries, note: str) -> IntensitySeries:
    provs = tuple(
        Provenance(p.source, p.signal, p.kind, p.fetched_at, f"{p.note}; {note}" if p.note else note, p.basis)
        for p in series.provenances
    )
    return IntensitySeries(
        series.zone, series.signal, series.edges_s, series.values, series.prov_index, provs
    )


def check_signal(signal: str) -> Signal:
    try:
        return Signal(signal)
    except ValueError:
        raise UserInputError("--signal", f"{signal!r} is not a signal; allowed: average, marginal") from None
