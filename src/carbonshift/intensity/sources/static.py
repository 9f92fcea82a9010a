"""The always-on last resort: a zone's static annual average from the bundled tables.

It is the one source that never fails, so it never goes in the priority list: the merging service
uses it for whatever no live source, cache or model covered, and flags every such value as static.
"""

from __future__ import annotations

from datetime import datetime

from carbonshift.intensity.types import (
    GridZone,
    IntensitySeries,
    Kind,
    Provenance,
    Signal,
    TimeSpan,
    basis_of,
)


class StaticSource:
    name = "static"

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        # annual tables are averages of the grid mix; passing them off as marginal would mislead
        return signal is Signal.AVERAGE and zone.static_g_per_kwh is not None

    def fetch(
        self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime, note: str = ""
    ) -> IntensitySeries:
        if not self.supports(zone, signal) or zone.static_g_per_kwh is None:
            return IntensitySeries.empty(zone.id, signal, span)
        table = zone.static_source or "bundled table"
        year = f" {zone.static_year}" if zone.static_year else ""
        provenance = Provenance(
            source=f"static:{table}",
            signal=signal,
            kind=Kind.STATIC,
            fetched_at=now,
            note=(f"annual average{year}" + (f"; {note}" if note else "")),
            basis=basis_of(zone.static_basis),
        )
        return IntensitySeries.constant(zone.id, signal, span, zone.static_g_per_kwh, provenance)
