"""`carbonshift run SPEC`: planned for this machine, run under the tracker, planned against actual; a
countdown that Ctrl-C cancels with nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.helpers import REPO, run_cli

from .helpers import PY, ZONE, config_file

NOW = datetime(2026, 11, 24, 5, tzinfo=UTC)


def spec(tmp: Path, command: list[str]) -> Path:
    path = tmp / "job.yaml"
    path.write_text(
        "name: local-job\n"
        f"command: {json.dumps(command)}\n"
        "duration: 10m\n"
        "hardware: {vcpus: 2, memory_gb: 4}\n"
    )
    return path


def test_run_no_wait_runs_now_and_compares_with_the_plan(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    job = spec(tmp_path, [PY, "-c", "print('ran')"])
    result = run_cli(
        "--config", str(cfg), "run", str(job), "--no-wait", "--now", "2026-11-24T05:00Z",
        "--output-dir", str(tmp_path / "out"), tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    err = result.stderr
    assert "this machine: local:this-machine in zone TESTZONE" in err
    assert "plan: start 2026-11-24T05:00:00Z" in err
    assert "planned" in err and "actual" in err and "emissions" in err
    (path,) = (tmp_path / "out").glob("*.json")
    report = json.loads(path.read_text())
    planned = report["planned"]
    # the plan's energy by hand: (2 vCPU x 2.12 W + 4 GB x 0.392 W) x 600 s x PUE 1.56 (assumed)
    assert planned["energy_kwh"] == pytest.approx((2 * 2.12 + 4 * 0.392) * 600 * 1.56 / 3.6e6, rel=1e-6)
    assert planned["mean_g_per_kwh"] == 200.0 and planned["region"] == "local:this-machine"
    assert planned["start"] == "2026-11-24T05:00:00Z" and planned["zone"] == ZONE
    assert planned["actual"]["mean_g_per_kwh"] == 200.0
    assert planned["difference"]["energy_ratio"] < 1  # a 0.1 s job is not a 10-minute one
    assert report["exit_code"] == 0 and report["zone"] == ZONE


def test_waiting_shows_a_countdown_and_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    # dirty now, clean from 06:00: the plan waits an hour
    rows = "".join(
        f"{(NOW + timedelta(hours=h)).isoformat()},{500 if h < 1 else 100}\n" for h in range(-2, 30)
    )
    (tmp_path / "steps.csv").write_text("timestamp,g_per_kwh\n" + rows)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"ukci_enabled: false\nlocation: {ZONE}\nintensity:\n  files:\n    {ZONE}: {tmp_path / 'steps.csv'}\n"
        "cache:\n  enabled: false\ntracker:\n  detect_cloud: false\n"
    )
    marker = tmp_path / "ran"
    job = spec(tmp_path, [PY, "-c", f"open({str(marker)!r}, 'w')"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env["CARBONSHIFT_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "carbonshift", "--config", str(cfg), "run", str(job), "--now", NOW.isoformat()],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("waiting for the planned start"):
            break
    assert "plan: start 2026-11-24T06:00:00Z" in "".join(seen), seen
    assert "1:00:00 left" in seen[-1] or "0:59:59 left" in seen[-1]
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=20) == 130
    assert "cancelled before the start: nothing was run" in rest
    assert not marker.exists() and not (tmp_path / "data" / "runs").exists()


def test_run_without_a_location_plans_and_charges_an_assumed_place_and_says_how_to_give_one(
    tmp_path: Path,
) -> None:
    cfg = config_file(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"location: {ZONE}\n", ""))
    job = spec(tmp_path, [PY, "-c", "pass"])
    result = run_cli(
        "--config", str(cfg), "run", str(job), "--no-wait", "--output-dir", str(tmp_path / "out"),
        env={"TZ": "UTC"}, tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "this machine: local:this-machine in zone WORLD (assumed: world average)" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: no location given")]
    assert len(warnings) == 1 and "`location:`" in warnings[0]
    (path,) = (tmp_path / "out").glob("*.json")
    report = json.loads(path.read_text())
    assert report["kg_co2e"] is not None and report["kg_co2e"] > 0
    assert report["zone"] == "WORLD" and report["location"]["basis"] == "world-average"
    assert report["planned"]["zone"] == "WORLD" and report["planned"]["kg_co2e"] > 0


def test_run_with_a_config_location_that_is_no_place_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"location: {ZONE}\n", "location: nowhere-atlantis-9\n"))
    marker = tmp_path / "ran"
    job = spec(tmp_path, [PY, "-c", f"open({str(marker)!r}, 'w')"])
    result = run_cli("--config", str(cfg), "run", str(job), "--no-wait", tmp=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: location: ") and "nowhere-atlantis-9" in result.stderr
    assert not marker.exists()
