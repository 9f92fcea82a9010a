"""Cloud detection over a local fake metadata server: each provider's protocol, a short timeout off
the cloud, and the detected region's zone and PUE in the report, with no token anywhere."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonshift.tracker.metadata import detect
from carbonshift.tracker.sources.base import Component
from carbonshift.tracker.tracker import Tracker
from tests.fakes.http_server import closed_port_url

from . import helpers
from .fake_metadata import TOKEN, FakeMetadata
from .helpers import ConstantSource


@pytest.fixture
def dead() -> str:
    return closed_port_url()


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeMetadata]]:
    servers = {
        "aws": FakeMetadata("aws", "eu-west-1"),
        "gcp": FakeMetadata("gcp", "europe-west1"),
        "azure": FakeMetadata("azure", "westeurope"),
    }
    yield servers
    for s in servers.values():
        s.close()


@pytest.mark.parametrize(
    ("cloud", "expected"),
    [("aws", ("aws", "eu-west-1")), ("gcp", ("gcp", "europe-west1")), ("azure", ("azure", "westeurope"))],
)
def test_each_provider_is_detected(
    cloud: str, expected: tuple[str, str], fakes: dict[str, FakeMetadata], dead: str
) -> None:
    urls = {name: (fakes[name].url if name == cloud else dead) for name in ("aws", "gcp", "azure")}
    found = detect(aws_url=urls["aws"], gcp_url=urls["gcp"], azure_url=urls["azure"], timeout_s=1.0)
    assert found is not None and (found.provider, found.region) == expected


def test_a_machine_of_one_cloud_is_not_taken_for_another(fakes: dict[str, FakeMetadata]) -> None:
    # AWS and Azure share 169.254.169.254: the wrong protocol must not look like an answer
    aws = fakes["aws"].url
    found = detect(aws_url=aws, gcp_url=aws, azure_url=aws, timeout_s=1.0)
    assert found is not None and found.provider == "aws"
    gcp = fakes["gcp"].url
    found = detect(aws_url=gcp, gcp_url=gcp, azure_url=gcp, timeout_s=1.0)
    assert found is not None and found.provider == "gcp"


def test_off_the_cloud_the_answer_is_quick_and_none(dead: str) -> None:
    t0 = time.monotonic()
    assert detect(aws_url=dead, gcp_url=dead, azure_url=dead, timeout_s=0.3) is None
    assert time.monotonic() - t0 < 1.5


def test_detected_region_gives_zone_and_pue_and_no_token_leaks(
    fakes: dict[str, FakeMetadata], tmp_path: Path, dead: str
) -> None:
    settings = helpers.settings(
        tmp_path,
        attribution="machine",
        detect_cloud=True,
        aws_metadata_url=fakes["aws"].url,
        gcp_metadata_url=dead,
        azure_metadata_url=dead,
        metadata_timeout_s=1.0,
    ).model_copy(update={"location": None})
    tracker = Tracker(settings, pid=os.getpid(), sources=[ConstantSource(Component.CPU, 10.0)])
    tracker.start()
    time.sleep(0.1)
    report = tracker.stop(0)
    loc = report.location
    assert loc is not None
    assert (loc["region"], loc["zone"], loc["how"], loc["on_cloud"]) == (
        "aws:eu-west-1",
        "IE",
        "aws instance metadata",
        True,
    )
    assert loc["pue"] == pytest.approx(1.135) and report.kg_co2e is not None
    assert loc["basis"] == "cloud-metadata" and not any("no location" in w for w in report.warnings)
    text = json.dumps(report.to_dict()) + (tmp_path / "data" / "runs" / "emissions.csv").read_text()
    assert TOKEN not in text
    assert ",aws,eu-west-1," in text and ",Y," in text  # cloud_provider, cloud_region, on_cloud in the CSV


def test_explicit_location_wins_and_no_probe_is_made(fakes: dict[str, FakeMetadata], tmp_path: Path) -> None:
    settings = helpers.settings(
        tmp_path,
        detect_cloud=True,
        aws_metadata_url=fakes["aws"].url,
        gcp_metadata_url=fakes["aws"].url,
        azure_metadata_url=fakes["aws"].url,
    )
    tracker = Tracker(
        settings, pid=os.getpid(), sources=[ConstantSource(Component.CPU, 1.0)], write_outputs=False
    )
    tracker.start()
    report = tracker.stop(0)
    assert report.zone == helpers.ZONE and fakes["aws"].requests == []
