"""`carbonshift launch` keeps the spec's rules although it skips planning (placement, data residency,
hardware offering; `--force` overrides a placement rule), and launches on Slurm and Kubernetes clusters
too — through the real CLI in a subprocess; the Slurm launch on the real single-node cluster."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.providers.conftest import launch_cli
from tests.providers.slurm_cluster import Cluster
from tests.providers.test_slurm import TRACKER, slurm_cluster  # noqa: F401 - the session's cluster

EU_SPEC = """\
name: eu-only
command: ["python", "-c", "print('hi')"]
duration: 1h
hardware: {vcpus: 2, memory_gb: 4}
placement: {countries: [EU], exclude: ["aws:eu-north-1"]}
"""


@pytest.fixture
def eu_spec(tmp_path: Path) -> Path:
    path = tmp_path / "eu.yaml"
    path.write_text(EU_SPEC)
    return path


def _launch(
    spec: Path, tmp: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return launch_cli("launch", str(spec), "--dry-run", "--run-id", "run-rules", *args, env=env, tmp=tmp)


def test_a_residency_rule_refuses_a_region_outside_it_unless_forced(eu_spec: Path, tmp_path: Path) -> None:
    refused = _launch(eu_spec, tmp_path, "--provider", "aws", "--region", "us-east-1")
    assert refused.returncode == 2, refused.stdout
    assert "placement.countries" in refused.stderr and "US" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    forced = _launch(eu_spec, tmp_path, "--provider", "aws", "--region", "us-east-1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["region"] == "us-east-1"
    allowed = _launch(eu_spec, tmp_path, "--provider", "aws", "--region", "eu-west-1")
    assert allowed.returncode == 0, allowed.stderr


def test_an_excluded_region_is_refused_naming_the_rule(eu_spec: Path, tmp_path: Path) -> None:
    refused = _launch(eu_spec, tmp_path, "--provider", "aws", "--region", "eu-north-1")
    assert refused.returncode == 2 and "placement.exclude" in refused.stderr


def test_a_provider_rule_is_kept(tmp_path: Path) -> None:
    spec = tmp_path / "gcp.yaml"
    spec.write_text(
        EU_SPEC.replace(
            'placement: {countries: [EU], exclude: ["aws:eu-north-1"]}', "placement: {providers: [gcp]}"
        )
    )
    refused = _launch(spec, tmp_path, "--provider", "azure", "--region", "westeurope")
    assert refused.returncode == 2 and "placement.providers" in refused.stderr


def _config(tmp_path: Path, section: dict[str, object]) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(section))
    return {"CARBONSHIFT_CONFIG": str(path)}


def test_a_kubernetes_dry_run_prints_the_job_manifest(tmp_path: Path) -> None:
    spec = tmp_path / "k.yaml"
    spec.write_text(EU_SPEC)
    prod = {"region": "gcp:europe-west4", "image": "python:3.12-slim"}
    env = _config(tmp_path, {"kubernetes": {"clusters": {"prod": prod}}})
    result = _launch(spec, tmp_path, "--provider", "kubernetes", "--region", "prod", env=env)
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    job = preview["job"]
    assert preview["provider"] == "kubernetes" and preview["cluster"] == "prod"
    assert job["kind"] == "Job" and job["spec"]["suspend"] is False
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.12-slim"
    # a cluster mapped outside the spec's countries is refused like a cloud region
    env = _config(tmp_path, {"kubernetes": {"clusters": {"us": {**prod, "region": "gcp:us-central1"}}}})
    refused = _launch(spec, tmp_path, "--provider", "kubernetes", "--region", "us", env=env)
    assert refused.returncode == 2 and "placement.countries" in refused.stderr


def test_an_unknown_cluster_is_one_clear_line(eu_spec: Path, tmp_path: Path) -> None:
    result = _launch(eu_spec, tmp_path, "--provider", "slurm", "--region", "nowhere")
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_launch_on_a_real_slurm_cluster_is_idempotent(slurm_cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    spec = tmp_path / "s.yaml"
    spec.write_text(
        'name: cli-slurm\ncommand: ["sh", "-c", "echo launched-by-cli"]\nduration: 5m\n'
        "hardware: {vcpus: 1, memory_gb: 0.25}\nplacement: {countries: [DE]}\n"
    )
    cluster = {
        "zone": "DE",
        "partition": "debug",
        "carbonshift": str(TRACKER),
        "work_dir": str(tmp_path / "w"),
    }
    env = _config(tmp_path, {"slurm": {"clusters": {"test": cluster}}})
    run_id = f"cli-{int(time.time())}"
    args = ("launch", str(spec), "--provider", "slurm", "--region", "test", "--run-id", run_id)
    preview = launch_cli(*args, "--dry-run", env=env, tmp=tmp_path)
    assert preview.returncode == 0, preview.stderr
    shown = json.loads(preview.stdout)
    assert any(a.startswith("--time=") for a in shown["sbatch"]) and "launched-by-cli" in shown["script"]
    first = launch_cli(*args, env=env, tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    assert job_id.isdigit()
    assert "slurm:test" in first.stderr
    again = launch_cli(*args, env=env, tmp=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == job_id  # found by its name, not resubmitted
    subprocess.run(["scancel", job_id], check=False, capture_output=True)
