"""Writing a finished report: the JSON (in the output directory, and at --report when given) and the
CodeCarbon-compatible CSV row. A write that fails is a warning on the report, never a lost run: the
job has already happened, and the caller still gets the report object and the summary."""

from __future__ import annotations

import logging
from pathlib import Path

from carbonshift.config import Settings
from carbonshift.tracker import codecarbon_csv
from carbonshift.tracker.report import TrackReport

log = logging.getLogger(__name__)


def write_outputs(
    report: TrackReport, settings: Settings, output_dir: Path, report_path: Path | None
) -> None:
    ts = settings.tracker
    targets: list[Path] = [output_dir / f"{report.run_id}.json"]
    if report_path is not None:
        targets.append(report_path)
    for target in targets:
        try:
            report.paths["report"] = str(report.write_json(target))
        except OSError as exc:
            _failed(report, f"could not write the report to {target}: {exc.strerror or exc}")
    if ts.codecarbon_csv:
        csv_path = output_dir / "emissions.csv"
        try:
            report.paths["emissions_csv"] = str(
                codecarbon_csv.append(csv_path, codecarbon_csv.row(report, ts.project_name))
            )
        except OSError as exc:
            _failed(report, f"could not append to {csv_path}: {exc.strerror or exc}")


def _failed(report: TrackReport, message: str) -> None:
    log.warning(message)
    report.warnings.append(message)
