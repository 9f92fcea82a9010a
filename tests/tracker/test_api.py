"""The Python API: `carbonshift.track` as a context manager and a decorator; `import carbonshift`
stays cheap."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import carbonshift
from carbonshift.tracker.report import TrackReport

from . import helpers
from .helpers import PY


def burn(seconds: float) -> None:
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass


def test_context_manager_gives_a_report_of_this_process(tmp_path: Path) -> None:
    with carbonshift.track(settings=helpers.settings(tmp_path), label="notebook-cell") as run:
        burn(0.3)
    report = run.report
    assert isinstance(report, TrackReport)
    assert report.command == ["notebook-cell"] and report.exit_code == 0
    assert report.energy_kwh > 0 and report.kg_co2e == pytest.approx(report.energy_kwh * 200 / 1000)
    assert report.attribution["job_cpu_s"] == pytest.approx(0.3, abs=0.1)
    written = json.loads((tmp_path / "data" / "runs" / f"{report.run_id}.json").read_text())
    assert written["run_id"] == report.run_id


def test_decorator_tracks_each_call_and_keeps_the_latest_report(tmp_path: Path) -> None:
    tracker = carbonshift.track(settings=helpers.settings(tmp_path), write_outputs=False)

    @tracker
    def train(n: int) -> int:
        burn(0.05)
        return n * 2

    assert train(21) == 42
    first = train.report  # type: ignore[attr-defined]
    assert first is not None and first.command[0].endswith("train") and tracker.report is first
    train(1)
    assert train.report.run_id != first.run_id  # type: ignore[attr-defined]


def test_an_exception_is_still_reported_and_then_raised(tmp_path: Path) -> None:
    run = carbonshift.track(settings=helpers.settings(tmp_path), write_outputs=False)
    with pytest.raises(ZeroDivisionError), run:
        _ = 1 / 0
    assert run.report is not None and run.report.exit_code == 1


def test_import_carbonshift_does_not_load_the_tracker() -> None:
    code = (
        "import sys, carbonshift\n"
        "heavy = [m for m in ('psutil', 'numpy', 'carbonshift.tracker.tracker') if m in sys.modules]\n"
        "print(heavy); assert callable(carbonshift.track)\n"
    )
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
