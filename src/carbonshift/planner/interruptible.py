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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.planner.contiguous import TIE_RTOL, best_starts, run_integrals, window_slice

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_CELLS = 16_000_000  # rows x points x (slots of duration + 1) x part layers per pass: ~3 bytes each
PASS_SPREAD = 1.3  # a pass's longest window, at most this many times its shortest (past 64 rows)
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


ChunkProblem = tuple[npt.ArrayLike, npt.ArrayLike, int, int, int, int]  # edges, values, lo, hi, d, m


def cheapest_chunks_many(
    edges_s: npt.ArrayLike,
    values: npt.ArrayLike,
    earliest_s: int,
    deadline_s: int,
    duration_s: int,
    min_chunk_s: int = 0,
) -> list[ChunkPlan]:
    """`cheapest_chunks` for many series on the same edges (one row of `values` each)."""
    return cheapest_chunks_batch([(edges_s, values, earliest_s, deadline_s, duration_s, min_chunk_s)])[0]


def cheapest_chunks_batch(problems: Sequence[ChunkProblem]) -> list[list[ChunkPlan]]:
    """`cheapest_chunks_many` for each problem (edges, values, earliest, deadline, duration,
    min_chunk): a batch of specs, each with its own window and duration.

    One problem's programme is ~100 steps of a dozen numpy calls over small arrays, so it pays mostly
    for the calls. Problems whose slots have the same length G and whose chunks the same least number
    of slots M run as one programme, each row aligned at its own window's first grid point (step i is
    every row's own i-th point): a row's arithmetic is what it is alone, so a plan does not depend on
    what it was planned with.
    """
    prepared: list[tuple[list[ChunkPlan | None], list[int]]] = []
    programmes: dict[tuple[int, int], list[_Unit]] = {}
    for problem in problems:
        prepared.append(_prepare(*problem, programmes))
    for (g, bm), units in programmes.items():
        for part in _passes(units):
            found = _Programme(part, g, bm).solve()
            for edges, rows, chunks in _by_series(part, found):
                _store_plans(edges, np.array(rows), chunks)
    return [[p for p in (plans[i] for i in back) if p is not None] for plans, back in prepared]


