"""The one series type every intensity source, the cache, the merging service and the planner share.

A series is piecewise constant: `values[i]` is the mean intensity over [edges_s[i], edges_s[i+1]).
Edges are integer epoch seconds (UTC) so numpy can integrate exactly; NaN marks time no source
covered, which the merging service fills (visibly) before a planner sees it. Steps need not be
regular: a 5-minute WattTime forecast can follow an hourly Electricity Maps history.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonshift.timeutil import from_epoch_s, isoformat_z, to_epoch_s

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Signal(StrEnum):
    """Average (what the grid's mix emits per kWh) and marginal (what one more kWh causes) are
    different quantities; they are never compared with each other."""

    AVERAGE = "average"
    MARGINAL = "marginal"


class Basis(StrEnum):
    """What an intensity counts. Direct: combustion at the plant (operational). Lifecycle: that plus
    fuel supply, construction and decommissioning, so a hydro or nuclear grid reads tens of grams
    instead of near zero. The gap depends on the grid's mix, so no single factor converts one into the
    other: values of different bases are shown with theirs and a plan that mixes them says so."""

    DIRECT = "direct"
    LIFECYCLE = "lifecycle"


def basis_of(text: str | None) -> Basis | None:
    """A stored basis string ('' or None when a table or source does not state it) as a Basis."""
    return Basis(text) if text else None


class Kind(StrEnum):
    MEASURED = "measured"
    FORECAST = "forecast"
    MODELLED = "modelled"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a value came from, so every number shown can say so."""

    source: str
    signal: Signal
    kind: Kind
    fetched_at: datetime
    note: str = ""
    basis: Basis | None = None  # None only where a source states none (a test's hand-made series)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "signal": self.signal.value,
            "kind": self.kind.value,
            "basis": self.basis.value if self.basis is not None else None,
            "fetched_at": isoformat_z(self.fetched_at),
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """A half-open UTC time range [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeSpan needs timezone-aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"TimeSpan end {self.end} is not after start {self.start}")

    @property
    def start_s(self) -> int:
        return to_epoch_s(self.start)

    @property
    def end_s(self) -> int:
        return to_epoch_s(self.end)

    @classmethod
    def from_epoch(cls, start_s: int, end_s: int) -> TimeSpan:
        return cls(from_epoch_s(start_s), from_epoch_s(end_s))


@dataclass(frozen=True, slots=True)
class GridZone:
    """A grid area, as the sources know it: a canonical zone id (Electricity Maps style, or a name of
    the user's own), plus what other sources need to find it and the static annual value to fall back on."""

    id: str
    country: str | None = None
    watttime_region: str | None = None
    lat: float | None = None
    lon: float | None = None
    static_g_per_kwh: float | None = None
    static_source: str | None = None
    static_year: int | None = None
    static_basis: str | None = None  # "direct" | "lifecycle"
    name: str | None = None
    cloud_region: str | None = None  # the provider region this zone was resolved from (CASDK locations)


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    start: datetime
    end: datetime
    g_per_kwh: float
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": isoformat_z(self.start),
            "end": isoformat_z(self.end),
            "g_per_kwh": round(self.g_per_kwh, 3),
            **self.provenance.to_dict(),
        }


@dataclass(frozen=True)
class IntensitySeries:
    zone: str
    signal: Signal
    edges_s: IntArray
    values: FloatArray
    prov_index: npt.NDArray[np.int32]
    provenances: tuple[Provenance, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.values)
        if len(self.edges_s) != n + 1 or len(self.prov_index) != n:
            raise ValueError("series needs len(edges) == len(values) + 1 == len(prov_index) + 1")
        if n and np.any(np.diff(self.edges_s) <= 0):
            raise ValueError("series edges must be strictly increasing")
        for p in self.provenances:
            if p.signal is not self.signal:
                raise ValueError(f"a {self.signal} series cannot hold {p.signal} values from {p.source}")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, zone: str, signal: Signal, span: TimeSpan) -> IntensitySeries:
        return cls(
            zone,
            signal,
            np.array([span.start_s, span.end_s], dtype=np.int64),
            np.array([np.nan]),
            np.array([-1], dtype=np.int32),
            (),
        )

    @classmethod
    def constant(
        cls, zone: str, signal: Signal, span: TimeSpan, g_per_kwh: float, provenance: Provenance
    ) -> IntensitySeries:
        return cls(
            zone,
            signal,
            np.array([span.start_s, span.end_s], dtype=np.int64),
            np.array([float(g_per_kwh)]),
            np.array([0], dtype=np.int32),
            (provenance,),
        )

    @classmethod
    def from_intervals(
        cls,
        zone: str,
        signal: Signal,
        starts_s: Sequence[int] | IntArray,
        ends_s: Sequence[int] | IntArray,
        values: Sequence[float] | FloatArray,
        provenance: Provenance | Sequence[Provenance],
        span: TimeSpan | None = None,
    ) -> IntensitySeries:
        """Build a series from (start, end, value) intervals as an API returns them.

        Intervals are sorted; an overlap keeps the earlier interval (its tail wins over the next one's
        head); gaps become NaN; with `span`, the result covers exactly that span (NaN where no data).
        `provenance` is one for all points or one per point.
        """
        starts = np.asarray(starts_s, dtype=np.int64)
        ends = np.asarray(ends_s, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        if not (len(starts) == len(ends) == len(vals)):
            raise ValueError("starts, ends and values differ in length")
        if isinstance(provenance, Provenance):
            provs: tuple[Provenance, ...] = (provenance,)
            pidx = np.zeros(len(vals), dtype=np.int32)
        else:
            provs, inverse = _intern(provenance)
            if len(inverse) != len(vals):
                raise ValueError("one provenance per point, or one for all")
            pidx = inverse
        order = np.argsort(starts, kind="stable")
        starts, ends, vals, pidx = starts[order], ends[order], vals[order], pidx[order]
        if span is not None:
            starts = np.maximum(starts, span.start_s)
            ends = np.minimum(ends, span.end_s)
        keep = ends > starts
        starts, ends, vals, pidx = starts[keep], ends[keep], vals[keep], pidx[keep]
        # resolve overlaps: each interval starts no earlier than the previous one ends
        if len(starts) > 1:
            running_end = np.maximum.accumulate(ends)
            starts[1:] = np.maximum(starts[1:], running_end[:-1])
            keep = ends > starts
            starts, ends, vals, pidx = starts[keep], ends[keep], vals[keep], pidx[keep]
        lo = span.start_s if span is not None else (int(starts[0]) if len(starts) else None)
        hi = span.end_s if span is not None else (int(ends[-1]) if len(ends) else None)
        if lo is None or hi is None:
            raise ValueError("an empty series needs a span")
        if len(starts) == 0:
            return cls.empty(zone, signal, TimeSpan.from_epoch(lo, hi))
        # interleave NaN gaps: edges are the union of starts and ends within [lo, hi]
        edges = np.unique(np.concatenate([[lo, hi], starts, ends]))
        left = edges[:-1]
        idx = np.searchsorted(starts, left, side="right") - 1
        inside = (idx >= 0) & (left < ends[np.clip(idx, 0, None)])
        out_vals = np.where(inside, vals[np.clip(idx, 0, None)], np.nan)
        out_prov = np.where(inside, pidx[np.clip(idx, 0, None)], -1).astype(np.int32)
        return cls(zone, signal, edges, out_vals, out_prov, provs)._compact()

    # ---- queries ------------------------------------------------------------------------------
    @property
    def span(self) -> TimeSpan:
        return TimeSpan.from_epoch(int(self.edges_s[0]), int(self.edges_s[-1]))

    def __len__(self) -> int:
        return len(self.values)

    @property
    def is_complete(self) -> bool:
        """True when every second of the span has a value."""
        return not bool(np.isnan(self.values).any())

    def missing_spans(self) -> list[TimeSpan]:
        """The stretches no source covered, merged, in order."""
        gaps: list[TimeSpan] = []
        missing = np.isnan(self.values)
        i, n = 0, len(missing)
        while i < n:
            if missing[i]:
                j = i
                while j + 1 < n and missing[j + 1]:
                    j += 1
                gaps.append(TimeSpan.from_epoch(int(self.edges_s[i]), int(self.edges_s[j + 1])))
                i = j + 1
            else:
                i += 1
        return gaps

    def kinds(self) -> FloatArray:
        """Per interval, the index into Kind order (NaN where missing); used for masks."""
        order = list(Kind)
        lookup = np.array([order.index(p.kind) for p in self.provenances] + [np.nan])
        return np.asarray(lookup[self.prov_index], dtype=np.float64)

    def kind_mask(self, *kinds: Kind) -> npt.NDArray[np.bool_]:
        wanted = np.array([p.kind in kinds for p in self.provenances] + [False])
        return np.asarray(wanted[self.prov_index], dtype=np.bool_)

    def mean_g_per_kwh(self, start_s: int, end_s: int) -> float:
        """Exact time-weighted mean over [start_s, end_s); partial intervals weigh by their overlap."""
        if end_s <= start_s:
            raise ValueError("empty range")
        lo = np.clip(self.edges_s[:-1], start_s, end_s)
        hi = np.clip(self.edges_s[1:], start_s, end_s)
        w = (hi - lo).astype(np.float64)
        if w.sum() < end_s - start_s:
            raise ValueError("range reaches outside the series")
        return float(np.dot(w, self.values) / w.sum())

    def points(self) -> Iterator[IntensityPoint]:
        for i in range(len(self.values)):
            if np.isnan(self.values[i]):
                continue
            yield IntensityPoint(
                from_epoch_s(int(self.edges_s[i])),
                from_epoch_s(int(self.edges_s[i + 1])),
                float(self.values[i]),
                self.provenances[int(self.prov_index[i])],
            )

    def used_provenances(self) -> tuple[Provenance, ...]:
        used = sorted({int(i) for i in self.prov_index if i >= 0})
        return tuple(self.provenances[i] for i in used)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "signal": self.signal.value,
            "start": isoformat_z(self.span.start),
            "end": isoformat_z(self.span.end),
            "points": [p.to_dict() for p in self.points()],
            "missing": [
                {"start": isoformat_z(g.start), "end": isoformat_z(g.end)} for g in self.missing_spans()
            ],
        }

    # ---- transformations ----------------------------------------------------------------------
    def masked(self, keep: npt.NDArray[np.bool_]) -> IntensitySeries:
        """The same series with every interval where `keep` is False turned into a gap."""
        vals = np.where(keep, self.values, np.nan)
        prov = np.where(keep, self.prov_index, -1).astype(np.int32)
        return IntensitySeries(self.zone, self.signal, self.edges_s, vals, prov, self.provenances)._compact()

    def before(self, t_s: int) -> IntensitySeries:
        """Only what lies before t_s (intervals straddling t_s are split)."""
        return self._split_at(t_s)._mask_time(lambda left: left < t_s)

    def from_time(self, t_s: int) -> IntensitySeries:
        return self._split_at(t_s)._mask_time(lambda left: left >= t_s)

    def clip(self, span: TimeSpan) -> IntensitySeries:
        """The series restricted (or extended with gaps) to exactly `span`."""
        pts = ~np.isnan(self.values)
        return (
            IntensitySeries.from_intervals(
                self.zone,
                self.signal,
                self.edges_s[:-1][pts],
                self.edges_s[1:][pts],
                self.values[pts],
                [self.provenances[i] for i in self.prov_index[pts]] if pts.any() else self.provenances[:1],
                span=span,
            )
            if pts.any()
            else IntensitySeries.empty(self.zone, self.signal, span)
        )

    def window(self, span: TimeSpan) -> IntensitySeries:
        """The part of this series inside `span`, which it must cover: the same intervals, the first
        and last cut at the span's ends, and only the provenances still used. What `clip` gives for a
        span inside the series, without rebuilding it interval by interval: the daemon reads each plan's
        window out of the series it merged for the hour (139 of them per plan)."""
        lo, hi = span.start_s, span.end_s
        if lo < self.edges_s[0] or hi > self.edges_s[-1]:
            raise ValueError("window reaches outside the series")
        i0 = int(np.searchsorted(self.edges_s, lo, side="right")) - 1
        i1 = int(np.searchsorted(self.edges_s, hi, side="left"))
        edges = self.edges_s[i0 : i1 + 1].copy()
        edges[0], edges[-1] = lo, hi
        prov = self.prov_index[i0:i1].copy()
        out = IntensitySeries(
            self.zone, self.signal, edges, self.values[i0:i1].copy(), prov, self.provenances
        )
        if len(self.provenances) == 1 and bool((prov == 0).all()):
            return out  # the usual case (one static or one source's value): nothing to drop
        return out._compact()

    def filled_from(self, other: IntensitySeries) -> IntensitySeries:
        """Fill this series' gaps with `other`'s values; what this series has always wins."""
        if other.signal is not self.signal:
            raise ValueError(f"cannot fill a {self.signal} series with {other.signal} values")
        lo, hi = int(self.edges_s[0]), int(self.edges_s[-1])
        inner = other.edges_s[(other.edges_s > lo) & (other.edges_s < hi)]
        edges = np.union1d(self.edges_s, inner)
        left = edges[:-1]
        bi = np.searchsorted(self.edges_s, left, side="right") - 1
        b_vals, b_prov = self.values[bi], self.prov_index[bi]
        oi = np.searchsorted(other.edges_s, left, side="right") - 1
        valid = (oi >= 0) & (oi < len(other.values))
        oi_c = np.clip(oi, 0, len(other.values) - 1)
        o_vals = np.where(valid, other.values[oi_c], np.nan)
        o_prov = np.where(valid, other.prov_index[oi_c], -1)
        take = np.isnan(b_vals) & ~np.isnan(o_vals)
        offset = len(self.provenances)
        vals = np.where(take, o_vals, b_vals)
        prov = np.where(take, np.where(o_prov >= 0, o_prov + offset, -1), b_prov).astype(np.int32)
        return IntensitySeries(
            self.zone, self.signal, edges, vals, prov, self.provenances + other.provenances
        )._compact()

    # ---- internals ----------------------------------------------------------------------------
    def _split_at(self, t_s: int) -> IntensitySeries:
        if t_s <= self.edges_s[0] or t_s >= self.edges_s[-1] or t_s in self.edges_s:
            return self
        i = int(np.searchsorted(self.edges_s, t_s)) - 1
        edges = np.insert(self.edges_s, i + 1, t_s)
        vals = np.insert(self.values, i + 1, self.values[i])
        prov = np.insert(self.prov_index, i + 1, self.prov_index[i])
        return IntensitySeries(self.zone, self.signal, edges, vals, prov, self.provenances)

    def _mask_time(self, pred: Any) -> IntensitySeries:
        return self.masked(np.asarray(pred(self.edges_s[:-1]), dtype=np.bool_))

    def _compact(self) -> IntensitySeries:
        """Merge neighbours with the same value and provenance (and neighbouring gaps), and drop
        provenances no point uses, so a series stays small however often it is merged."""
        vals, prov, edges = self.values, self.prov_index, self.edges_s
        n = len(vals)
        if n == 0:
            return self
        same_val = (vals[1:] == vals[:-1]) | (np.isnan(vals[1:]) & np.isnan(vals[:-1]))
        same = same_val & (prov[1:] == prov[:-1])
        keep_edge = np.concatenate([[True], ~same, [True]])
        new_edges = edges[keep_edge]
        starts = np.concatenate([[True], ~same])
        new_vals = vals[starts]
        new_prov = prov[starts]
        used = np.unique(new_prov[new_prov >= 0])
        remap = np.full(len(self.provenances) + 1, -1, dtype=np.int32)
        provs: list[Provenance] = []
        index_of: dict[Provenance, int] = {}
        for old in used:
            p = self.provenances[int(old)]
            if p not in index_of:
                index_of[p] = len(provs)
                provs.append(p)
            remap[int(old)] = index_of[p]
        mapped = np.where(new_prov >= 0, remap[new_prov], -1).astype(np.int32)
        if len(provs) < len(used):  # duplicates merged: neighbours may now be equal, compact again
            return IntensitySeries(
                self.zone, self.signal, new_edges, new_vals, mapped, tuple(provs)
            )._compact()
        return IntensitySeries(self.zone, self.signal, new_edges, new_vals, mapped, tuple(provs))


def _intern(provs: Sequence[Provenance]) -> tuple[tuple[Provenance, ...], npt.NDArray[np.int32]]:
    unique: dict[Provenance, int] = {}
    idx = np.empty(len(provs), dtype=np.int32)
    for i, p in enumerate(provs):
        idx[i] = unique.setdefault(p, len(unique))
    return tuple(unique), idx
