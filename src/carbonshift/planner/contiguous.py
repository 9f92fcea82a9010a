"""The exact best start time of a contiguous job on a piecewise-constant intensity series.

With C(t) the integral of intensity from the series' first edge to t, the emissions of a run starting
at t are F(t) = C(t + d) - C(t). C is piecewise linear with breakpoints at the edges, so F is
piecewise linear with breakpoints where t or t + d meets an edge. A piecewise-linear function on an
interval takes its minimum at an end or at a breakpoint, so evaluating F at

    earliest, latest start, every edge e in [earliest, latest], every e - d in [earliest, latest]

finds the exact minimum over all real start times, with no grid. Each evaluation is two linear
interpolations in C (one gather, one multiply-add), vectorised over candidates and over every series
that shares the same edges. Edges, earliest, latest and d are integer seconds, so every candidate is a
whole second too.

Ties go to the earliest start: every candidate within a tolerance of the minimum counts as a minimum,
and candidates are sorted by time. The tolerance is 1e-9 of |C| over the whole window (plus |min F|),
far above float rounding in C (about n * 2e-16 relative) and far below any difference worth moving a
job for. A flat series therefore starts at earliest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

TIE_RTOL = 1e-9
_NO_START = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class BestStarts:
    """Per series: the best start, the mean intensity of that run, and the mean of a run at earliest
    (the usual baseline, free here because earliest is always a candidate)."""

    start_s: IntArray
    mean_g_per_kwh: FloatArray
    earliest_mean_g_per_kwh: FloatArray


def best_start(
    edges_s: npt.ArrayLike, values: npt.ArrayLike, earliest_s: int, latest_start_s: int, duration_s: int
) -> tuple[int, float]:
    """(start_s, mean g/kWh) of the run of `duration_s` with the least emissions starting in
    [earliest_s, latest_start_s]; `values[i]` holds over [edges_s[i], edges_s[i+1])."""
    vals = np.asarray(values, dtype=np.float64)
    res = best_starts(edges_s, vals.reshape(1, -1), earliest_s, latest_start_s, duration_s)
    return int(res.start_s[0]), float(res.mean_g_per_kwh[0])


def best_starts(
    edges_s: npt.ArrayLike,
    values: npt.ArrayLike,
    earliest_s: int,
    latest_start_s: int,
    duration_s: int,
) -> BestStarts:
    """`best_start` for many series on the same edges at once: `values` has one row per series."""
    edges = np.asarray(edges_s, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 2 or edges.ndim != 1 or edges.shape[0] != vals.shape[1] + 1:
        raise ValueError("values must be (series, n) with n + 1 edges")
    lo, hi, d = int(earliest_s), int(latest_start_s), int(duration_s)
    if d <= 0:
        raise ValueError("duration must be positive")
    if hi < lo:
        raise ValueError(f"latest start {hi} is before earliest {lo}")
    e, v = window_slice(edges, vals, lo, hi + d)
    return best_starts_in_window(e, v, lo, hi, d)


def best_starts_in_window(e: IntArray, v: FloatArray, lo: int, hi: int, d: int) -> BestStarts:
    """`best_starts` on edges and values already cut and checked by `window_slice` (callers that
    slice once for several purposes skip a second pass over the data)."""
    steps = np.diff(e)
    if len(steps) > 1 and bool((steps == steps[0]).all()):
        return _best_regular(e, v, lo, hi, d)
    return _best_general(e, v, lo, hi, d)


def _best_general(e: IntArray, v: FloatArray, lo: int, hi: int, d: int) -> BestStarts:
    cum = cumulative(e, v)
    cands = candidate_starts(e, lo, hi, d)
    f = integral_at(e, v, cum, cands + d) - integral_at(e, v, cum, cands)
    f_min = f.min(axis=1)
    tol = TIE_RTOL * (np.abs(cum[:, -1]) + np.abs(f_min)) + 1e-300
    is_min = f <= (f_min + tol)[:, None]
    pick = np.argmax(is_min, axis=1)  # first True: candidates are sorted, so the earliest minimum
    rows = np.arange(v.shape[0])
    return BestStarts(
        start_s=cands[pick],
        mean_g_per_kwh=f[rows, pick] / d,
        earliest_mean_g_per_kwh=f[:, 0] / d,  # cands[0] == earliest
    )


def _best_regular(e: IntArray, v: FloatArray, lo: int, hi: int, d: int) -> BestStarts:
    """The same candidates on a regular grid (the usual case), read with slices instead of gathers.

    With step w and d = q*w + r: a run starting on edge k ends at edge k+q plus r, and a run ending on
    edge j starts at edge j-q-1 plus (w - r), so both candidate families are shifted slices of C and
    of the values. C is kept in units of one step (cumsum of values) and scaled once at the end.
    """
    e0, w = int(e[0]), int(e[1] - e[0])
    n = v.shape[1]
    q, r = divmod(d, w)
    cum = np.zeros((v.shape[0], n + 1))
    np.cumsum(v, axis=1, out=cum[:, 1:])  # C / w at the edges

    # runs starting on an edge k in [lo, hi]
    ka, kb = -(-(lo - e0) // w), (hi - e0) // w
    f1 = cum[:, ka + q : kb + q + 1] - cum[:, ka : kb + 1]
    if r:  # e_k + d < e_n, so k + q < n
        f1 = f1 + v[:, ka + q : kb + q + 1] * (r / w)
    t1 = e0 + w * np.arange(ka, kb + 1, dtype=np.int64)
    families = [(t1, f1)]
    if r:  # runs ending on an edge j (with r == 0 these are the runs above)
        ja, jb = -(-(lo + d - e0) // w), (hi + d - e0) // w
        a, b = ja - q - 1, jb - q - 1
        f2 = cum[:, ja : jb + 1] - cum[:, a : b + 1] - v[:, a : b + 1] * ((w - r) / w)
        families.append((e0 + w * np.arange(ja, jb + 1, dtype=np.int64) - d, f2))
    ends = np.array([lo, hi], dtype=np.int64)
    at = _c_per_step(e0, w, v, cum, np.array([lo, hi, lo + d, hi + d], dtype=np.int64))
    f_ends = at[:, 2:] - at[:, :2]

    rows = v.shape[0]
    f_min = f_ends.min(axis=1)
    for _, f in families:
        if f.shape[1]:
            f_min = np.minimum(f_min, f.min(axis=1))
    tol = TIE_RTOL * (np.abs(cum[:, -1]) + np.abs(f_min)) + 1e-300
    limit = (f_min + tol)[:, None]
    # per family, its earliest start within the tolerance (inf where none); then the earliest of all
    best_t = np.full((rows, len(families) + 2), _NO_START, dtype=np.int64)
    best_f = np.zeros((rows, len(families) + 2))
    ok_ends = f_ends <= limit
    best_t[:, :2] = np.where(ok_ends, ends, best_t[:, :2])
    best_f[:, :2] = f_ends
    idx = np.arange(rows)
    for col, (t, f) in enumerate(families, start=2):
        if not f.shape[1]:
            continue
        ok = f <= limit
        first = np.argmax(ok, axis=1)
        found = ok[idx, first]
        best_t[:, col] = np.where(found, t[first], best_t[:, col])
        best_f[:, col] = f[idx, first]
    pick = np.argmin(best_t, axis=1)
    return BestStarts(
        start_s=best_t[idx, pick],
        mean_g_per_kwh=best_f[idx, pick] * (w / d),
        earliest_mean_g_per_kwh=f_ends[:, 0] * (w / d),
    )


def _c_per_step(e0: int, w: int, v: FloatArray, cum: FloatArray, t_s: IntArray) -> FloatArray:
    k, off = np.divmod(t_s - e0, w)
    inside = np.minimum(k, v.shape[1] - 1)  # t == last edge: k == n, offset 0
    return cum[:, k] + v[:, inside] * (off / w)


def window_slice(edges: IntArray, values: FloatArray, lo_s: int, hi_s: int) -> tuple[IntArray, FloatArray]:
    """The intervals that overlap [lo_s, hi_s), checked to cover it without gaps (NaN)."""
    if edges[0] > lo_s or edges[-1] < hi_s:
        raise ValueError(
            f"series covers [{int(edges[0])}, {int(edges[-1])}), the window needs [{lo_s}, {hi_s})"
        )
    i0 = int(np.searchsorted(edges, lo_s, side="right")) - 1
    i1 = max(int(np.searchsorted(edges, hi_s, side="left")), i0 + 1)
    e = edges[i0 : i1 + 1]
    v = values[:, i0:i1]
    if np.isnan(v).any():
        raise ValueError("series has gaps (NaN) inside the window; fill them before planning")
    return e, v


def cumulative(edges: IntArray, values: FloatArray) -> FloatArray:
    """C at each edge, relative to the first edge: (series, n + 1)."""
    widths = np.diff(edges).astype(np.float64)
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values * widths, axis=1, out=out[:, 1:])
    return out


def integral_at(edges: IntArray, values: FloatArray, cum: FloatArray, t_s: IntArray) -> FloatArray:
    """C(t) for each series and each t in [edges[0], edges[-1]]: exact, since C is linear between edges."""
    n = values.shape[1]
    idx = np.searchsorted(edges, t_s, side="right") - 1
    np.clip(idx, 0, n, out=idx)  # idx == n only for t == edges[-1], where the offset is 0
    offset = t_s - edges[idx]
    if offset.any():
        vidx = np.minimum(idx, n - 1)
        return cum[:, idx] + values[:, vidx] * offset.astype(np.float64)
    # every t on an edge (an aligned window on a regular grid): C is read directly, and a run of
    # consecutive edges is a slice rather than a gather
    if len(idx) > 1 and bool(np.all(np.diff(idx) == 1)):
        return cum[:, int(idx[0]) : int(idx[-1]) + 1]
    return cum[:, idx]


def candidate_starts(edges: IntArray, lo_s: int, hi_s: int, duration_s: int) -> IntArray:
    """Sorted, distinct: the window's ends and every start where the run's start or end meets an edge."""
    starts = edges[(edges >= lo_s) & (edges <= hi_s)]
    ends = edges - duration_s
    ends = ends[(ends >= lo_s) & (ends <= hi_s)]
    return np.unique(np.concatenate(([lo_s, hi_s], starts, ends)).astype(np.int64))


def run_integrals(
    edges: IntArray, values: FloatArray, rows: IntArray, starts: IntArray, ends: IntArray
) -> FloatArray:
    """The integral of each run [starts[i], ends[i]) of series values[rows[i]] (every series on
    `edges`), added up interval by interval from the run's start.

    Differences of C serve to find the best start; this is what a plan reports. It depends only on
    the values the run covers, not on where the series starts, so a plan over a longer fetch of the
    same data (a batch's shared series) reports the same figures to the last bit, and a run inside
    one interval is that interval's value times its length, rounded once.
    """
    if not len(starts):
        return np.zeros(0)
    last = len(edges) - 2
    k0 = np.minimum(np.searchsorted(edges, starts, side="right") - 1, last)
    k1 = np.minimum(np.searchsorted(edges, ends, side="left") - 1, last)  # the last interval reached
    if bool((starts == starts[0]).all() and (ends == ends[0]).all()):  # one run in every row: slices
        a, b = int(k0[0]), int(k1[0])
        overlap = np.minimum(edges[a + 1 : b + 2], ends[0]) - np.maximum(edges[a : b + 1], starts[0])
        parts = values[rows, a : b + 1] * overlap.astype(np.float64)
    else:
        length = k1 - k0 + 1
        steps = np.arange(int(length.max()))
        idx = np.minimum(k0[:, None] + steps, k1[:, None])  # past its end, a row repeats its last
        weight = np.diff(edges).astype(np.float64)[idx]  # ... with weight 0
        weight[:, 0] = np.minimum(edges[k0 + 1], ends) - starts
        r = np.arange(len(starts))
        weight[r, length - 1] = ends - np.maximum(edges[k1], starts)
        weight[steps >= length[:, None]] = 0.0
        parts = values.reshape(-1)[(rows * values.shape[1])[:, None] + idx] * weight
    return np.asarray(np.cumsum(parts, axis=1)[:, -1], dtype=np.float64)  # in order: not pairwise


def window_means(edges_s: npt.ArrayLike, values: npt.ArrayLike, start_s: int, end_s: int) -> FloatArray:
    """Exact time-weighted mean over [start_s, end_s) of each series (row) sharing `edges_s`."""
    edges = np.asarray(edges_s, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    if end_s <= start_s:
        raise ValueError("empty range")
    e, v = window_slice(edges, vals, int(start_s), int(end_s))
    cum = cumulative(e, v)
    t = np.array([start_s, end_s], dtype=np.int64)
    at = integral_at(e, v, cum, t)
    return np.asarray((at[:, 1] - at[:, 0]) / (end_s - start_s), dtype=np.float64)
