"""A spec that names its GPUs but not its host is planned with the host of the instance type a launch
would pick in each region (issue 16): 8x A100 on AWS is a p4d.24xlarge, 96 vCPUs and 1,152 GB, not the
4 vCPUs and 16 GB defaults; and the plan says so."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carbonshift.advisor import advise, advise_many
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.runtime import build_catalog, build_service

NOW = datetime(2026, 11, 24, 5, tzinfo=UTC)
REGIONS = ["aws:us-east-1", "gcp:us-central1"]


def _spec(**hardware: object):  # type: ignore[no-untyped-def]
    return parse_jobspec(
        {
            "name": "big",
            "command": ["x"],
            "duration": "4h",
            "hardware": {"gpu": "A100", "gpus": 8, **hardware},
            "placement": {"regions": REGIONS},
        }
    )


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


def _kwh(advice) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {o.ref: o.energy.kwh for o in advice.plan.options}


def test_an_unsized_host_takes_the_launch_types_size_per_region(setup) -> None:  # type: ignore[no-untyped-def]
    catalog, service = setup
    unsized = advise(_spec(), catalog=catalog, service=service, now=NOW)
    aws_sized = advise(_spec(vcpus=96, memory_gb=1152), catalog=catalog, service=service, now=NOW)
    gcp_sized = advise(_spec(vcpus=96, memory_gb=680), catalog=catalog, service=service, now=NOW)
    assert _kwh(unsized)["aws:us-east-1"] == pytest.approx(_kwh(aws_sized)["aws:us-east-1"])
    assert _kwh(unsized)["gcp:us-central1"] == pytest.approx(_kwh(gcp_sized)["gcp:us-central1"])
    defaults = advise(_spec(vcpus=4, memory_gb=16), catalog=catalog, service=service, now=NOW)
    assert _kwh(unsized)["aws:us-east-1"] > _kwh(defaults)["aws:us-east-1"] + 1.5  # ~450 W more for 4 h
    (notice,) = [n for n in unsized.notices if n.startswith("host size not given")]
    assert "aws:us-east-1 p4d.24xlarge (96 vCPUs, 1152 GB)" in notice
    assert not [n for n in aws_sized.notices if n.startswith("host size")]


def test_only_the_missing_half_is_taken_from_the_type(setup) -> None:  # type: ignore[no-untyped-def]
    catalog, service = setup
    half = advise(_spec(vcpus=8), catalog=catalog, service=service, now=NOW)
    both = advise(_spec(vcpus=8, memory_gb=1152), catalog=catalog, service=service, now=NOW)
    assert _kwh(half)["aws:us-east-1"] == pytest.approx(_kwh(both)["aws:us-east-1"])


def test_a_batch_sizes_hosts_the_same_way(setup) -> None:  # type: ignore[no-untyped-def]
    catalog, service = setup
    specs = [_spec(), _spec(vcpus=96, memory_gb=1152), _spec()]
    together = advise_many(specs, catalog=catalog, service=service, now=NOW)
    alone = [advise(s, catalog=catalog, service=service, now=NOW) for s in specs]
    assert [_kwh(a) for a in together] == [_kwh(a) for a in alone]


def test_the_cli_plan_says_which_host_it_assumed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.helpers import run_json

    spec = tmp_path / "big.yaml"
    spec.write_text(
        "name: big\ncommand: [x]\nduration: 4h\nhardware: {gpu: A100, gpus: 8}\n"
        "placement: {regions: [aws:us-east-1]}\n"
    )
    plan = run_json("plan", str(spec), "--now", "2026-11-24T05:00Z", "--format", "json", tmp=tmp_path)
    assert any("aws:us-east-1 p4d.24xlarge (96 vCPUs, 1152 GB)" in n for n in plan["notices"])
    # 8 x 400 W + 96 x 2.12 W + 1152 x 0.392 W = 3,855.1 W for 4 h, times the region's PUE
    assert plan["options"][0]["energy_kwh"] == pytest.approx(3.8551 * 4 * plan["options"][0]["pue"], rel=1e-3)
