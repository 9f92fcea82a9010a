"""`carbonshift launch` and `carbonshift providers` through the real CLI (a subprocess), plus the pieces
they rest on: names, error mapping, the missing-extra message, the watchdog and orphan rules."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from carbonshift.cli.providers import read_known_runs
from carbonshift.errors import UserInputError
from carbonshift.providers.base import CapacityError, Handle, ProviderError
from carbonshift.providers.common import import_sdk, label_value, request_uuid, resource_name, scrub
from carbonshift.providers.errors_map import classify
from carbonshift.providers.watchdog import orphans, overdue
from tests.providers.conftest import NOW, launch_cli
from tests.providers.fakes import Ec2Proxy

HOSTILE_SPEC = """\
name: hostile-job
command: ["python", "-c", "print('x')", "$(touch PWNED)", "`id`; rm -rf /", "a\\nb"]
duration: 1h
hardware: {gpu: L4, gpus: 1, vcpus: 4, memory_gb: 16}
interruptible: true
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(HOSTILE_SPEC)
    return path


@pytest.mark.parametrize(
    ("provider", "region", "type_key"),
    [("aws", "us-east-1", "g6.xlarge"), ("gcp", "us-central1", "g2-standard-4"), ("azure", "eastus", None)],
)
def test_launch_dry_run_prints_the_request_without_credentials(
    spec_file: Path, tmp_path: Path, provider: str, region: str, type_key: str | None
) -> None:
    secrets = {
        "AWS_SECRET_ACCESS_KEY": "aws-secret-in-env",
        "CARBONSHIFT_API_TOKEN": "api-token-in-env",
        "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": "em-token-in-env",
    }
    if provider == "azure":  # Azure has no L4: the spec asks for a T4 instead
        spec_file.write_text(HOSTILE_SPEC.replace("gpu: L4", "gpu: T4"))
    result = launch_cli(
        "launch", str(spec_file), "--provider", provider, "--region", region, "--dry-run",
        "--run-id", "run-dry", "--now", "2026-11-24T12:00Z", env=secrets, tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for secret in secrets.values():
        assert secret not in result.stdout and secret not in result.stderr
    plan = json.loads(result.stdout)
    assert plan["provider"] == provider and plan["region"] == region and plan["run_id"] == "run-dry"
    assert plan["interruptible"] is True
    if type_key:
        assert plan["instance_type"]["key"] == type_key
    assert plan["bootstrap"].startswith("#!/bin/sh")
    assert "'$(touch PWNED)' '`id`; rm -rf /'" in plan["bootstrap"]
    request = json.dumps(plan["request"])
    assert "carbonshift-run" in request and "run-dry" in request
    assert not list(tmp_path.rglob("PWNED"))


def test_launch_on_moto_prints_the_instance_id_and_is_idempotent(
    ec2: Ec2Proxy, spec_file: Path, tmp_path: Path
) -> None:
    spec_file.write_text(
        HOSTILE_SPEC.replace("hardware: {gpu: L4, gpus: 1, vcpus: 4, memory_gb: 16}", "hardware: {vcpus: 2}")
    )
    args = ("launch", str(spec_file), "--provider", "aws", "--region", "eu-north-1", "--run-id", "run-cli-1")
    first = launch_cli(*args, tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    instance_id = first.stdout.strip()
    assert instance_id.startswith("i-")
    assert "--run-id run-cli-1" in first.stderr
    second = launch_cli(*args, tmp=tmp_path)
    assert second.stdout.strip() == instance_id  # found by its tag, not launched again

    # no scheduler database: orphans asks for --known-runs (unless the scheduler offers live_run_ids)
    known = tmp_path / "known.txt"
    known.write_text("# live runs\nrun-cli-other\n")
    common = (
        "providers",
        "orphans",
        "--provider",
        "aws",
        "--region",
        "eu-north-1",
        "--known-runs",
        str(known),
    )
    listed = launch_cli(*common, "--format", "json", tmp=tmp_path)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [o["instance_id"] for o in data["orphans"]] == [instance_id] and data["terminated"] == []
    known.write_text("")
    cleaned = launch_cli(*common, "--clean", tmp=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert instance_id in cleaned.stdout and "terminated" in cleaned.stderr
    state = boto3.client("ec2", region_name="eu-north-1").describe_instances(InstanceIds=[instance_id])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")


def test_read_known_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.write_text('["a", "b"]')
    assert read_known_runs(path) == {"a", "b"}
    path.write_text("# comment\n a \n\nb\n")
    assert read_known_runs(path) == {"a", "b"}
    path.write_text("[1, 2]")
    with pytest.raises(UserInputError):
        read_known_runs(path)


def test_launch_errors_are_one_line(spec_file: Path, tmp_path: Path) -> None:
    bad_provider = launch_cli(
        "launch", str(spec_file), "--provider", "ibm", "--region", "x", "--dry-run", tmp=tmp_path
    )
    assert bad_provider.returncode == 2 and "--provider" in bad_provider.stderr
    bad_region = launch_cli(
        "launch", str(spec_file), "--provider", "aws", "--region", "mars-1", "--dry-run", tmp=tmp_path
    )
    assert bad_region.returncode == 2 and "mars-1" in bad_region.stderr
    no_h100 = spec_file.read_text().replace("gpu: L4", "gpu: H100")
    spec_file.write_text(no_h100)
    missing = launch_cli(
        "launch", str(spec_file), "--provider", "aws", "--region", "eu-west-3", "--dry-run", tmp=tmp_path
    )
    assert missing.returncode == 2 and "offered in" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_providers_instances_lists_the_catalog(tmp_path: Path) -> None:
    result = launch_cli(
        "providers", "instances", "--provider", "gcp", "--gpu", "h100", "--format", "json", tmp=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert [t["key"] for t in json.loads(result.stdout)] == ["a3-highgpu-8g"]


def test_orphans_refuses_without_a_source_of_live_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from carbonshift.cli import providers as cli_providers
    from carbonshift.cli.app import app, main  # noqa: F401 - registers the commands

    monkeypatch.setattr(cli_providers, "scheduler_live_runs", lambda settings: None)
    from carbonshift.cli import commands

    commands.register(app)
    result = CliRunner().invoke(app, ["providers", "orphans", "--provider", "aws"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "--known-runs" in str(result.exception)


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ProviderError, match=r"pip install 'carbonshift\[aws\]'"):
        import_sdk("aws", "boto3")
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)
    with pytest.raises(ProviderError, match=r"carbonshift\[gcp\]"):
        import_sdk("gcp", "google.cloud.compute_v1")


def test_names_and_ids_are_deterministic_and_valid() -> None:
    import re

    for run_id in ["run-1", "Run_With.Odd/Chars and spaces", "x" * 200, "---", "Ω"]:
        name = resource_name(run_id)
        assert name == resource_name(run_id)
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name), name
        assert re.fullmatch(r"[a-z0-9_-]{0,63}", label_value(run_id))
    assert resource_name("a") != resource_name("A")  # same slug, different runs
    assert request_uuid("r", "z1") == request_uuid("r", "z1") != request_uuid("r", "z2")


def test_classify_and_scrub() -> None:
    assert isinstance(classify("aws", "r", "InsufficientInstanceCapacity", "none left"), CapacityError)
    assert isinstance(
        classify("azure", "r", "OperationNotAllowed", "Operation results in exceeding quota limits"),
        CapacityError,
    )
    other = classify("azure", "r", "OperationNotAllowed", "VM is being deleted")
    assert not isinstance(other, CapacityError)
    text = scrub("auth Bearer abc.def failed for AKIAABCDEFGHIJKLMNOP sig=xyz&x=1 and my-token", ["my-token"])
    assert (
        "abc.def" not in text
        and "AKIAABCDEFGHIJKLMNOP" not in text
        and "xyz" not in text
        and "my-token" not in text
    )


def test_overdue_and_orphans() -> None:
    a, b, c = (Handle("aws", "r", f"run-{i}", f"i-{i}") for i in range(3))
    deadlines = [
        (a, NOW - timedelta(hours=1)),
        (b, NOW - timedelta(minutes=5)),
        (c, NOW + timedelta(hours=1)),
    ]
    assert overdue(deadlines, NOW) == [a]  # b is within the 15 min margin
    assert overdue(deadlines, NOW, margin=timedelta(0)) == [a, b]
    with pytest.raises(ValueError):
        overdue(deadlines, NOW.replace(tzinfo=None))
    assert orphans([a, b, c], {"run-1"}) == [a, c]
