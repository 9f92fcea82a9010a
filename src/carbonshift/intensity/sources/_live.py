"""What the live API sources share: turning (start, end, value) points into a series over exactly the
asked span with provenance per value, rejecting absurd values, and keeping partial answers.

Why partial answers: one fetch asks an API several things (recent history, older history in chunks,
the forecast). A free Electricity Maps plan has history but no forecast; a source may answer the
history and time out on the forecast. Throwing the history away would make the merging service fall
back to a static annual average for time that was in fact measured, so a fetch keeps what it got,
leaves the rest NaN (the merging service fills it, visibly) and says in the notes what was missing
and why. Only when nothing at all came back does it raise, with the most telling reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.types import Basis, GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import from_epoch_s, parse_datetime, to_epoch_s

T = TypeVar("T")

# Where an interval is covered twice, the more trustworthy value wins: a measurement over a forecast.
_TIER = {Kind.MEASURED: 0, Kind.FORECAST: 1, Kind.MODELLED: 2, Kind.STATIC: 3}


class BadBody(Exception):
    """A body that parsed as JSON but is not shaped as the API documents; becomes a SourceError."""


@dataclass
class _Point:
    start_s: int
    end_s: int
    value: float
    kind: Kind
    note: str
    basis: Basis | None  # None: the fetch's (self.basis when built)


@dataclass
class SeriesAssembler:
    """Collects points from one or more API answers and builds the series a source returns."""

    source: str
    zone_id: str
    signal: Signal
    now: datetime
    max_g_per_kwh: float
    basis: Basis  # what the source's values count, as it documents it (a point may say otherwise;
    # a source may change this while reading when its answers state their account's default)
    _points: list[_Point] = field(default_factory=list)
    _dropped: list[float] = field(default_factory=list)
    _notes: list[str] = field(default_factory=list)

    def add(
        self, start_s: int, end_s: int, value: object, kind: Kind, note: str = "", basis: Basis | None = None
    ) -> None:
        """One interval in g/kWh. None means the API has no value (a gap); a value that is not a
        number means the body is broken; a negative or absurd value is dropped and counted."""
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadBody(f"intensity value {str(value)[:20]!r} is not a number")
        g = float(value)
        if end_s <= start_s:
            raise BadBody("an interval ends before it starts")
        if kind is Kind.MEASURED and start_s >= to_epoch_s(self.now):
            return  # a "measurement" of the future is a clock problem upstream; never pass it on
        if not math.isfinite(g) or g < 0 or g > self.max_g_per_kwh:
            self._dropped.append(g)
            return
        self._points.append(_Point(start_s, end_s, g, kind, note, basis))

    def note(self, text: str) -> None:
        """A remark that applies to every value of this fetch (what was missing, and why)."""
        if text and text not in self._notes:
            self._notes.append(text)

    @property
    def count(self) -> int:
        return len(self._points)

    def build(self, span: TimeSpan) -> IntensitySeries:
        notes = list(self._notes)
        if self._dropped:
            example = self._dropped[0]
            n = len(self._dropped)
            if not self._points:
                raise SourceError(
                    self.source,
                    f"all {n} value{'s' if n > 1 else ''} out of range (e.g. {example:g} g/kWh; "
                    f"allowed 0..{self.max_g_per_kwh:g})",
                )
            notes.append(
                f"{n} out-of-range value{'s' if n > 1 else ''} dropped (e.g. {example:g} g/kWh; "
                f"allowed 0..{self.max_g_per_kwh:g})"
            )
        result = IntensitySeries.empty(self.zone_id, self.signal, span)
        for tier in sorted({_TIER[p.kind] for p in self._points}):
            points = [p for p in self._points if _TIER[p.kind] == tier]
            provs = [
                Provenance(
                    self.source,
                    self.signal,
                    p.kind,
                    self.now,
                    "; ".join(x for x in (p.note, *notes) if x),
                    p.basis or self.basis,
                )
                for p in points
            ]
            layer = IntensitySeries.from_intervals(
                self.zone_id,
                self.signal,
                [p.start_s for p in points],
                [p.end_s for p in points],
                [p.value for p in points],
                provs,
                span=span,
            )
            result = result.filled_from(layer)
        return result


class Parts:
    """Runs the parts of one fetch, keeping what succeeded and the reasons for what failed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[tuple[str, SourceError]] = []
        self.succeeded = 0

    def run(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            result = call()
        except SourceError as exc:
            self.errors.append((what, exc))
            return None
        except BadBody as exc:
            self.errors.append((what, SourceError(self.source, f"unexpected {what} answer: {exc}")))
            return None
        self.succeeded += 1
        return result

    def finish(self, assembler: SeriesAssembler) -> None:
        """Raise when every part failed; otherwise note each failed part on the values kept."""
        if not self.errors:
            return
        if self.succeeded == 0:
            raise most_telling(e for _, e in self.errors)
        for what, exc in self.errors:
            assembler.note(f"{what} unavailable: {exc.reason}")


def most_telling(errors: Any) -> SourceError:
    """Of several failures, the one a user should hear about: a rejected credential first (they can
    fix it), then an unknown zone, then whatever came first."""
    found = list(errors)
    for pick in (lambda e: e.auth, lambda e: e.unknown_zone, lambda e: True):
        for e in found:
            if pick(e):
                return e  # type: ignore[no-any-return]
    raise AssertionError("no errors")


def for_zone(exc: SourceError, zone: GridZone, api: str) -> SourceError:
    """Name the zone in an unknown-zone error, since the HTTP layer cannot know it."""
    if not exc.unknown_zone:
        return exc
    return SourceError(exc.source, f"zone {zone.id} not known to {api}: {exc.reason}", unknown_zone=True)


def parse_time_s(value: object) -> int:
    if not isinstance(value, str):
        raise BadBody(f"time {str(value)[:30]!r} is not a string")
    try:
        return to_epoch_s(parse_datetime(value))
    except ValueError:
        raise BadBody(f"time {value[:40]!r} is not ISO 8601 with a timezone") from None


def iso_z(epoch_s: int, *, seconds: bool = True) -> str:
    fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%MZ"
    return from_epoch_s(epoch_s).strftime(fmt)


def chunks(start_s: int, end_s: int, max_len_s: int) -> list[tuple[int, int]]:
    """[start, end) cut into consecutive pieces no longer than an API accepts per request."""
    out: list[tuple[int, int]] = []
    t = start_s
    while t < end_s:
        out.append((t, min(end_s, t + max_len_s)))
        t += max_len_s
    return out


def as_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadBody(f"{what} is not an object")
    return value


def as_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadBody(f"{what} is not a list")
    return value
