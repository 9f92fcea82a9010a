"""A scripted in-process source for merging tests: it implements the public IntensitySource protocol
(no carbonshift code is patched), and counts its calls so caching and failure memory can be seen.
HTTP behaviour of the real sources is tested against local HTTP fakes elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.types import GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import to_epoch_s


class ScriptedSource:
    """Hourly values from `value_at(t_s)` between `start_s` and `end_s`; measured before now, forecast after."""

    def __init__(
        self,
        name: str,
        value_at: Callable[[int], float],
        *,
        start_s: int | None = None,
        end_s: int | None = None,
        signal: Signal = Signal.AVERAGE,
        step_s: int = 3600,
        error: SourceError | None = None,
        zones: set[str] | None = None,
    ) -> None:
        self.name = name
        self.value_at = value_at
        self.start_s = start_s
        self.end_s = end_s
        self.signal = signal
        self.step_s = step_s
        self.error = error
        self.zones = zones
        self.calls: list[TimeSpan] = []

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        return signal is self.signal and (self.zones is None or zone.id in self.zones)

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        self.calls.append(span)
        if self.error is not None:
            raise self.error
        lo = max(span.start_s, self.start_s if self.start_s is not None else span.start_s)
        hi = min(span.end_s, self.end_s if self.end_s is not None else span.end_s)
        if hi <= lo:
            return IntensitySeries.empty(zone.id, signal, span)
        starts = np.arange((lo // self.step_s) * self.step_s, hi, self.step_s)
        ends = starts + self.step_s
        now_s = to_epoch_s(now)
        provs = [
            Provenance(self.name, signal, Kind.MEASURED if s < now_s else Kind.FORECAST, now) for s in starts
        ]
        vals = [self.value_at(int(s)) for s in starts]
        clip = TimeSpan.from_epoch(lo, hi)
        return IntensitySeries.from_intervals(zone.id, signal, starts, ends, vals, provs, span=clip).clip(
            span
        )