def _prepare(
    edges_s: npt.ArrayLike,
    values: npt.ArrayLike,
    earliest_s: int,
    deadline_s: int,
    duration_s: int,
    min_chunk_s: int,
    programmes: dict[tuple[int, int], list[_Unit]],
) -> tuple[list[ChunkPlan | None], list[int]]:
    """One problem's plans per distinct series (None: left to the programme, queued in
    `programmes` by its G and M) and each series' index among them."""
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
    first: dict[bytes, int] = {}  # each distinct series: its index among them
    kept: list[int] = []  # ... and its first row
    back = []
    for i, row in enumerate(v):
        u = first.setdefault(row.tobytes(), len(kept))
        if u == len(kept):
            kept.append(i)
        back.append(u)
    unique = v[kept] if len(kept) < len(v) else v
    flat = unique.max(axis=1) == unique.min(axis=1)
    plans: list[ChunkPlan | None] = [
        ChunkPlan(((lo, lo + d),), float(row[0]), True, "contiguous") if is_flat else None
        for row, is_flat in zip(unique, flat.tolist(), strict=True)
    ]
    todo = np.flatnonzero(~flat)
    if not len(todo):
        return plans, back
    rows = unique[todo]
    found: list[ChunkPlan] | None = None
    grid = slot_grid(e, lo, hi, m) if m else None
    if m == 0:
        found = [_greedy(e, row, lo, hi, d) for row in rows]
    elif d < 2 * m or grid is None:  # one chunk at most, or one intensity all through the window
        found = _contiguous(e, rows, lo, hi, d, exact=True)
    elif (grid.n + 1) * (d // grid.step + 1) > MAX_ROW_CELLS:
        # a grid this fine comes from a min_chunk off the data's step (e.g. 1799 s on 5-minute data):
        # said, not silent (exact=False), and never worse than the best contiguous run
        found = _contiguous(e, rows, lo, hi, d, exact=False)
    if found is not None:
        for i, plan in zip(todo.tolist(), found, strict=True):
            plans[i] = plan
        return plans, back
    assert grid is not None
    window = _Window(e, rows, lo, hi, d, m, grid)
    queue = programmes.setdefault((grid.step, window.bm), [])
    full = vals[np.asarray(kept)[todo]] if len(kept) < len(v) else vals[todo]  # the whole series
    queue.extend(_Unit(window, s, plans, i, edges, full[s]) for s, i in enumerate(todo.tolist()))
    return plans, back


def _by_series(
    units: list[_Unit], found: list[tuple[float, list[tuple[int, int]]]]
) -> list[tuple[IntArray, list[FloatArray], _Chunked]]:
    """Each unit's chunks, grouped by the edges (by identity) its whole series lie on, with those
    series."""
    groups: dict[int, tuple[IntArray, list[FloatArray], _Chunked]] = {}
    for unit, (_, pieces) in zip(units, found, strict=True):
        entry = groups.setdefault(id(unit.edges), (unit.edges, [], []))
        entry[1].append(unit.values)
        entry[2].append((unit, unit.window.chunks(pieces)))
    return list(groups.values())


def _store_plans(edges: IntArray, values: FloatArray, chunks: _Chunked) -> None:
    """Each unit's plan (row i of `values` is unit i's series on `edges`): its mean summed over the
    chunks, all in one `run_integrals` (which depends on the values a run covers only)."""
    rows = [i for i, (_, cs) in enumerate(chunks) for _ in cs]
    starts = np.array([a for _, cs in chunks for a, _ in cs], dtype=np.int64)
    ends = np.array([b for _, cs in chunks for _, b in cs], dtype=np.int64)
    parts = run_integrals(edges, values, np.array(rows, dtype=np.int64), starts, ends)
    at = 0
    for unit, cs in chunks:
        w = unit.window
        total = float(parts[at : at + len(cs)].sum())
        at += len(cs)
        unit.plans[unit.at] = ChunkPlan(cs, total / w.d, True, "dp", w.g)


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


class _Window:
    """One problem's window on its G-grid, and its series' slot rates (those the programme plans)."""

    def __init__(self, e: IntArray, v: FloatArray, lo: int, hi: int, d: int, m: int, grid: SlotGrid) -> None:
        self.e, self.v, self.lo, self.hi, self.d, self.m = e, v, lo, hi, d, m
        self.g, self.n, self.bm = grid.step, grid.n, m // grid.step
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

    def chunks(self, pieces: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        """The programme's pieces as chunks: in time order, those that touch joined."""
        merged: list[list[int]] = []
        for a, b in sorted(pieces):
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        if sum(b - a for a, b in merged) != self.d:  # pragma: no cover - the programme's invariant
            raise AssertionError(f"chunks {merged} do not add up to {self.d} s")
        return tuple((a, b) for a, b in merged)


@dataclass(frozen=True, slots=True)
class _Unit:
    """A series the programme plans: row `row` of `window`, its plan due at plans[at]; the whole
    series is `values` on `edges`."""

    window: _Window
    row: int
    plans: list[ChunkPlan | None]
    at: int
    edges: IntArray
    values: FloatArray


_Chunked = list[tuple[_Unit, tuple[tuple[int, int], ...]]]


def _passes(units: list[_Unit]) -> Iterator[list[_Unit]]:
    """Units in passes of at most MAX_CELLS cells (rows x points x slots of duration x part layers),
    by window length, so that a pass pads its shorter rows little (a pass costs ~1,500 numpy calls:
    a new one where padding would cost more)."""
    units = sorted(units, key=lambda u: (u.window.n, u.window.k))
    part: list[_Unit] = []
    rows = n = k = n0 = 0
    for unit in units:
        w = unit.window
        cells = (rows + len(w.runs)) * (max(n, w.n) + 1) * 2 * (max(k, w.k) + 1)
        if part and (cells > MAX_CELLS or (rows > 64 and w.n > PASS_SPREAD * n0)):
            yield part
            part, rows, n, k = [], 0, 0, 0
        if not part:
            n0 = w.n
        part.append(unit)
        rows, n, k = rows + len(w.runs), max(n, w.n), max(k, w.k)
    if part:
        yield part


class _Programme:
    """The programme of the module docstring for every unit's series and run at once (one row each),
    all on slots of g seconds with chunks of at least bm slots."""

    def __init__(self, units: list[_Unit], g: int, bm: int) -> None:
        self.units, self.g, self.bm = units, g, bm
        self.first = [0]  # each unit's first row
        for u in units:
            self.first.append(self.first[-1] + len(u.window.runs))
        rows = self.first[-1]
        self.n_max = max(u.window.n for u in units)
        self.k_max = max(u.window.k for u in units)
        self.rate = np.zeros((rows, self.n_max + 2))  # past a row's back piece: never read back
        per_row: list[tuple[int, int, int, bool, bool, int]] = []  # f, da, db, fe, be, n
        for u, r0 in zip(units, self.first, strict=False):
            w = u.window
            self.rate[r0 : r0 + len(w.runs), : w.n + 2] = w.rate[u.row]
            per_row += [(run.f, w.da, w.db, run.fe, run.be, w.n) for run in w.runs]
        cols = list(zip(*per_row, strict=True))
        self.f = np.array(cols[0], dtype=np.float64)
        self.da = np.array(cols[1], dtype=np.int64)
        self.db = np.array(cols[2], dtype=np.int64)
        self.fe = np.array(cols[3], dtype=bool)
        self.be = np.array(cols[4], dtype=bool)
        self.n = np.array(cols[5], dtype=np.int64)

    def solve(self) -> list[tuple[float, list[tuple[int, int]]]]:
        """Per unit: the least (biased) cost over its runs, and its pieces."""
        g, bm, kp, n_max = self.g, self.bm, self.k_max + 1, self.n_max
        f, fe, be, da, db, n_row, rate = self.f, self.fe, self.be, self.da, self.db, self.n, self.rate
        rows = len(f)
        at = np.arange(rows)
        slot = rate[:, 1 : n_max + 1] * g  # whole slots 0..n-1
        prefix = np.zeros((rows, n_max + 1))
        np.cumsum(slot, axis=1, out=prefix[:, 1:])
        # the part slot's cost in slot -1 .. n (inf: not allowed there, or no part slot in the run)
        part = rate * f[:, None]
        part[f == 0, :] = np.inf
        part[(f > da) | fe, 0] = np.inf
        no_back = np.flatnonzero((f > db) | be)
        part[no_back, n_row[no_back] + 1] = np.inf
        front = rate[:, 0] * da
        back = rate[at, n_row + 1] * db
        inf = np.inf

        def seg(a: int, b: int) -> FloatArray:  # whole slots a..b-1
            return np.asarray(prefix[:, b] - prefix[:, a], dtype=np.float64)

        # states injected at point M: (F or C, p, j, cost per row); none where the window is shorter
        specials: list[tuple[str, int, int, FloatArray]] = []
        tight_front = np.full(rows, inf)
        if bm <= n_max:
            reach = n_row >= bm
            tight = front + seg(0, bm - 1) + rate[:, bm] * (g - da)
            tight_front = np.where(reach & (da > 0) & ~fe, tight, inf)
            specials.append(("F", 0, bm, tight_front))
            specials.append(("C", 0, bm, np.where(reach & fe, front + seg(0, bm), inf)))
            short = np.where(
                reach & fe & (f > 0) & (da + f >= g),
                front + seg(0, bm - 1) + part[:, bm],
                inf,
            )
            specials.append(("F", 1, bm - 1, short))

        use_part = bool((f > 0).any())  # else no row has a part slot: one layer (p = 0)
        layers = 2 if use_part else 1
        dec = _Decisions(n_max, rows, layers, kp, bm)
        ring = bm + 1
        f_ring = np.full((ring, rows, layers, kp), inf)  # F at the last M + 1 points
        f_ring[0, ~fe, 0, 0] = 0.0
        c_bufs = np.full((2, rows, layers, kp), inf)  # C at the previous and this point (j = 0: never)
        # F and C at each row's points n, n - M + 1 and n - M, kept as the programme passes them
        kept_f = np.full((3, rows, layers, kp), inf)
        kept_c = np.full((3, rows, layers, kp), inf)
        keep: dict[int, list[tuple[int, IntArray]]] = {}
        for role, point in enumerate((n_row, n_row - bm + 1, n_row - bm)):
            for i in np.unique(point[point >= 0]).tolist():
                keep.setdefault(i, []).append((role, np.flatnonzero(point == i)))
        for role, sel in keep.get(0, ()):
            kept_f[role, sel], kept_c[role, sel] = f_ring[0, sel], c_bufs[0, sel]
        # per step, read by index: the part slot in slot i-1 (column i), slot i-1, the whole slots of a
        # new chunk ending at i (i >= M), and those with the part slot before them
        part_at = np.ascontiguousarray(part.T)[:, :, None]
        slot_at = np.ascontiguousarray(slot.T)[:, :, None, None]
        add_at = np.ascontiguousarray((prefix[:, bm:] - prefix[:, : n_max + 1 - bm]).T)
        addp_at = add_at + part.T[: n_max + 1 - bm]
        add_at4, addp_at3 = add_at[:, :, None, None], addp_at[:, :, None]
        # views of the buffers, made once
        f_all = list(f_ring)
        f_p1 = [x[:, -1, :] for x in f_ring]
        f_src = [x[:, :, : kp - bm] for x in f_ring]
        f_src0 = [x[:, 0, : kp - bm] for x in f_ring]
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
        wo_rows = (f > da)[:, None]
        for i in range(1, n_max + 1):
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
            if i == bm:
                f_new, c_new = f_all[b], c_all[cb]
                for which, p, j, cost in specials:
                    if j < 0 or j >= kp or p >= layers:
                        continue
                    target = f_new if which == "F" else c_new
                    if which == "F" and p == 0 and f_wo_tight is None:
                        f_wo_tight = f_new[:, 0, :].copy()
                    better = cost < target[:, p, j]
                    target[:, p, j] = np.where(better, cost, target[:, p, j])
                    dec.special[(which, i, p, j)] = better
            for role, sel in keep.get(i, ()):
                kept_f[role, sel], kept_c[role, sel] = f_all[b][sel], c_all[cb][sel]
        back_tight = np.full(rows, inf)
        tight_at = n_row - bm + 1
        has = np.flatnonzero((db > 0) & (tight_at >= 1))
        if len(has):
            t = tight_at[has]
            back_tight[has] = (
                rate[has, t] * (g - db[has]) + (prefix[has, n_row[has]] - prefix[has, t]) + back[has]
            )
        self._dec = dec
        ends = _Ends(kept_f, kept_c, part, prefix, back, back_tight, tight_front)
        out = []
        for u, r0 in zip(self.units, self.first, strict=False):
            w = u.window
            best: tuple[float, int, _Run, list[tuple[int, int]], tuple[str, int, int, int] | None] | None = (
                None
            )
            for q, run in enumerate(w.runs):
                r = r0 + q
                for total, pieces, state in self._finals(w, r, run, ends):
                    if best is None or total < best[0]:
                        best = (total, r, run, pieces, state)
            if best is None:  # pragma: no cover - d <= the window, so some schedule fits
                raise AssertionError("no schedule fits the window")
            total, r, run, pieces, state = best
            out.append((total, pieces + (self._trace(w, r, run, *state) if state else [])))
        return out

    def _finals(self, w: _Window, r: int, run: _Run, ends: _Ends) -> list[_End]:
        """Every way run `run` of row r (in window w) may end: its cost, the pieces after the
        programme's last point, and the programme's state they follow (None: no state)."""
        g, n, bm = w.g, w.n, w.bm
        part, prefix, back, back_tight = ends.part, ends.prefix, ends.back, ends.back_tight
        p = 1 if run.f else 0
        j = run.j
        out: list[_End] = []
        f_n, c_n = ends.f[0], ends.c[0]  # at point n

        def add(cost: float, pieces: list[tuple[int, int]], state: tuple[str, int, int, int] | None) -> None:
            if math.isfinite(cost):
                out.append((cost, pieces, state))

        if 0 <= j <= w.k:
            if run.be:
                add(float(c_n[r, p, j] + back[r]), [(w.H, w.hi)], ("C", n, p, j))
                jj = j - (bm - 1)
                if run.f and w.db + run.f >= g and jj >= 0 and n - bm + 1 >= 0:
                    f_src = ends.f[1]  # at point n - M + 1
                    start = w.H - (bm - 1) * g - run.f
                    cost = (
                        f_src[r, 0, jj]
                        + part[r, n - bm + 1]
                        + back[r]
                        + (prefix[r, n] - prefix[r, n - bm + 1])
                    )
                    add(float(cost), [(start, w.hi)], ("F", n - bm + 1, 0, jj))
            else:
                state = ("F", n, p, j) if f_n[r, p, j] <= c_n[r, p, j] else ("C", n, p, j)
                add(float(min(f_n[r, p, j], c_n[r, p, j])), [], state)
                if run.f and run.f <= w.db:
                    add(float(c_n[r, 0, j] + part[r, n + 1]), [(w.H, w.H + run.f)], ("C", n, 0, j))
        jt = j - bm
        if not run.be and w.db and 0 <= jt <= w.k and n - bm >= 0:
            f_t, c_t = ends.f[2], ends.c[2]  # at point n - M
            piece = [(w.hi - w.m, w.hi)]
            state = ("F", n - bm, p, jt) if f_t[r, p, jt] <= c_t[r, p, jt] else ("C", n - bm, p, jt)
            add(float(min(f_t[r, p, jt], c_t[r, p, jt]) + back_tight[r]), piece, state)
            if run.f and run.f <= w.db:
                at = w.L + (n - bm) * g
                cost = c_t[r, 0, jt] + part[r, n - bm + 1] + back_tight[r]
                add(float(cost), [*piece, (at, at + run.f)], ("C", n - bm, 0, jt))
        if (
            not run.fe
            and not run.be
            and run.f == 0
            and w.d == 2 * w.m
            and w.db
            and n - bm < bm
            and w.lo + w.m <= w.hi - w.m
        ):  # the two tight chunks share a slot: the programme's points do not see both
            add(
                float(ends.tight_front[r] + back_tight[r]),
                [(w.lo, w.lo + w.m), (w.hi - w.m, w.hi)],
                None,
            )
        return out

    def _trace(
        self, w: _Window, r: int, run: _Run, which: str, i: int, p: int, j: int
    ) -> list[tuple[int, int]]:
        """The pieces of the state (which, i, p, j) of row r, from the stored decisions (checked in
        the reverse of the order they were made in)."""
        dec = self._dec
        g, bm, lo, big_l = self.g, self.bm, w.lo, w.L
        pieces: list[tuple[int, int]] = []
        use_wo = False  # F at point M as the part slot after it saw it: without the tight front
        while True:
            special = dec.special.get((which, i, p, j))
            if special is not None and bool(special[r]) and not use_wo:
                if which == "C":  # the front piece then M whole slots
                    pieces.append((lo, big_l + bm * g))
                elif p == 0:  # the tight front
                    pieces.append((lo, lo + w.m))
                else:  # the front piece, M - 1 whole slots, the part slot
                    pieces.append((lo, big_l + (bm - 1) * g + run.f))
                return pieces
            use_wo = False
            if which == "F":
                if i == 0:
                    return pieces
                if p == 1 and dec.f_part[i][r, j]:
                    at = big_l + (i - 1) * g
                    pieces.append((at, at + run.f))
                    which, i, p = "C", i - 1, 0
                elif dec.f_from_c[i][r, p, j]:
                    which, i = "C", i - 1
                else:
                    i -= 1
            elif p == 1 and dec.new_part(i, r, j):
                start = big_l + (i - bm) * g
                pieces.append((start - run.f, big_l + i * g))
                use_wo = i - bm == bm and run.f > w.da
                which, i, j, p = "F", i - bm, j - bm, 0
            elif dec.new(i, r, p, j):
                pieces.append((big_l + (i - bm) * g, big_l + i * g))
                which, i, j = "F", i - bm, j - bm
            else:
                pieces.append((big_l + (i - 1) * g, big_l + i * g))
                i, j = i - 1, j - 1


@dataclass(frozen=True, slots=True)
class _Ends:
    """What a programme's rows end from: F and C at each row's points n, n - M + 1 and n - M, the
    part slot's and prefix costs, the back piece, the tight back and front chunks."""

    f: FloatArray
    c: FloatArray
    part: FloatArray
    prefix: FloatArray
    back: FloatArray
    back_tight: FloatArray
    tight_front: FloatArray


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
