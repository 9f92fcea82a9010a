"""The cheapest set of times, inside a window, that adds up to an interruptible job's duration.

The rule for chunks: every maximal run of selected time (a chunk) is at least
``min(min_chunk, duration)`` long. So a job no longer than `min_chunk` runs in one piece, and
``min_chunk = 0`` means any split is allowed. Touching chunks are one chunk.

What is guaranteed:

* ``min_chunk = 0``: the exact optimum over all real-valued schedules. Cheapest time first (a
  fractional knapsack with unit weights): whole intervals by increasing intensity, ties earliest, then
  part of the next one. The part is taken at the interval's start, or at its end when only the
  following interval is selected, so it joins a chunk (the cost is the same).
* ``min_chunk >= duration``: one contiguous run, the exact optimum of `contiguous.best_start`.
* otherwise, dynamic programming over equal slots of `grid_s` seconds, exact over every schedule
  whose chunk boundaries lie on that slot grid. The grid is chosen in this order:

  1. the largest step dividing the window length, the duration, min_chunk and the offset of every
     series edge inside the window from earliest. The optimum over real-valued schedules then lies on
     the grid, so the answer is the exact optimum (`exact=True`). Proof sketch: for a fixed number of
     chunks and a fixed interval holding each chunk end, the cost is linear in the ends and the
     constraints are differences of consecutive ends (>= min_chunk or >= 0), interval bounds and one
     equation (total = duration). Tight difference constraints link runs of consecutive ends, whose
     signed count (+1 per end, -1 per start) is -1, 0 or 1, so every vertex of that polytope is on
     the grid, and a linear cost is least at a vertex.
  2. if that grid would have more than `MAX_SLOTS` slots (earliest or deadline off the data's step,
     e.g. `now` = 18:03:27), the step dividing the duration, min_chunk and every edge as an absolute
     time, with the window shrunk to whole steps: exact on that grid, but it may leave unused the
     partial steps at the two ends of the window (`exact=False`).
  3. failing that, the step dividing duration and min_chunk, window shrunk likewise (`exact=False`).

  In cases 2 and 3 the best contiguous run is also computed (exactly), and the cheaper of the two is
  returned, so an interruptible plan is never worse than a contiguous one. Ties between schedules
  (within 1e-9 relative) go to the one whose slots are earliest on average: each slot's cost carries a
  bias of 1e-9 * max|cost| * (slot index / slots).

The dynamic programme, over slots 0..N-1 with K = duration / grid and M = min_chunk / grid:
F[i][j] = least cost of j slots among the first i, slot i-1 unused (every chunk so far complete);
G[i][j] = the same with slot i-1 used and its chunk already at least M long.
F[i] = min(F[i-1], G[i-1]); G[i][j] = min(G[i-1][j-1] + c[i-1], F[i-M][j-M] + c[i-M] + ... + c[i-1]).
Each step is a few numpy operations over j (and over every series sharing the edges at once);
the answer is min(F[N][K], G[N][K]) and the chunks come from the stored choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.planner.contiguous import best_starts, cumulative, integral_at, window_slice

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_SLOTS = 20_000
MAX_CELLS = 20_000_000  # slots x (duration in slots): bounds the DP's stored choices (two bytes each)
TIE_RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """Chunks as [start_s, end_s) pairs in time order, their time-weighted mean intensity, and what
    optimum is guaranteed (see the module docstring)."""

    chunks: tuple[tuple[int, int], ...]
    mean_g_per_kwh: float
    exact: bool
    method: str  # "greedy", "contiguous" or "dp"
    grid_s: int = 0

    @property
    def start_s(self) -> int:
        return self.chunks[0][0]

    @property
    def end_s(self) -> int:
        return self.chunks[-1][1]


def cheapest_chunks(
    edges_s: npt.ArrayLike,
    values: npt.ArrayLike,
    earliest_s: int,
    deadline_s: int,
    duration_s: int,
    min_chunk_s: int = 0,
) -> ChunkPlan:
    vals = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return cheapest_chunks_many(edges_s, vals, earliest_s, deadline_s, duration_s, min_chunk_s)[0]


def cheapest_chunks_many(
    edges_s: npt.ArrayLike,
    values: npt.ArrayLike,
    earliest_s: int,
    deadline_s: int,
    duration_s: int,
    min_chunk_s: int = 0,
) -> list[ChunkPlan]:
    """`cheapest_chunks` for many series on the same edges (one row of `values` each)."""
    edges = np.asarray(edges_s, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    lo, hi, d, m = int(earliest_s), int(deadline_s), int(duration_s), int(min_chunk_s)
    if d <= 0:
        raise ValueError("duration must be positive")
    if m < 0:
        raise ValueError("min_chunk must not be negative")
    if hi - lo < d:
        raise ValueError(f"window [{lo}, {hi}) is shorter than the duration {d}")
    e, v = window_slice(edges, vals, lo, hi)
    m = min(m, d)
    if m == d:
        return _contiguous(e, v, lo, hi, d, exact=True)
    if m == 0:
        return [_greedy(e, row, lo, hi, d) for row in v]
    grid = choose_grid(e, lo, hi, d, m)
    contiguous = _contiguous(e, v, lo, hi, d, exact=True)
    if grid is None:
        return [_replace_exact(c, False) for c in contiguous]
    step, g_lo, g_hi, exact = grid
    plans = _dp(e, v, g_lo, g_hi, step, d // step, m // step, exact)
    out = []
    for dp_plan, cont in zip(plans, contiguous, strict=True):
        tol = TIE_RTOL * max(abs(dp_plan.mean_g_per_kwh), abs(cont.mean_g_per_kwh), 1e-300)
        if exact or dp_plan.mean_g_per_kwh <= cont.mean_g_per_kwh + tol:
            out.append(dp_plan)
        else:
            out.append(_replace_exact(cont, False))
    return out


def choose_grid(edges: IntArray, lo: int, hi: int, d: int, m: int) -> tuple[int, int, int, bool] | None:
    """(step, window start, window end, exact) for the DP, or None when no usable grid exists."""
    inner = edges[(edges > lo) & (edges < hi)]
    full = int(np.gcd.reduce(np.concatenate(([hi - lo, d, m], inner - lo)).astype(np.int64)))
    if _fits(hi - lo, full, d):
        return full, lo, hi, True
    absolute = int(np.gcd.reduce(np.concatenate(([d, m], inner)).astype(np.int64)))
    for step in (absolute, math.gcd(d, m)):
        g_lo = -(-lo // step) * step
        g_hi = hi // step * step
        if g_hi - g_lo >= d and _fits(g_hi - g_lo, step, d):
            return step, g_lo, g_hi, False
    return None


def _fits(span: int, step: int, d: int) -> bool:
    slots = span // step
    return slots <= MAX_SLOTS and slots * (d // step + 1) <= MAX_CELLS


def _replace_exact(plan: ChunkPlan, exact: bool) -> ChunkPlan:
    return ChunkPlan(plan.chunks, plan.mean_g_per_kwh, exact, plan.method, plan.grid_s)


def _contiguous(e: IntArray, v: FloatArray, lo: int, hi: int, d: int, *, exact: bool) -> list[ChunkPlan]:
    res = best_starts(e, v, lo, hi - d, d)
    return [
        ChunkPlan(((int(s), int(s) + d),), float(mean), exact, "contiguous")
        for s, mean in zip(res.start_s, res.mean_g_per_kwh, strict=True)
    ]


def _greedy(e: IntArray, row: FloatArray, lo: int, hi: int, d: int) -> ChunkPlan:
    starts = np.maximum(e[:-1], lo)
    ends = np.minimum(e[1:], hi)
    lengths = ends - starts
    order = np.lexsort((starts, row))  # by intensity, ties earliest
    cum = np.cumsum(lengths[order])
    n_full = int(np.searchsorted(cum, d, side="right"))
    taken = np.zeros(len(row), dtype=bool)
    taken[order[:n_full]] = True
    sel_lo = starts.copy()
    sel_hi = ends.copy()
    remaining = d - (int(cum[n_full - 1]) if n_full else 0)
    if remaining > 0:
        p = int(order[n_full])
        left_taken = p > 0 and taken[p - 1]
        right_taken = p + 1 < len(row) and taken[p + 1]
        if right_taken and not left_taken:
            sel_lo[p] = ends[p] - remaining
        else:
            sel_hi[p] = starts[p] + remaining
        taken[p] = True
    idx = np.flatnonzero(taken)
    chunk_lo, chunk_hi = sel_lo[idx], sel_hi[idx]
    cost = float(np.dot(row[idx], (chunk_hi - chunk_lo).astype(np.float64)))
    return ChunkPlan(_merge(chunk_lo, chunk_hi), cost / d, True, "greedy")


def _merge(lo: IntArray, hi: IntArray) -> tuple[tuple[int, int], ...]:
    """Join pieces that touch (lo, hi sorted by time, not overlapping)."""
    if len(lo) == 0:
        return ()
    breaks = np.flatnonzero(lo[1:] != hi[:-1])
    firsts = np.concatenate(([0], breaks + 1))
    lasts = np.concatenate((breaks, [len(lo) - 1]))
    return tuple((int(lo[a]), int(hi[b])) for a, b in zip(firsts, lasts, strict=True))


def _dp(
    e: IntArray, v: FloatArray, lo: int, hi: int, step: int, k: int, m: int, exact: bool
) -> list[ChunkPlan]:
    n = (hi - lo) // step
    bounds = lo + step * np.arange(n + 1, dtype=np.int64)
    cum = cumulative(e, v)
    at = integral_at(e, v, cum, bounds)
    cost = np.diff(at, axis=1) / step  # exact mean of each slot, whatever the edges
    scale = np.abs(cost).max(axis=1, keepdims=True) + 1e-300
    biased = cost + TIE_RTOL * scale * (np.arange(n) / n)
    rows = v.shape[0]
    batch = max(1, MAX_CELLS // max(1, (n + 1) * (k + 1)))
    plans: list[ChunkPlan] = []
    for r0 in range(0, rows, batch):
        picked = _dp_batch(biased[r0 : r0 + batch], k, m)
        for r, slots in enumerate(picked):
            true_cost = float(cost[r0 + r, slots].sum())
            slot_lo = bounds[slots]
            plans.append(ChunkPlan(_merge(slot_lo, slot_lo + step), true_cost / k, exact, "dp", step))
    return plans


def _dp_batch(c: FloatArray, k: int, m: int) -> list[IntArray]:
    """Selected slot indices per row of slot costs `c` (rows, n): k slots, chunks of >= m slots."""
    rows, n = c.shape
    prefix = np.zeros((rows, n + 1))
    np.cumsum(c, axis=1, out=prefix[:, 1:])
    inf = np.inf
    ring = np.full((m + 1, rows, k + 1), inf)  # F[i] for the last m + 1 values of i
    f = np.full((rows, k + 1), inf)
    f[:, 0] = 0.0
    ring[0] = f
    g = np.full((rows, k + 1), inf)
    f_from_g = np.zeros((n + 1, rows, k + 1), dtype=bool)
    g_extends = np.zeros((n + 1, rows, k + 1), dtype=bool)
    ext = np.full((rows, k + 1), inf)
    new = np.full((rows, k + 1), inf)
    for i in range(1, n + 1):
        np.add(g[:, :-1], c[:, i - 1 : i], out=ext[:, 1:])
        if i >= m:
            f_back = ring[(i - m) % (m + 1)]
            np.add(f_back[:, : k + 1 - m], (prefix[:, i] - prefix[:, i - m])[:, None], out=new[:, m:])
            g_next = np.minimum(ext, new)
            np.less_equal(ext, new, out=g_extends[i])
        else:
            g_next = ext.copy()
            g_extends[i] = True
        np.less(g, f, out=f_from_g[i])
        f = np.minimum(f, g)
        ring[i % (m + 1)] = f
        g = g_next
    if not np.isfinite(np.minimum(g[:, k], f[:, k])).all():
        raise ValueError("no schedule fits (window too short for the duration)")
    out: list[IntArray] = []
    for r in range(rows):
        fg, ge = f_from_g[:, r, :], g_extends[:, r, :]
        in_g = bool(g[r, k] < f[r, k])
        i, j = n, k
        chosen: list[int] = []
        while i > 0 and j > 0:
            if not in_g:
                # unused slots: jump back to the last step whose F came from G (one numpy call
                # instead of one Python step per unused slot)
                i = int(np.flatnonzero(fg[1 : i + 1, j])[-1])  # F[i + 1] came from G[i]
                in_g = True
            elif ge[i, j]:
                chosen.append(i - 1)
                i -= 1
                j -= 1
            else:
                chosen.extend(range(i - 1, i - m - 1, -1))
                i -= m
                j -= m
                in_g = False
        out.append(np.array(sorted(chosen), dtype=np.int64))
    return out
