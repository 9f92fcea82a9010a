"""A modelled forecast for when a zone has history but no forecast (a free Electricity Maps plan, a
file that ends before the span): the mean of each time-of-day slot over the last days of history.

Daily profiles capture most of the hour-to-hour swing that shifting exploits (solar noon dips,
evening peaks) and need nothing but history, so they are the honest floor under a real forecast.
Values it makes are always flagged `modelled`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from carbonshift.intensity.types import Basis, IntensitySeries, Kind, Provenance, TimeSpan

DAY_S = 86_400


def daily_profile(history: IntensitySeries, slot_s: int = 1800) -> np.ndarray:
    """Time-weighted mean intensity for each slot of the UTC day (NaN where history never covers it)."""
    if DAY_S % slot_s:
        raise ValueError("slot length must divide a day")
    n_slots = DAY_S // slot_s
    ok = ~np.isnan(history.values)
    starts = history.edges_s[:-1][ok]
    ends = history.edges_s[1:][ok]
    vals = history.values[ok]
    sums = np.zeros(n_slots)
    weights = np.zeros(n_slots)
    if len(vals) == 0:
        return np.full(n_slots, np.nan)
    # split every interval at slot boundaries: the boundaries inside [start, end) for each interval
    first_slot = starts // slot_s
    last_slot = (ends - 1) // slot_s
    counts = (last_slot - first_slot + 1).astype(np.int64)
    rep = np.repeat(np.arange(len(vals)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    slot_abs = first_slot[rep] + offsets
    seg_lo = np.maximum(slot_abs * slot_s, starts[rep])
    seg_hi = np.minimum((slot_abs + 1) * slot_s, ends[rep])
    w = (seg_hi - seg_lo).astype(np.float64)
    idx = (slot_abs % n_slots).astype(np.int64)
    np.add.at(sums, idx, w * vals[rep])
    np.add.at(weights, idx, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, sums / np.where(weights > 0, weights, 1), np.nan)


def profile_forecast(
    history: IntensitySeries,
    span: TimeSpan,
    now: datetime,
    *,
    based_on: str,
    slot_s: int = 1800,
    min_history_s: int = DAY_S,
) -> IntensitySeries:
    """A series over `span` repeating the daily profile of `history` (empty if history is too short)."""
    covered = float(np.sum(np.diff(history.edges_s)[~np.isnan(history.values)]))
    if covered < min_history_s:
        return IntensitySeries.empty(history.zone, history.signal, span)
    profile = daily_profile(history, slot_s)
    fallback = float(np.nanmean(profile))
    profile = np.where(np.isnan(profile), fallback, profile)
    lo = (span.start_s // slot_s) * slot_s
    edges = np.arange(lo, span.end_s + slot_s, slot_s, dtype=np.int64)
    edges = np.clip(edges, span.start_s, span.end_s)
    edges = np.unique(edges)
    slots = ((edges[:-1] % DAY_S) // slot_s).astype(np.int64)
    days = covered / DAY_S
    last = datetime.fromtimestamp(int(history.edges_s[-1]), tz=now.tzinfo)
    provenance = Provenance(
        source=f"model:daily-profile({based_on})",
        signal=history.signal,
        kind=Kind.MODELLED,
        fetched_at=now,
        note=f"mean by {slot_s // 60}-min slot of day over {days:.1f} days of {based_on} history to "
        f"{last:%Y-%m-%d %H:%M}Z",
        basis=_one_basis(history),
    )
    return IntensitySeries(
        history.zone,
        history.signal,
        edges,
        profile[slots].astype(np.float64),
        np.zeros(len(slots), dtype=np.int32),
        (provenance,),
    )._compact()


def _one_basis(history: IntensitySeries) -> Basis | None:
    """A profile of one basis keeps it; one built from values of two bases states none."""
    bases = {p.basis for p in history.provenances}
    return bases.pop() if len(bases) == 1 else None
