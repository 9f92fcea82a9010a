"""Small builders shared by the planner tests: a region-like dataclass, series, independent integrals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from carbonshift.intensity.types import IntensitySeries, Kind, Provenance, Signal

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
T0_S = int(T0.timestamp())


@dataclass(frozen=True)
class Reg:
    provider: str
    region: str
    zone: str = "Z"
    country: str | None = "DE"
    pue: float | None = 1.1


def prov(source: str = "test", kind: Kind = Kind.FORECAST, signal: Signal = Signal.AVERAGE) -> Provenance:
    return Provenance(source, signal, kind, T0)


def series(
    edges_s: Sequence[int],
    values: Sequence[float],
    *,
    zone: str = "Z",
    kind: Kind = Kind.FORECAST,
    signal: Signal = Signal.AVERAGE,
    provenances: Sequence[Provenance] | None = None,
    prov_index: Sequence[int] | None = None,
) -> IntensitySeries:
    n = len(values)
    provs = tuple(provenances) if provenances is not None else (prov(kind=kind, signal=signal),)
    idx = np.asarray(prov_index if prov_index is not None else [0] * n, dtype=np.int32)
    return IntensitySeries(
        zone, signal, np.asarray(edges_s, dtype=np.int64), np.asarray(values, dtype=np.float64), idx, provs
    )


def hourly(values: Sequence[float], *, start_s: int = T0_S, **kw: object) -> IntensitySeries:
    edges = start_s + 3600 * np.arange(len(values) + 1)
    return series(edges.tolist(), values, **kw)  # type: ignore[arg-type]


def emissions(edges: Sequence[int], values: Sequence[float], a: int, b: int) -> float:
    """Integral of a piecewise-constant series over [a, b), by plain loops (independent of numpy)."""
    total = 0.0
    for i in range(len(values)):
        overlap = min(b, edges[i + 1]) - max(a, edges[i])
        if overlap > 0:
            total += overlap * values[i]
    return total


def fine_grid_best(edges: list[int], values: list[float], lo: int, hi: int, d: int, m: int, u: int) -> float:
    """Least emissions over every schedule whose chunk ends lie on lo + u*Z (u dividing the window,
    the duration, min_chunk and every edge's offset from lo: the optimum then lies on that grid).
    A plain dynamic programme over every u-second slot, as enumeration would find it, without
    the planner's slot grid, front and back pieces or part slot."""
    m = min(m, d)
    n, k, big_m = (hi - lo) // u, d // u, m // u
    idx = np.searchsorted(np.asarray(edges), lo + u * np.arange(n), side="right") - 1
    cost = np.asarray(values, dtype=np.float64)[idx] * u
    prefix = np.concatenate(([0.0], np.cumsum(cost)))
    ring = np.full((big_m + 1, k + 1), math.inf)  # F at the last big_m + 1 points
    f = np.full(k + 1, math.inf)
    f[0] = 0.0
    ring[0] = f
    g = np.full(k + 1, math.inf)  # a chunk of at least big_m slots ends here
    for i in range(1, n + 1):
        g_next = np.full(k + 1, math.inf)
        g_next[1:] = g[:-1] + cost[i - 1]
        if i >= big_m:
            np.minimum(
                g_next[big_m:],
                ring[(i - big_m) % (big_m + 1)][: k + 1 - big_m] + (prefix[i] - prefix[i - big_m]),
                out=g_next[big_m:],
            )
        f = np.minimum(f, g)
        ring[i % (big_m + 1)] = f
        g = g_next
    return float(min(f[k], g[k]))
