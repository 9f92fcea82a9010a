"""Outputs: the CodeCarbon-compatible CSV (columns, concurrent appends), Prometheus metrics, and no
secrets in what is written."""

from __future__ import annotations

import csv
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from carbonshift.tracker import codecarbon_csv
from carbonshift.tracker.report import redact_argv
from carbonshift.tracker.sources.base import Component
from carbonshift.tracker.tracker import Tracker

from . import helpers
from .helpers import PY, ConstantSource

# the header CodeCarbon 3.3.2 writes (codecarbon.output_methods.emissions_data.EmissionsData)
CODECARBON_HEADER = (
    "timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,"
    "ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,water_consumed,country_name,"
    "country_iso_code,region,cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,"
    "cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,tracking_mode,"
    "cpu_utilization_percent,gpu_utilization_percent,ram_utilization_percent,ram_used_gb,on_cloud,pue,wue"
)


def tracked(tmp_path: Path, **tracker: object) -> Tracker:
    settings = helpers.settings(tmp_path, attribution="machine", pue=1.2, **tracker)
    t = Tracker(
        settings,
        zone="DE",
        command=["train.py"],
        pid=os.getpid(),
        sources=[ConstantSource(Component.CPU, 20.0), ConstantSource(Component.RAM, 4.0)],
    )
    t.start()
    time.sleep(0.15)
    return t


def test_csv_has_codecarbons_columns_and_our_numbers(tmp_path: Path) -> None:
    report = tracked(tmp_path).stop(0)
    path = tmp_path / "data" / "runs" / "emissions.csv"
    assert path.read_text().splitlines()[0] == CODECARBON_HEADER
    (row,) = list(csv.DictReader(path.open()))
    assert row["run_id"] == report.run_id and row["project_name"] == "carbonshift"
    assert float(row["energy_consumed"]) == pytest.approx(report.energy_kwh)
    assert float(row["cpu_energy"]) + float(row["ram_energy"]) + float(row["gpu_energy"]) == pytest.approx(
        report.energy_kwh
    )
    assert float(row["emissions"]) == pytest.approx(report.kg_co2e)
    assert float(row["emissions_rate"]) == pytest.approx(report.kg_co2e / report.duration_s)  # type: ignore[operator]
    assert float(row["cpu_power"]) == pytest.approx(20.0 * 1.2)  # W with the PUE, as CodeCarbon does
    assert (row["country_name"], row["country_iso_code"], row["region"]) == ("Germany", "DEU", "DE")
    assert row["pue"] == "1.2" and row["tracking_mode"] == "machine" and row["on_cloud"] == "N"
    assert row["codecarbon_version"] == "" and row["experiment_id"] == "" and row["water_consumed"] == ""
    assert float(row["duration"]) == pytest.approx(report.duration_s)


def test_ram_total_size_is_in_gib_as_codecarbon_writes_it(tmp_path: Path) -> None:
    report = tracked(tmp_path).stop(0)
    report.host["ram_total_gb"] = 68.719  # 64 GiB in decimal GB, as the report keeps it
    assert codecarbon_csv.row(report, "p")["ram_total_size"] == "64.0"


def test_a_file_with_another_header_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    path.write_text("timestamp,project_name,run_id\nold,row,1\n")
    written = codecarbon_csv.append(path, {"run_id": "x"})
    assert path.read_text() == "timestamp,project_name,run_id\nold,row,1\n"
    assert written.name == "emissions.carbonshift.csv"
    assert written.read_text().splitlines()[0] == CODECARBON_HEADER


APPENDER = """
import sys
from pathlib import Path
from carbonshift.tracker import codecarbon_csv
for i in range(50):
    codecarbon_csv.append(Path(sys.argv[1]), {"run_id": f"{sys.argv[2]}-{i}", "project_name": "p" * 200})
"""


def test_concurrent_appends_from_processes_keep_one_header_and_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "emissions.csv"
    procs = [subprocess.Popen([PY, "-c", APPENDER, str(path), str(n)]) for n in range(4)]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 200 and len({r["run_id"] for r in rows}) == 200
    assert path.read_text().count("timestamp,project_name") == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_redaction_masks_likely_secrets() -> None:
    argv = [
        "train",
        "--api-key",
        "abc",
        "--token=xyz",
        "PASSWORD=hunter2",
        "https://bob:pw@example.com/x",
        "--epochs",
        "3",
    ]
    assert redact_argv(argv) == [
        "train",
        "--api-key",
        "***",
        "--token=***",
        "PASSWORD=***",
        "https://***@example.com/x",
        "--epochs",
        "3",
    ]


def test_prometheus_file_and_loopback_endpoint(tmp_path: Path) -> None:
    prom = tmp_path / "metrics" / "carbonshift.prom"
    t = tracked(tmp_path, prometheus_file=prom, prometheus_port=0)
    assert t.metrics_port
    body = urllib.request.urlopen(f"http://127.0.0.1:{t.metrics_port}/metrics", timeout=5).read().decode()
    assert 'carbonshift_job_energy_kwh{run_id="' in body and 'component="cpu"' in body
    assert "carbonshift_job_emissions_kg" not in body  # known only at the end
    report = t.stop(0)
    text = prom.read_text()
    assert f'run_id="{report.run_id}",job="train.py"' in text
    assert "# TYPE carbonshift_job_energy_kwh counter" in text
    line = next(x for x in text.splitlines() if x.startswith("carbonshift_job_emissions_kg"))
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(report.kg_co2e)
    assert 'zone="DE"' in line
