"""Small builders shared by the planner tests: a region-like dataclass, series, independent integrals."""

from __future__ import annotations

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
