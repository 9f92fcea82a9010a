"""Tracker reports carry the whole footprint: operational, embodied (from the instance type the cloud's
metadata names, an explicit --instance-type, or the host's own hardware), their total, and the SCI
score when a functional unit is named. Existing report fields are unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from carbonshift.catalog.embodied import LIFESPAN_H, ccf_server_kg
from carbonshift.config.jobspec import FunctionalUnit
from carbonshift.tracker.metadata import detect
from carbonshift.tracker.sources.base import Component
from carbonshift.tracker.tracker import Tracker
from tests.cli.helpers import run_cli
from tests.fakes.http_server import closed_port_url

from . import helpers
from .fake_metadata import FakeMetadata
from .helpers import PY, ConstantSource, config_file


def _run(tracker: Tracker, seconds: float = 0.2) -> dict[str, object]:
    tracker.start()
    time.sleep(seconds)
    return tracker.stop(0).to_dict()


def test_host_hardware_fallback_total_and_sci(tmp_path: Path) -> None:
    settings = helpers.settings(tmp_path, attribution="machine")
    tracker = Tracker(
        settings,
        pid=os.getpid(),
        sources=[ConstantSource(Component.CPU, 10.0)],
        write_outputs=False,
        functional_unit=FunctionalUnit(name="epoch", count=4),
    )
    tracker.start()
    time.sleep(0.2)
    report = tracker.stop(0)
    # the constant sources describe no host: one CPU, no GPU, no memory
    d = report.to_dict()
    te, _ = ccf_server_kg(memory_gb=0.0)
    assert d["embodied_kg_co2e"] == pytest.approx(te * report.duration_s / 3600 / LIFESPAN_H)
    assert d["total_kg_co2e"] == pytest.approx(d["kg_co2e"] + d["embodied_kg_co2e"])  # type: ignore[operator]
    embodied = d["embodied"]
    assert isinstance(embodied, dict)
    assert embodied["source"] == "ccf-method (host hardware)" and embodied["known_from"] == "host hardware"
    assert embodied["instance_type"] is None and embodied["lifespan_years"] == 4.0
    sci = d["sci"]
    assert isinstance(sci, dict)
    assert sci["kg_co2e_per_unit"] == pytest.approx(d["total_kg_co2e"] / 4)  # type: ignore[operator]
    assert sci["functional_unit"] == {"name": "epoch", "count": 4}
    assert "g embodied" in report.summary_line() and "per epoch" in report.summary_line()
    # the fields that were there before keep their meaning: kg_co2e is the operational part only
    assert d["kg_co2e"] == pytest.approx(report.energy_kwh * 200 / 1000)


def test_instance_type_from_cloud_metadata(tmp_path: Path) -> None:
    fake = FakeMetadata("aws", "eu-west-1", instance_type="g4dn.xlarge")
    dead = closed_port_url()
    try:
        found = detect(aws_url=fake.url, gcp_url=dead, azure_url=dead, timeout_s=1.0)
        assert found is not None and found.instance_type == "g4dn.xlarge"
        settings = helpers.settings(
            tmp_path,
            detect_cloud=True,
            aws_metadata_url=fake.url,
            gcp_metadata_url=dead,
            azure_metadata_url=dead,
            metadata_timeout_s=1.0,
        ).model_copy(update={"location": None})
        tracker = Tracker(
            settings, pid=os.getpid(), sources=[ConstantSource(Component.CPU, 5.0)], write_outputs=False
        )
        tracker.start()
        time.sleep(0.2)
        report = tracker.stop(0)
    finally:
        fake.close()
    d = report.to_dict()
    embodied = d["embodied"]
    assert isinstance(embodied, dict)
    assert (
        embodied["instance_type"] == "aws:g4dn.xlarge" and embodied["known_from"] == "aws instance metadata"
    )
    assert embodied["source"] == "ccf:aws"
    reserved = 1200 / 8 + (3010.79 - 1200) * 4 / 96  # 1 of 8 T4s, 4 of 96 vCPUs of CCF's g4dn host
    assert d["embodied_kg_co2e"] == pytest.approx(reserved * report.duration_s / 3600 / LIFESPAN_H)
    assert d["sci"] is None


@pytest.mark.parametrize("gcp", [True, False])
def test_other_clouds_report_their_type(gcp: bool) -> None:
    cloud, region, kind = (
        ("gcp", "europe-west4", "a2-highgpu-1g") if gcp else ("azure", "westeurope", "Standard_NC4as_T4_v3")
    )
    fake = FakeMetadata(cloud, region, instance_type=kind)
    dead = closed_port_url()
    urls = {name: (fake.url if name == cloud else dead) for name in ("aws", "gcp", "azure")}
    try:
        found = detect(aws_url=urls["aws"], gcp_url=urls["gcp"], azure_url=urls["azure"], timeout_s=1.0)
    finally:
        fake.close()
    assert found is not None and (found.provider, found.instance_type) == (cloud, kind)


def test_metadata_without_a_type_still_gives_the_region() -> None:
    fake = FakeMetadata("gcp", "europe-west1")  # the machine-type path answers 404
    dead = closed_port_url()
    try:
        found = detect(aws_url=dead, gcp_url=fake.url, azure_url=dead, timeout_s=1.0)
    finally:
        fake.close()
    assert found is not None and found.region == "europe-west1" and found.instance_type is None


def test_explicit_instance_type(tmp_path: Path) -> None:
    settings = helpers.settings(tmp_path)
    sources = [ConstantSource(Component.CPU, 5.0)]
    d = _run(
        Tracker(
            settings, pid=os.getpid(), sources=sources, write_outputs=False, instance_type="aws:p5.48xlarge"
        )
    )
    embodied = d["embodied"]
    assert isinstance(embodied, dict)
    assert embodied["known_from"] == "--instance-type" and embodied["source"] == "ccf-method"
    assert embodied["resource_share"] == 1.0
    unknown = Tracker(
        settings, pid=os.getpid(), sources=sources, write_outputs=False, instance_type="m5.xlarge"
    )
    d = _run(unknown)  # no provider known (a zone-only place): the host's hardware, and a warning
    assert d["embodied"]["source"] == "ccf-method (host hardware)"  # type: ignore[index]
    assert any("--instance-type m5.xlarge" in w for w in d["warnings"])  # type: ignore[union-attr]


def test_cli_track_functional_unit_and_instance_type(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    result = run_cli(
        "--config", str(cfg), "track", "--output-dir", str(tmp_path / "out"),
        "--functional-unit", "epoch=90", "--instance-type", "aws:m5.xlarge", "--", PY, "-c", "pass",
        tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = sorted((tmp_path / "out").glob("*.json"))
    report = json.loads(path.read_text())
    assert report["sci"]["functional_unit"] == {"name": "epoch", "count": 90}
    assert report["sci"]["kg_co2e_per_unit"] == pytest.approx(report["total_kg_co2e"] / 90)
    assert report["embodied"]["instance_type"] == "aws:m5.xlarge"
    time_share = report["embodied"]["time_share"]
    assert time_share * LIFESPAN_H * 3600 == pytest.approx(report["duration_s"], abs=0.001)  # ms rounding
    assert report["embodied_kg_co2e"] == pytest.approx(1610.79 * 4 / 96 * time_share)
    bad = run_cli(
        "--config", str(cfg), "track", "--functional-unit", "epoch", "--", PY, "-c", "pass", tmp=tmp_path
    )
    assert bad.returncode == 2 and "--functional-unit: write NAME=COUNT" in bad.stderr


def test_cli_run_takes_the_specs_functional_unit(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(
        f"name: local-job\ncommand: {json.dumps([PY, '-c', 'pass'])}\nduration: 10m\n"
        "functional_unit: {name: image, count: 1000}\n"
    )
    result = run_cli(
        "--config", str(cfg), "run", str(job), "--no-wait", "--now", "2026-11-24T05:00Z",
        "--output-dir", str(tmp_path / "out"), tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "out").glob("*.json")
    report = json.loads(path.read_text())
    assert report["sci"]["functional_unit"] == {"name": "image", "count": 1000}
    assert report["sci"]["g_co2e_per_unit"] == pytest.approx(report["total_kg_co2e"])  # kg/1000 = g
    assert "SCI " in result.stderr and "g CO2e per image" in result.stderr
