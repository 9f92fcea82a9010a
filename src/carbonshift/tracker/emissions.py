"""Charging each interval's energy at the grid intensity of its own time.

The series is piecewise constant; its integral is piecewise linear, so the exact time-weighted mean
over any [t0, t1) is a difference of two linear interpolations of the cumulative integral. That is
done for all intervals at once (numpy), whatever their length and however the series' steps fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.types import GridZone, IntensitySeries, Signal, TimeSpan

FloatArray = npt.NDArray[np.float64]


def covering_span(t0: float, t1: float) -> TimeSpan:
    """Whole seconds covering [t0, t1), at least one second long (series edges are whole seconds)."""
    start = math.floor(t0)
    end = max(math.ceil(t1), start + 1)
    return TimeSpan.from_epoch(start, end)


def fetch_series(
    service: IntensityService, zone: GridZone, t0: float, t1: float, signal: Signal
) -> IntensitySeries:
    return service.series(zone, covering_span(t0, t1), signal)


def _cumulative(series: IntensitySeries, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    edges = series.edges_s.astype(np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.diff(edges) * values)])
    return edges, cum


def interval_means(series: IntensitySeries, t0: FloatArray, t1: FloatArray) -> FloatArray:
    """The exact time-weighted mean g/kWh over each [t0[i], t1[i]) (a zero-length interval takes the
    value at its instant)."""
    edges, cum = _cumulative(series, series.values)
    width = t1 - t0
    at_instant = series.values[np.clip(np.searchsorted(edges, t0, side="right") - 1, 0, len(series) - 1)]
    safe = np.where(width > 0, width, 1.0)
    means = (np.interp(t1, edges, cum) - np.interp(t0, edges, cum)) / safe
    return np.where(width > 0, means, at_instant)


@dataclass(frozen=True)
class Charged:
    kg_co2e: float
    mean_g_per_kwh: float  # energy-weighted; the time-weighted mean when no energy was used
    g_per_kwh: FloatArray  # per interval
    sources: list[dict[str, Any]]  # each provenance with its share of the energy


def charge(series: IntensitySeries, t0: FloatArray, t1: FloatArray, kwh: FloatArray) -> Charged:
    """Sum of interval energy x the intensity over that interval."""
    g = interval_means(series, t0, t1)
    grams = float(np.dot(kwh, g))
    total = float(kwh.sum())
    durations = t1 - t0
    if total > 0:
        mean = grams / total
    elif durations.sum() > 0:
        mean = float(np.dot(durations, g) / durations.sum())
    else:
        mean = float(g[0]) if len(g) else float(series.values[0])
    weights = kwh if total > 0 else durations
    weight_sum = float(weights.sum())
    sources: list[dict[str, Any]] = []
    for i, prov in enumerate(series.provenances):
        indicator = (series.prov_index == i).astype(np.float64)
        if not indicator.any():
            continue
        edges, cum = _cumulative(series, indicator)
        width = np.where(t1 - t0 > 0, t1 - t0, 1.0)
        frac = (np.interp(t1, edges, cum) - np.interp(t0, edges, cum)) / width
        share = float(np.dot(weights, frac) / weight_sum) if weight_sum > 0 else 0.0
        if share <= 0 and weight_sum > 0:
            continue
        sources.append({**prov.to_dict(), "share": round(share, 4)})
    sources.sort(key=lambda s: -float(s["share"]))
    return Charged(grams / 1000.0, mean, g, sources)
