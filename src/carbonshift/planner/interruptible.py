"""The cheapest set of times, inside a window, that adds up to an interruptible job's duration.

The rule for chunks: every maximal run of selected time (a chunk) is at least
``m = min(min_chunk, duration)`` long. So a job no longer than `min_chunk` runs in one piece, and
``min_chunk = 0`` means any split is allowed. Touching chunks are one chunk.

Every answer is the exact optimum over all real-valued schedules (`exact=True`):

* ``m = 0``: cheapest time first (a fractional knapsack with unit weights): whole intervals by
  increasing intensity, ties earliest, then part of the next one, taken where it joins a chunk.
* ``m = d`` or ``d < 2m`` (one chunk at most): the best contiguous run (`contiguous.py`).
* otherwise, dynamic programming over slots of G seconds, G = gcd(m, the spacing of the series' edges
  inside the window), aligned with those edges, so each slot lies inside one interval of the data.

Why G-slots suffice, whatever the window's ends and the duration. Fix the number of chunks K (the
least that reaches the optimum, so no two chunks touch) and the interval each chunk end lies in: the
cost is then linear in the ends, so some optimum is a vertex of the feasible set. Its constraints are
interval bounds, earliest <= first start, last end <= deadline, each chunk's length >= m, and one
equation, total = d. At a vertex every end is therefore an edge or earliest or deadline, or sits m from
the other end of its own chunk (a chunk of exactly m), or is the one end the total fixes. So: every
chunk but the first and last has both ends on the G-grid (edges, and edges +- m); the first may start
at earliest (using all of the "front" piece [earliest, first grid point), as m >= G) and then end on
the grid or exactly m later; the last likewise with the "back" piece up to the deadline; and one
chunk may have one end off the grid, using part of a slot, of a length f that the rest of the total
fixes: f = (d - front - back) mod G. Each combination of front and back (up to four "runs") is one
row of the programme, so the optimum over all of them is the optimum.

The programme, per row, over grid points i = 0..N with j whole slots used and p in {0, 1} (the part
slot used): F[i][p][j] = least cost with slot i-1 not in a chunk running on; C[i][p][j] = the same
with a chunk of at least M = m / G slots ending at point i.
F[i] = min(F[i-1], C[i-1], C[i-1][p=0] + f of slot i-1 -> p=1);
C[i] = min(C[i-1][j-1] + slot i-1, F[i-M][j-M] + slots i-M..i-1,
           F[i-M][p=0][j-M] + f of slot i-M-1 + slots i-M..i-1 -> p=1),
plus the front and back pieces where a run has them. Each step is a few numpy operations over every
row (series x run) at once; the chunks come back from the stored choices. Ties (within the planner's
tie rule, `contiguous.TIE_RTOL`) go to the schedule whose time is earliest: each second's cost carries
a bias of TIE_RTOL x max|value| x (its slot's position in the window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.planner.contiguous import TIE_RTOL, best_starts, run_integrals, window_slice

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_CELLS = 16_000_000  # rows x points x (slots of duration + 1) x part layers per pass: ~3 bytes each
MAX_ROW_CELLS = 4_000_000  # points x (slots of duration + 1) for one row: beyond it, see `slot_grid`


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


@dataclass(frozen=True, slots=True)
class SlotGrid:
    """G-second slots aligned with the series' edges: points L + k*G for k = 0..n, inside the window."""

    step: int
    first: int  # L, the first grid point at or after earliest
    n: int  # slots between L and the last grid point at or before the deadline

    @property
    def last(self) -> int:
        return self.first + self.n * self.step


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
    # series that repeat (regions on one grid zone) are planned once; a flat one needs no search:
    # every schedule costs the same, and the earliest is one run at earliest
    first: dict[bytes, int] = {}
    back = [first.setdefault(row.tobytes(), len(first)) for row in v]
    unique = v[list(first.values())] if len(first) < len(v) else v
    flat = unique.max(axis=1) == unique.min(axis=1)
    plans: list[ChunkPlan | None] = [
        ChunkPlan(((lo, lo + d),), float(row[0]), True, "contiguous") if is_flat else None
        for row, is_flat in zip(unique, flat.tolist(), strict=True)
    ]
    todo = np.flatnonzero(~flat)
    if len(todo):
        for i, found in zip(todo.tolist(), _search(e, unique[todo], lo, hi, d, m), strict=True):
            plans[i] = found
    return [p for p in (plans[i] for i in back) if p is not None]


