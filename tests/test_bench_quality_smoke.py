"""Smoke test of bench/bench_planner_quality.py on short synthetic series, so the bench cannot rot
silently. It needs none of the real data in ../shared."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from carbonshift.planner.contiguous import window_means

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_planner_quality.py"
DAY_S = 86_400
HOUR_S = 3600
JAN1 = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def bq() -> ModuleType:
    name = "bench_planner_quality"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def synthetic(bq: ModuleType, step_s: int, days: int = 12, seed: int = 0) -> object:
    """A daily cycle (evening peak, night and midday dips) plus noise, all positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY_S // step_s) * step_s
    hour = (t % DAY_S) / HOUR_S
    values = 300 + 80 * np.sin(2 * np.pi * (hour - 12) / 24) - 60 * np.exp(-(((hour - 12) / 2.5) ** 2))
    values = values + rng.normal(0, 25, len(t))
    return bq.Grid("XX", JAN1, step_s, np.clip(values, 20, None))


@pytest.mark.parametrize("step_s", [900, 1800])
def test_nightly_perfect_forecast_is_the_oracle(bq: ModuleType, step_s: int) -> None:
    grid = synthetic(bq, step_s)
    starts = JAN1 + DAY_S * np.arange(8, 11) + HOUR_S - 2 * HOUR_S  # 23:00, window to 03:30
    res = bq.run_scenario(grid, starts, 4 * HOUR_S + 1800, 1800, nominal_s=2 * HOUR_S, scenario="n")
    perfect = res.outcome("perfect")
    assert perfect.of_oracle_pct == pytest.approx(100.0, abs=1e-6)
    assert perfect.saving_pct == pytest.approx(res.oracle_saving_pct, abs=1e-9)
    assert res.oracle_saving_pct >= 0 and perfect.saving_pct >= 0
    assert res.oracle_saving_vs_nominal_pct >= 0
    assert {o.forecast for o in res.outcomes} == {"perfect", "profile", "persistence"}
    assert all(np.isfinite(o.saving_pct) and np.isfinite(o.of_oracle_pct) for o in res.outcomes)


@pytest.mark.parametrize("step_s", [900, 1800])
def test_ml_perfect_forecast_is_the_oracle(bq: ModuleType, step_s: int) -> None:
    grid = synthetic(bq, step_s, seed=1)
    starts = JAN1 + DAY_S * np.arange(8, 11) + 9 * HOUR_S
    cont, intr = bq.run_jobs(grid, starts, 24 * HOUR_S, 4 * HOUR_S, [("c", False), ("i", True)])
    for res in (cont, intr):
        assert res.outcome("perfect").of_oracle_pct == pytest.approx(100.0, abs=1e-6)
        assert res.oracle_saving_pct >= 0 and res.outcome("perfect").saving_pct >= 0
    assert intr.oracle_g_per_kwh <= cont.oracle_g_per_kwh + 1e-9
    assert intr.interruptible and not cont.interruptible


def test_oracle_chunked_is_a_brute_force_minimum(bq: ModuleType) -> None:
    rng = np.random.default_rng(2)
    rows = rng.uniform(10, 100, (20, 9))
    k, m = 4, 2
    got = bq.oracle_chunked(rows, k, m)
    for r, row in enumerate(rows):
        best = np.inf
        for pick in itertools.combinations(range(row.size), k):
            runs = np.split(np.array(pick), np.flatnonzero(np.diff(pick) > 1) + 1)
            if all(len(run) >= m for run in runs):
                best = min(best, float(row[list(pick)].mean()))
        assert got[r] == pytest.approx(best, rel=1e-12)
    assert np.allclose(
        bq.oracle_contiguous(rows, 3),
        np.lib.stride_tricks.sliding_window_view(rows, 3, axis=1).mean(axis=2).min(axis=1),
    )


def test_csv_to_grid_is_lossless(bq: ModuleType, tmp_path: Path) -> None:
    # 30-min steps, then 15-min steps, then a missing 15-min point: naive times, read as UTC
    times = [f"2020-01-01 00:{m:02d}:00" for m in (0, 30)]
    times += [f"2020-01-01 01:{m:02d}:00" for m in (0, 15, 30)] + [
        "2020-01-01 02:00:00",
        "2020-01-01 02:15:00",
    ]
    values = [100.0, 200.0, 50.0, 70.0, 90.0, 60.0, 80.0]
    path = tmp_path / "xx_ci.csv"
    path.write_text(
        "Time,Carbon Intensity\n" + "".join(f"{t},{v}\n" for t, v in zip(times, values, strict=True))
    )
    raw = bq.read_csv(path, "XX")
    assert int(raw.times_s[0]) == JAN1
    grid = bq.to_grid(raw)
    assert grid.step_s == 900 and grid.t0_s == JAN1
    assert grid.values.tolist() == [100, 100, 200, 200, 50, 70, 90, 90, 60, 80]
    edges = grid.t0_s + 900 * np.arange(len(grid.values) + 1)
    for lo, hi in [(0, 2 * HOUR_S), (900, 5400), (3600, 8100)]:
        on_raw = window_means(raw.edges_s, raw.values[None, :], JAN1 + lo, JAN1 + hi)
        on_grid = window_means(edges, grid.values[None, :], JAN1 + lo, JAN1 + hi)
        assert on_grid == pytest.approx(on_raw, rel=1e-12)


def test_paper_rule(bq: ModuleType) -> None:
    t = JAN1 + 1800 * np.arange(367 * 48)
    flat = bq.Raw("XX", t, np.full(len(t), 100.0))
    assert bq.paper_method_nightly(flat, 8 * HOUR_S) == pytest.approx(0.0)
    dip = np.full(len(t), 100.0)
    dip[(t % DAY_S) == 3 * HOUR_S] = 50.0  # 03:00 is half as dear: reachable with +-2 h, not +-1 h
    assert bq.paper_method_nightly(bq.Raw("XX", t, dip), 2 * HOUR_S) == pytest.approx(50.0)
    assert bq.paper_method_nightly(bq.Raw("XX", t, dip), HOUR_S) == pytest.approx(0.0)


def test_main_without_data_says_so(
    bq: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bq.main(["--data", str(tmp_path)]) == 2
    assert "data not found" in capsys.readouterr().err
