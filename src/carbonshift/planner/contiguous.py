"""The exact best start time of a contiguous job on piecewise-constant intensity series: the planner's
one search, used by `plan()` (one window) and `plan_batch()` (many windows of one duration at once).

With C(t) the integral of intensity from a block's first edge to t, the emissions of a run starting
at t are F(t) = C(t + d) - C(t). C is piecewise linear with breakpoints at the edges, so F is
piecewise linear with breakpoints where t or t + d meets an edge. A piecewise-linear function on an
interval takes its minimum at an end or at a breakpoint, so evaluating F at

    earliest, latest start, every edge e in [earliest, latest], every e - d in [earliest, latest]

finds the exact minimum over all real start times, with no grid. `Starts` lists those breakpoints
once per block of series sharing edges and per duration (on a regular grid, shifted slices instead of
gathers); each window then reads F at its own slice of them. Edges, earliest, latest and d are integer
seconds, so every candidate is a whole second too. A run inside one interval has F = value x d,
rounded once, so runs inside a flat stretch tie exactly.

Ties (`tie_limit`, the planner's one tie rule) go to the earliest start: every candidate within a
tolerance of the minimum counts as a minimum. The tolerance is TIE_RTOL = 1e-9 of |C| over the
window (plus |min F|), far above float rounding in C (about n * 2e-16 relative) and far below any
difference worth moving a job for. A flat series therefore starts at earliest.

Many windows of one duration over the same blocks (a batch) use `StartTable`: a sparse table of range
minima over F at every candidate start of every row, so each window's minimum is two look-ups and its
earliest near-minimum a descent of one look-up per power of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TIE_RTOL = 1e-9


def tie_limit(f_min: FloatArray, scale: FloatArray) -> FloatArray:
    """The largest cost that ties with the least one, `f_min`: within TIE_RTOL of |scale| (the
    integral over the window, or a cost's magnitude) plus |f_min|. Every search of the planner uses it."""
    return np.asarray(f_min + (TIE_RTOL * (np.abs(scale) + np.abs(f_min)) + 1e-300), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BestStarts:
    """Per series: the best start, the mean intensity of that run, and the mean of a run at earliest
    (the usual baseline, free here because earliest is always a candidate)."""

    start_s: IntArray
    mean_g_per_kwh: FloatArray
    earliest_mean_g_per_kwh: FloatArray


@dataclass(frozen=True, slots=True)
class Block:
    """Series sharing one set of edges: C at each edge (rows, n + 1) and the values (rows, n)."""

    edges: IntArray
    n: int
    step: int  # > 0: every interval is this long
    cum: FloatArray
    values: FloatArray

    @classmethod
    def of(cls, edges: IntArray, values: FloatArray, *, regular: bool = True) -> Block:
        """The block of `values` (rows, n) on `edges`; NaN must already be replaced or refused."""
        n = len(edges) - 1
        steps = np.diff(edges)
        step = int(steps[0]) if regular and n >= 1 and bool((steps == steps[0]).all()) else 0
        return cls(edges, n, step, cumulative(edges, values), values)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True, slots=True)
class Starts:
    """A block's candidate starts for one duration d: T, and where T and T + d fall among the edges
    (C(t) = cum[k] + values[v] * o). `on_edges`: every T and T + d is an edge (a regular grid and d a
    whole number of steps). `one`: the run lies inside one interval (F = value x d)."""

    t: IntArray
    k0: IntArray
    v0: IntArray
    o0: FloatArray
    k1: IntArray
    v1: IntArray
    o1: FloatArray
    on_edges: bool
    d: int
    one: BoolArray

    @classmethod
    def of(cls, g: Block, d: int) -> Starts:
        """Every start where the optimum can lie, over the whole block: the edges and the edges minus
        d, inside [first edge, last edge - d]."""
        edges, n = g.edges, g.n
        if g.step:
            w = g.step
            q, r = divmod(d, w)
            if r == 0:  # the two families coincide, on edges
                m = max(n - q + 1, 0)
                k0 = np.arange(m, dtype=np.int64)
                zero = np.zeros(m)
                k1 = k0 + q
                one = np.full(m, q == 1)
                v0, v1 = np.minimum(k0, n - 1), np.minimum(k1, n - 1)
                return cls(edges[:m], k0, v0, zero, k1, v1, zero, True, d, one)
            # runs starting on edge i, and runs ending on edge i + q + 1 (starting at edge i + w - r),
            # interleaved in time order
            m = max(n - q, 0)
            i = np.arange(m, dtype=np.int64)
            t = np.empty(2 * m, dtype=np.int64)
            t[0::2] = edges[:m]
            t[1::2] = edges[:m] + (w - r)
            k0 = np.repeat(i, 2)
            o0 = np.zeros(2 * m)
            o0[1::2] = w - r
            k1 = np.empty(2 * m, dtype=np.int64)
            k1[0::2] = i + q
            k1[1::2] = i + q + 1
            o1 = np.zeros(2 * m)
            o1[0::2] = r
            one = np.full(2 * m, q == 0)
            return cls(t, k0, np.minimum(k0, n - 1), o0, k1, np.minimum(k1, n - 1), o1, False, d, one)
        t = np.unique(np.concatenate((edges, edges - d)))
        t = t[(t >= edges[0]) & (t <= edges[-1] - d)]
        k0, v0, o0 = locate(edges, n, t)
        k1, v1, o1 = locate(edges, n, t + d)
        one = t + d <= edges[np.minimum(k0 + 1, n)]
        return cls(t, k0, v0, o0, k1, v1, o1, False, d, one)

    def f_rows(self, g: Block, out: FloatArray) -> None:
        """F = C(T + d) - C(T) for every row of the block, into `out` (rows, len(T))."""
        if not len(self.t):
            return
        out[:] = self.window(g, None, 0, len(self.t) - 1)

    def window(self, g: Block, local: IntArray | None, a: int, b: int) -> FloatArray:
        """F at starts a..b for some rows of the block (None: every row)."""
        values = g.values if local is None else g.values[local]
        cols = slice(a, b + 1)
        one = self.one[cols]
        if one.all():
            return np.asarray(values[:, self.v0[cols]] * float(self.d), dtype=np.float64)
        cum = g.cum if local is None else g.cum[local]
        if self.on_edges:  # k0 and k1 run in steps of one: slices
            k0, k1 = int(self.k0[a]), int(self.k1[a])
            width = b - a + 1
            f = np.asarray(cum[:, k1 : k1 + width] - cum[:, k0 : k0 + width], dtype=np.float64)
        else:
            c1 = cum[:, self.k1[cols]] + values[:, self.v1[cols]] * self.o1[cols]
            c0 = cum[:, self.k0[cols]] + values[:, self.v0[cols]] * self.o0[cols]
            f = np.asarray(c1 - c0, dtype=np.float64)
        if one.any():
            f[:, one] = values[:, self.v0[cols][one]] * float(self.d)
        return f

    def span(self, lo: IntArray, latest: IntArray) -> tuple[IntArray, IntArray]:
        """Indices a..b of the candidates inside [lo, latest] (b < a where there is none)."""
        a = np.searchsorted(self.t, lo, side="left")
        b = np.searchsorted(self.t, latest, side="right") - 1
        return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def window_search(
    g: Block,
    st: Starts,
    local: IntArray | None,
    a: int,
    b: int,
    f_lo: FloatArray,
    f_last: FloatArray,
    scale: FloatArray,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """One window, some rows: each row's tie limit and its earliest candidate start in a..b within it
    (-1: none) with that start's F. `f_lo`, `f_last`: F at earliest and at the latest start."""
    f_min = np.minimum(f_lo, f_last)
    found_t = np.full(len(f_lo), -1, dtype=np.int64)
    found_f = np.zeros(len(f_lo))
    if b < a:
        return tie_limit(f_min, scale), found_t, found_f
    f = st.window(g, local, a, b)
    limit = tie_limit(np.minimum(f_min, f.min(axis=1)), scale)
    ok = f <= limit[:, None]
    first = ok.argmax(axis=1)
    r = np.arange(len(first))
    found_t = np.where(ok[r, first], st.t[a + first], -1)
    return limit, found_t, f[r, first]


def choose(
    lo: IntArray,
    latest: IntArray,
    f_lo: FloatArray,
    f_last: FloatArray,
    limit: FloatArray,
    found_t: IntArray,
    found_f: FloatArray,
) -> tuple[IntArray, FloatArray]:
    """The earliest start within the tie limit: earliest itself, else the candidate found, else the
    latest start (whose F is then the minimum). Returns (start, F)."""
    at_lo = f_lo <= limit
    use_found = ~at_lo & (found_t >= 0)
    start = np.where(at_lo, lo, np.where(use_found, found_t, latest))
    return np.asarray(start, dtype=np.int64), np.where(at_lo, f_lo, np.where(use_found, found_f, f_last))


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


def best_starts_in_window(
    e: IntArray, v: FloatArray, lo: int, hi: int, d: int, *, regular: bool = True
) -> BestStarts:
    """`best_starts` on edges and values already cut and checked by `window_slice` (callers that
    slice once for several purposes skip a second pass over the data). `regular=False` lists the
    candidates by the general rule even on a regular grid (to test one against the other)."""
    g = Block.of(e, v, regular=regular)
    st = Starts.of(g, d)
    ends = np.array([lo, hi], dtype=np.int64)
    f_lo, f_last = run_f(g, ends, d).T
    a, b = st.span(ends[:1], ends[1:])
    scale = g.cum[:, -1]
    limit, found_t, found_f = window_search(g, st, None, int(a[0]), int(b[0]), f_lo, f_last, scale)
    start, f = choose(ends[0], ends[1], f_lo, f_last, limit, found_t, found_f)
    return BestStarts(start_s=start, mean_g_per_kwh=f / d, earliest_mean_g_per_kwh=f_lo / d)


def _best_general(e: IntArray, v: FloatArray, lo: int, hi: int, d: int) -> BestStarts:
    return best_starts_in_window(e, v, lo, hi, d, regular=False)


def run_f(g: Block, t_s: IntArray, d: int) -> FloatArray:
    """F of runs of `d` starting at each t (rows, len(t)), as `Starts` computes it."""
    k0, v0, o0 = locate(g.edges, g.n, t_s)
    k1, v1, o1 = locate(g.edges, g.n, t_s + d)
    f = (g.cum[:, k1] + g.values[:, v1] * o1) - (g.cum[:, k0] + g.values[:, v0] * o0)
    one = t_s + d <= g.edges[np.minimum(k0 + 1, g.n)]
    if one.any():
        f[:, one] = g.values[:, v0[one]] * float(d)
    return np.asarray(f, dtype=np.float64)


def locate(edges: IntArray, n: int, t: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
    """For C(t) = C[k] + V[v] * o: the edge at or before each t, its value index and the offset."""
    k = np.searchsorted(edges, t, side="right") - 1
    np.clip(k, 0, n, out=k)
    return k, np.minimum(k, n - 1), (t - edges[k]).astype(np.float64)


class StartTable:
    """Range minima of F over the candidate starts of every row of several blocks (one duration),
    laid end to end: level j holds min(F[i : i + 2**j]) at levels[j] + i (a block of values may run
    across rows: queries only read blocks inside one row's window)."""

    def __init__(self, parts: list[tuple[Block, Starts]], top: int) -> None:
        self.parts = parts
        self.top = top
        widths = [len(st.t) for _, st in parts]
        sizes = [g.rows * m for (g, _), m in zip(parts, widths, strict=True)]
        self.width = np.array(widths, dtype=np.int64)
        self.base = np.zeros(len(parts), dtype=np.int64)  # where each part's rows begin
        self.t_off = np.zeros(len(parts), dtype=np.int64)  # where each part's T begin in t_cat
        if parts:
            self.base[1:] = np.cumsum(sizes[:-1])
            self.t_off[1:] = np.cumsum(widths[:-1])
        self.t_cat = np.concatenate([st.t for _, st in parts]) if parts else np.zeros(0, dtype=np.int64)
        size = sum(sizes)
        lens = [size - (1 << j) + 1 for j in range(top + 1)]
        self.levels = np.zeros(top + 1, dtype=np.int64)
        self.levels[1:] = np.cumsum(lens[:-1])
        self.table = np.empty(int(sum(lens)))
        for (g, st), base, m in zip(parts, self.base.tolist(), widths, strict=True):
            st.f_rows(g, self.table[base : base + g.rows * m].reshape(g.rows, m))
        for j in range(1, top + 1):
            h = 1 << (j - 1)
            prev = self.table[self.levels[j - 1] : self.levels[j - 1] + lens[j - 1]]
            np.minimum(prev[:-h], prev[h:], out=self.table[self.levels[j] : self.levels[j] + lens[j]])

    @staticmethod
    def size(parts: list[tuple[Block, Starts]]) -> int:
        return sum(g.rows * len(st.t) for g, st in parts)

    def search(
        self,
        part: IntArray,
        local: IntArray,
        a_loc: IntArray,
        length: IntArray,
        f_lo: FloatArray,
        f_last: FloatArray,
        scale: FloatArray,
    ) -> tuple[FloatArray, IntArray, FloatArray]:
        """`window_search` for many windows at once: row `local` of part `part`, candidates a_loc ..
        a_loc + length - 1."""
        table, levels = self.table, self.levels
        row_base = self.base[part] + local * self.width[part]
        a = row_base + a_loc
        b = a + length - 1
        some = length > 0
        lg = np.frexp(np.maximum(length, 1))[1] - 1
        a_c, b_c = np.where(some, a, 0), np.where(some, b - (1 << lg) + 1, 0)
        r_min = np.minimum(table[levels[lg] + a_c], table[levels[lg] + b_c])
        f_min = np.minimum(f_lo, f_last)
        f_min = np.where(some, np.minimum(f_min, r_min), f_min)
        limit = tie_limit(f_min, scale)
        found_t = np.full(len(part), -1, dtype=np.int64)
        found_f = np.zeros(len(part))
        need = np.flatnonzero(some & (f_lo > limit))  # an earliest start that ties needs no search
        if len(need):
            p = self._first_at_most(a[need], b[need], limit[need])
            hit = p <= b[need]
            idx, ph = need[hit], p[hit]
            found_f[idx] = table[ph]
            found_t[idx] = self.t_cat[self.t_off[part[idx]] + (ph - row_base[idx])]
        return limit, found_t, found_f

    def _first_at_most(self, a: IntArray, b: IntArray, limit: FloatArray) -> IntArray:
        """The first i in [a, b] with F[i] <= limit (b + 1 where none): from a, skip every block of
        2**j values that all exceed the limit, largest blocks first."""
        p = a.copy()
        for j in range(self.top, -1, -1):
            h = 1 << j
            fits = p + (h - 1) <= b
            if not fits.any():
                continue
            at = self.table[self.levels[j] + np.where(fits, p, 0)]
            p += np.where(fits & (at > limit), h, 0)
        return p


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
    k, v, o = locate(edges, values.shape[1], t_s)
    return np.asarray(cum[:, k] + values[:, v] * o, dtype=np.float64)


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
    at = integral_at(e, v, cum, np.array([start_s, end_s], dtype=np.int64))
    return np.asarray((at[:, 1] - at[:, 0]) / (end_s - start_s), dtype=np.float64)
