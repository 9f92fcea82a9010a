"""Charging interval energy at the intensity of its own time, exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from carbonshift.intensity.types import IntensitySeries, Kind, Provenance, Signal
from carbonshift.tracker.emissions import charge, covering_span, interval_means

AT = datetime(2026, 11, 24, tzinfo=UTC)
MEASURED = Provenance("meter", Signal.AVERAGE, Kind.MEASURED, AT)
STATIC = Provenance("static", Signal.AVERAGE, Kind.STATIC, AT, "fallback")


def series() -> IntensitySeries:
    # 100 g/kWh over [0, 5), 300 over [5, 20) (measured), then 50 over [20, 40) (static)
    return IntensitySeries.from_intervals(
        "Z", Signal.AVERAGE, [0, 5, 20], [5, 20, 40], [100.0, 300.0, 50.0], [MEASURED, MEASURED, STATIC]
    )


def test_interval_means_are_exact_time_weighted() -> None:
    t0 = np.array([0.0, 2.5, 10.0, 19.5, 30.0])
    t1 = np.array([10.0, 7.5, 20.0, 20.5, 30.0])
    means = interval_means(series(), t0, t1)
    assert means == pytest.approx([(5 * 100 + 5 * 300) / 10, (2.5 * 100 + 2.5 * 300) / 5, 300, 175, 50])


def test_charge_sums_interval_energy_times_intensity() -> None:
    t0 = np.array([0.0, 10.0, 20.0])
    t1 = np.array([10.0, 20.0, 40.0])
    kwh = np.array([0.002, 0.001, 0.004])
    c = charge(series(), t0, t1, kwh)
    grams = 0.002 * 200 + 0.001 * 300 + 0.004 * 50  # 0.4 + 0.3 + 0.2 g
    assert c.kg_co2e == pytest.approx(grams / 1000)
    assert c.mean_g_per_kwh == pytest.approx(grams / 0.007)
    # not one average: the same energy charged at the run's time-mean would be different
    assert c.kg_co2e != pytest.approx(0.007 * float(np.mean([200, 300, 50])) / 1000)
    shares = {s["source"]: s["share"] for s in c.sources}
    assert shares == pytest.approx({"meter": 3 / 7, "static": 4 / 7}, abs=1e-4)
    static = next(s for s in c.sources if s["source"] == "static")
    assert static["kind"] == "static" and static["note"] == "fallback"


def test_no_energy_still_gives_the_time_mean() -> None:
    c = charge(series(), np.array([0.0]), np.array([10.0]), np.array([0.0]))
    assert c.kg_co2e == 0.0 and c.mean_g_per_kwh == pytest.approx(200.0)


def test_covering_span_is_whole_seconds_and_never_empty() -> None:
    span = covering_span(100.2, 100.4)
    assert (span.start_s, span.end_s) == (100, 101)
    span = covering_span(100.2, 103.0)
    assert (span.start_s, span.end_s) == (100, 103)
