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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np

from carbonshift.clock import Clock, SystemClock
from carbonshift.errors import NoDataError, UserInputError
from carbonshift.intensity.base import IntensitySource, SourceError, place_key
from carbonshift.intensity.cache import IntensityCache
from carbonshift.intensity.model import DAY_S, profile_forecast
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.sources.static import StaticSource
from carbonshift.intensity.types import GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import isoformat_z, to_epoch_s

log = logging.getLogger(__name__)

FAILURE_MEMORY_S = 120  # a source that just failed is not asked again by the next commands for this long


class IntensityService:
    def __init__(
        self,
        sources: Sequence[IntensitySource],
        *,
        cache: IntensityCache | None = None,
        clock: Clock | None = None,
        model_history_days: int = 7,
    ) -> None:
        self.sources = list(sources)
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
        unique = list(dict.fromkeys(zones))
        if len(unique) <= 1 or not any(s.supports(z, signal) for z in unique for s in self.sources):
            return {z: self.series(z, span, signal) for z in unique}
        by_place: dict[tuple[str, ...], GridZone] = {}
        for z in unique:  # fetch each place once first, so the threads don't race for the same data
            by_place.setdefault(tuple(place_key(s, z) for s in self.sources), z)
        firsts = list(by_place.values())
        with ThreadPoolExecutor(max_workers=min(max_workers, len(firsts))) as pool:
            done = dict(zip(firsts, pool.map(lambda z: self.series(z, span, signal), firsts), strict=True))
        return {z: done[z] if z in done else self.series(z, span, signal) for z in unique}

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
                return series
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