def _search(e: IntArray, v: FloatArray, lo: int, hi: int, d: int, m: int) -> list[ChunkPlan]:
    if m == 0:
        return [_greedy(e, row, lo, hi, d) for row in v]
    grid = slot_grid(e, lo, hi, m)
    if d < 2 * m or grid is None:  # one chunk at most, or one intensity all through the window
        return _contiguous(e, v, lo, hi, d, exact=True)
    if (grid.n + 1) * (d // grid.step + 1) > MAX_ROW_CELLS:
        # a grid this fine comes from a min_chunk off the data's step (e.g. 1799 s on 5-minute data):
        # said, not silent (exact=False), and never worse than the best contiguous run
        return _contiguous(e, v, lo, hi, d, exact=False)
    return _ChunkDP(e, v, lo, hi, d, m, grid).solve()


def slot_grid(edges: IntArray, lo: int, hi: int, m: int) -> SlotGrid | None:
    """The DP's slots for a window (see the module docstring); None when no edge lies inside it."""
    inner = edges[(edges > lo) & (edges < hi)]
    if not len(inner):
        return None
    step = int(np.gcd.reduce(np.concatenate(([m], np.diff(inner))).astype(np.int64)))
    anchor = int(inner[0])
    first = anchor - (anchor - lo) // step * step
    last = anchor + (hi - anchor) // step * step
    return SlotGrid(step, first, (last - first) // step)


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


_End = tuple[float, list[tuple[int, int]], tuple[str, int, int, int] | None]


@dataclass(frozen=True, slots=True)
class _Run:
    """One combination of front and back pieces: fe / be say whether the first chunk starts at
    earliest / the last ends at the deadline (through the whole piece); f is the part slot's length
    (0: none), j the whole slots used."""

    fe: bool
    be: bool
    f: int
    j: int


class _ChunkDP:
    """The programme of the module docstring for every series (rows of v) and run at once."""

    def __init__(self, e: IntArray, v: FloatArray, lo: int, hi: int, d: int, m: int, grid: SlotGrid) -> None:
        self.e, self.v, self.lo, self.hi, self.d, self.m = e, v, lo, hi, d, m
        self.g, self.n, self.big_m = grid.step, grid.n, m // grid.step
        self.L, self.H = grid.first, grid.last
        self.da, self.db = self.L - lo, hi - self.H  # the front and back pieces' lengths
        self.k = d // self.g
        g, n = self.g, self.n
        # per series: each slot's rate (g/kWh), and the front and back pieces' rates, biased for ties
        points = self.L + g * np.arange(n + 2, dtype=np.int64) - g  # slot -1 .. n starts
        idx = np.clip(np.searchsorted(e, points, side="right") - 1, 0, v.shape[1] - 1)
        rate = v[:, idx]  # columns: slot -1 (the front piece), 0..n-1, n (the back piece)
        eps = TIE_RTOL * (np.abs(v).max(axis=1, keepdims=True) + 1e-300)
        self.rate = rate + eps * (np.arange(n + 2) / (n + 2))
        self.runs = [
            _Run(fe, be, (d - fe * self.da - be * self.db) % g, (d - fe * self.da - be * self.db) // g)
            for fe in ((False, True) if self.da else (False,))
            for be in ((False, True) if self.db else (False,))
            if d - fe * self.da - be * self.db >= 0
        ]

    def solve(self) -> list[ChunkPlan]:
        rows = self.v.shape[0]
        layers = 2 if any(run.f for run in self.runs) else 1
        per_row = len(self.runs) * (self.n + 1) * layers * (self.k + 1)
        batch = max(1, MAX_CELLS // max(1, per_row))
        best: list[tuple[float, list[tuple[int, int]]]] = []
        for r0 in range(0, rows, batch):
            best += self._solve_rows(np.arange(r0, min(rows, r0 + batch)))
        plans = []
        e, v, d = self.e, self.v, self.d
        for r, (_, pieces) in enumerate(best):
            pieces.sort()
            lo_arr = np.array([a for a, _ in pieces], dtype=np.int64)
            hi_arr = np.array([b for _, b in pieces], dtype=np.int64)
            chunks = _merge(lo_arr, hi_arr)
            if sum(b - a for a, b in chunks) != d:  # pragma: no cover - the programme's invariant
                raise AssertionError(f"chunks {chunks} do not add up to {d} s")
            starts = np.array([a for a, _ in chunks], dtype=np.int64)
            ends = np.array([b for _, b in chunks], dtype=np.int64)
            total = float(run_integrals(e, v, np.full(len(chunks), r), starts, ends).sum())
            plans.append(ChunkPlan(chunks, total / d, True, "dp", self.g))
        return plans

    def _solve_rows(self, series: IntArray) -> list[tuple[float, list[tuple[int, int]]]]:
        """Per series in `series`: the least (biased) cost over every run, and its pieces."""
        g, n, bm, k = self.g, self.n, self.big_m, self.k
        runs = self.runs
        nr = len(runs)
        rows = len(series) * nr
        rate = np.repeat(self.rate[series], nr, axis=0)  # row = series * nr + run
        run_of = np.tile(np.arange(nr), len(series))
        f = np.array([runs[q].f for q in run_of.tolist()], dtype=np.float64)
        fe = np.array([runs[q].fe for q in run_of.tolist()], dtype=bool)
        be = np.array([runs[q].be for q in run_of.tolist()], dtype=bool)
        slot = rate[:, 1 : n + 1] * g  # whole slots 0..n-1
        prefix = np.zeros((rows, n + 1))
        np.cumsum(slot, axis=1, out=prefix[:, 1:])
        # the part slot's cost in slot -1 .. n (inf: not allowed there, or no part slot in the run)
        part = rate * f[:, None]
        part[f == 0, :] = np.inf
        part[(f > self.da) | fe, 0] = np.inf
        part[(f > self.db) | be, n + 1] = np.inf
        front = rate[:, 0] * self.da
        back = rate[:, n + 1] * self.db
        inf = np.inf
        kp = k + 1

        def seg(a: int, b: int) -> FloatArray:  # whole slots a..b-1
            return np.asarray(prefix[:, b] - prefix[:, a], dtype=np.float64)

        # states injected at a point: (F or C, p, j, cost per row)
        tight_front = np.full(rows, inf)
        if self.da and bm <= n:
            tight_front = front + seg(0, bm - 1) + rate[:, bm] * (g - self.da)
            tight_front[fe] = inf
        specials: dict[int, list[tuple[str, int, int, FloatArray]]] = {}
        if bm <= n:
            specials.setdefault(bm, []).append(("F", 0, bm, tight_front))
            elastic = np.where(fe, front + seg(0, bm), inf)
            specials[bm].append(("C", 0, bm, elastic))
            short = np.where(fe & (f > 0) & (self.da + f >= g), front + seg(0, bm - 1) + part[:, bm], inf)
            specials[bm].append(("F", 1, bm - 1, short))

        use_part = any(run.f for run in runs)  # else no row has a part slot: one layer (p = 0)
        layers = 2 if use_part else 1
        dec = _Decisions(n, rows, layers, kp, bm)
        ring = bm + 1
        f_ring = np.full((ring, rows, layers, kp), inf)  # F at the last M + 1 points
        f_ring[0, ~fe, 0, 0] = 0.0
        c_bufs = np.full((2, rows, layers, kp), inf)  # C at the previous and this point (j = 0: never)
        saved: dict[int, tuple[FloatArray, FloatArray]] = {0: (f_ring[0].copy(), c_bufs[0].copy())}
        keep = {n - bm, n - bm + 1, n}
        # per step, read by index: the part slot in slot i-1 (column i), slot i-1, the whole slots of a
        # new chunk ending at i (i >= M), and those with the part slot before them
        part_at = np.ascontiguousarray(part.T)[:, :, None]
        slot_at = np.ascontiguousarray(slot.T)[:, :, None, None]
        add_at = np.ascontiguousarray((prefix[:, bm:] - prefix[:, : n + 1 - bm]).T)
        addp_at = add_at + part.T[: n + 1 - bm]
        add_at4, addp_at3 = add_at[:, :, None, None], addp_at[:, :, None]
        # views of the buffers, made once
        f_all = list(f_ring)
        f_p1 = [f[:, -1, :] for f in f_ring]
        f_src = [f[:, :, : kp - bm] for f in f_ring]
        f_src0 = [f[:, 0, : kp - bm] for f in f_ring]
        c_all = list(c_bufs)
        c_p0 = [c[:, 0, :] for c in c_bufs]
        c_head = [c[:, :, :-1] for c in c_bufs]
        c_tail = [c[:, :, 1:] for c in c_bufs]
        c_bm = [c[:, :, bm:] for c in c_bufs]
        c_p1bm = [c[:, -1, bm:] for c in c_bufs]
        tmp_f = np.empty((rows, kp))
        tmp_c = np.empty((rows, layers, max(kp - bm, 0)))
        tmp_p = tmp_c[:, 0, :]
        f_wo_tight: FloatArray | None = None  # F at point M before the tight front joins it
        wo_rows = (f > self.da)[:, None]
        for i in range(1, n + 1):
            a, b, ca, cb = (i - 1) % ring, i % ring, (i - 1) & 1, i & 1
            # F[i]: slot i-1 unused after F or C, or holding the part slot after C
            np.less(c_all[ca], f_all[a], out=dec.f_from_c[i])
            np.minimum(f_all[a], c_all[ca], out=f_all[b])
            if use_part:
                np.add(c_p0[ca], part_at[i], out=tmp_f)
                np.less(tmp_f, f_p1[b], out=dec.f_part[i])
                np.minimum(f_p1[b], tmp_f, out=f_p1[b])
            # C[i]: slot i-1 extends a chunk, or ends a new one of M slots (after the part slot)
            np.add(c_head[ca], slot_at[i - 1], out=c_tail[cb])
            if i >= bm and kp > bm:
                s0 = (i - bm) % ring
                np.add(f_src[s0], add_at4[i - bm], out=tmp_c)
                np.less(tmp_c, c_bm[cb], out=dec.c_new[i])
                np.minimum(c_bm[cb], tmp_c, out=c_bm[cb])
                if use_part:
                    src0 = f_src0[s0]
                    if i - bm == bm and f_wo_tight is not None:
                        src0 = np.where(wo_rows, f_wo_tight[:, : kp - bm], src0)
                    np.add(src0, addp_at3[i - bm], out=tmp_p)
                    np.less(tmp_p, c_p1bm[cb], out=dec.c_part[i])
                    np.minimum(c_p1bm[cb], tmp_p, out=c_p1bm[cb])
            if i in specials:
                f_new, c_new = f_all[b], c_all[cb]
                for which, p, j, cost in specials[i]:
                    if j < 0 or j > k or p >= layers:
                        continue
                    target = f_new if which == "F" else c_new
                    if which == "F" and p == 0 and f_wo_tight is None:
                        f_wo_tight = f_new[:, 0, :].copy()
                    better = cost < target[:, p, j]
                    target[:, p, j] = np.where(better, cost, target[:, p, j])
                    dec.special[(which, i, p, j)] = better
            if i in keep:
                saved[i] = (f_all[b].copy(), c_all[cb].copy())
        back_tight = np.full(rows, inf)
        if self.db and n - bm >= 0:
            back_tight = rate[:, n - bm + 1] * (g - self.db) + seg(n - bm + 1, n) + back
        self._dec = dec
        out = []
        for s_i in range(len(series)):
            best: tuple[float, int, _Run, list[tuple[int, int]], tuple[str, int, int, int] | None] | None = (
                None
            )
            for q, run in enumerate(runs):
                r = s_i * nr + q
                for total, pieces, state in self._finals(
                    r, run, saved, part, prefix, back, back_tight, tight_front
                ):
                    if best is None or total < best[0]:
                        best = (total, r, run, pieces, state)
            if best is None:  # pragma: no cover - d <= the window, so some schedule fits
                raise AssertionError("no schedule fits the window")
            total, r, run, pieces, state = best
            out.append((total, pieces + (self._trace(r, run, *state) if state else [])))
        return out

    def _finals(
        self,
        r: int,
        run: _Run,
        saved: dict[int, tuple[FloatArray, FloatArray]],
        part: FloatArray,
        prefix: FloatArray,
        back: FloatArray,
        back_tight: FloatArray,
        tight_front: FloatArray,
    ) -> list[_End]:
        """Every way run `run` of row r may end: its cost, the pieces after the programme's last
        point, and the programme's state they follow (None: no state)."""
        g, n, bm = self.g, self.n, self.big_m
        p = 1 if run.f else 0
        j = run.j
        out: list[_End] = []
        f_n, c_n = saved[n]

        def add(cost: float, pieces: list[tuple[int, int]], state: tuple[str, int, int, int] | None) -> None:
            if math.isfinite(cost):
                out.append((cost, pieces, state))

        if 0 <= j <= self.k:
            if run.be:
                add(float(c_n[r, p, j] + back[r]), [(self.H, self.hi)], ("C", n, p, j))
                jj = j - (bm - 1)
                if run.f and self.db + run.f >= g and jj >= 0 and n - bm + 1 >= 0:
                    f_src = saved[n - bm + 1][0]
                    start = self.H - (bm - 1) * g - run.f
                    cost = (
                        f_src[r, 0, jj]
                        + part[r, n - bm + 1]
                        + back[r]
                        + (prefix[r, n] - prefix[r, n - bm + 1])
                    )
                    add(float(cost), [(start, self.hi)], ("F", n - bm + 1, 0, jj))
            else:
                state = ("F", n, p, j) if f_n[r, p, j] <= c_n[r, p, j] else ("C", n, p, j)
                add(float(min(f_n[r, p, j], c_n[r, p, j])), [], state)
                if run.f and run.f <= self.db:
                    add(float(c_n[r, 0, j] + part[r, n + 1]), [(self.H, self.H + run.f)], ("C", n, 0, j))
        jt = j - bm
        if not run.be and self.db and 0 <= jt <= self.k and n - bm >= 0:
            f_t, c_t = saved[n - bm]
            piece = [(self.hi - self.m, self.hi)]
            state = ("F", n - bm, p, jt) if f_t[r, p, jt] <= c_t[r, p, jt] else ("C", n - bm, p, jt)
            add(float(min(f_t[r, p, jt], c_t[r, p, jt]) + back_tight[r]), piece, state)
            if run.f and run.f <= self.db:
                at = self.L + (n - bm) * g
                cost = c_t[r, 0, jt] + part[r, n - bm + 1] + back_tight[r]
                add(float(cost), [*piece, (at, at + run.f)], ("C", n - bm, 0, jt))
        if (
            not run.fe
            and not run.be
            and run.f == 0
            and self.d == 2 * self.m
            and self.db
            and n - bm < bm
            and self.lo + self.m <= self.hi - self.m
        ):  # the two tight chunks share a slot: the programme's points do not see both
            add(
                float(tight_front[r] + back_tight[r]),
                [(self.lo, self.lo + self.m), (self.hi - self.m, self.hi)],
                None,
            )
        return out

    def _trace(self, r: int, run: _Run, which: str, i: int, p: int, j: int) -> list[tuple[int, int]]:
        """The pieces of the state (which, i, p, j) of row r, from the stored decisions (checked in
        the reverse of the order they were made in)."""
        dec = self._dec
        g, bm, lo = self.g, self.big_m, self.lo
        pieces: list[tuple[int, int]] = []
        use_wo = False  # F at point M as the part slot after it saw it: without the tight front
        while True:
            special = dec.special.get((which, i, p, j))
            if special is not None and bool(special[r]) and not use_wo:
                if which == "C":  # the front piece then M whole slots
                    pieces.append((lo, self.L + bm * g))
                elif p == 0:  # the tight front
                    pieces.append((lo, lo + self.m))
                else:  # the front piece, M - 1 whole slots, the part slot
                    pieces.append((lo, self.L + (bm - 1) * g + run.f))
                return pieces
            use_wo = False
            if which == "F":
                if i == 0:
                    return pieces
                if p == 1 and dec.f_part[i][r, j]:
                    at = self.L + (i - 1) * g
                    pieces.append((at, at + run.f))
                    which, i, p = "C", i - 1, 0
                elif dec.f_from_c[i][r, p, j]:
                    which, i = "C", i - 1
                else:
                    i -= 1
            elif p == 1 and dec.new_part(i, r, j):
                start = self.L + (i - bm) * g
                pieces.append((start - run.f, self.L + i * g))
                use_wo = i - bm == bm and run.f > self.da
                which, i, j, p = "F", i - bm, j - bm, 0
            elif dec.new(i, r, p, j):
                pieces.append((self.L + (i - bm) * g, self.L + i * g))
                which, i, j = "F", i - bm, j - bm
            else:
                pieces.append((self.L + (i - 1) * g, self.L + i * g))
                i, j = i - 1, j - 1


class _Decisions:
    """Which way each state of the programme was reached (False: the first way listed)."""

    def __init__(self, n: int, rows: int, layers: int, kp: int, bm: int) -> None:
        self.bm = bm
        part = n + 1 if layers == 2 else 0  # no part slot in any row: no decisions about it
        self.f_from_c = np.zeros((n + 1, rows, layers, kp), dtype=bool)  # F[i] from C[i-1], not F[i-1]
        self.f_part = np.zeros((part, rows, kp), dtype=bool)  # F[i][p=1]: the part slot after C
        # C[i] at j >= M (stored from column M on): a new chunk, not extended; with the part slot
        self.c_new = np.zeros((n + 1, rows, layers, max(kp - bm, 0)), dtype=bool)
        self.c_part = np.zeros((part, rows, max(kp - bm, 0)), dtype=bool)
        self.special: dict[tuple[str, int, int, int], npt.NDArray[np.bool_]] = {}

    def new_part(self, i: int, r: int, j: int) -> bool:
        return j >= self.bm and bool(self.c_part[i][r, j - self.bm])

    def new(self, i: int, r: int, p: int, j: int) -> bool:
        return j >= self.bm and bool(self.c_new[i][r, p, j - self.bm])
