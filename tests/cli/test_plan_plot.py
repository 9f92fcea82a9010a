"""What `plan --plot` shows, read off the figure it draws: whole-hour ticks, one line per distinct
series naming every region on it, static values labelled as annual averages, markers for now and the
deadline, y from 0 — and the PNG written through the real CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.advisor import advise
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.runtime import build_catalog, build_service

pytest.importorskip("matplotlib")
import matplotlib.dates as mdates

from carbonshift.cli.plan_plot import build_figure, tick_step_h

NOW = datetime(2026, 11, 24, 7, 23, tzinfo=UTC)  # not on a whole hour
# three regions on the German grid (one series, drawn once) and one in Sweden
REGIONS = ["aws:eu-central-1", "gcp:europe-west3", "azure:germanywestcentral", "gcp:europe-north1"]


@pytest.fixture
def figure_and_advice(tmp_path: Path) -> tuple[Any, Any]:
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    spec = parse_jobspec(
        {
            "name": "plot-me",
            "command": ["x"],
            "duration": "2h",
            "window": {"deadline": (NOW + timedelta(hours=30)).isoformat()},
            "placement": {"regions": REGIONS},
            "baseline": "aws:eu-central-1",
        }
    )
    advice = advise(
        spec, catalog=build_catalog(settings), service=build_service(settings, FixedClock(NOW)), now=NOW
    )
    fig = build_figure(advice, top=8, now=NOW)
    yield fig, advice
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_regions_on_one_grid_are_one_line_naming_each_and_static_says_annual_average(
    figure_and_advice: tuple[Any, Any],
) -> None:
    fig, _ = figure_and_advice
    (ax,) = [a for a in fig.axes if a.get_lines()]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    series_labels = [label for label in labels if label not in {"now", "deadline"}]
    assert len(series_labels) == 2  # DE once, SE once
    (german,) = [label for label in series_labels if "aws:eu-central-1" in label]
    for ref in REGIONS[:3]:
        assert ref in german
    assert "(baseline)" in german and "zone DE" in german
    assert all("annual average" in label for label in series_labels)  # offline: the static tables


def test_ticks_on_whole_hours_y_from_zero_and_now_and_deadline_marked(
    figure_and_advice: tuple[Any, Any],
) -> None:
    fig, advice = figure_and_advice
    (ax,) = [a for a in fig.axes if a.get_lines()]
    ticks = [mdates.num2date(t) for t in ax.get_xticks()]
    assert len(ticks) >= 3
    assert all(t.minute == 0 and t.second == 0 for t in ticks)
    assert ax.get_ylim()[0] == 0
    markers = {
        line.get_gid(): mdates.num2date(line.get_xdata()[0]) for line in ax.get_lines() if line.get_gid()
    }
    assert markers["now"] == NOW
    assert markers["deadline"] == advice.plan.deadline


@pytest.mark.parametrize(("hours", "step"), [(6, 1), (24, 2), (30, 3), (72, 6), (24 * 7, 24)])
def test_tick_step_keeps_a_dozen_ticks_at_most(hours: int, step: int) -> None:
    assert tick_step_h(hours * 3600) == step
