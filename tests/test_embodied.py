"""Embodied emissions per run: the bundled table against Cloud Carbon Footprint, SCI's amortisation
worked by hand, and the fallback for hosts the table does not know."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from carbonshift.catalog.embodied import (
    LIFESPAN_H,
    ccf_server_kg,
    embodied_for,
    embodied_table,
    host_for,
)
from carbonshift.catalog.instances import instance_types

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CCF = SHARED / "cloud-carbon-coefficients" / "output"


@pytest.mark.parametrize(
    ("hardware", "ccf_total"),
    [
        ({"memory_gb": 384, "cpus": 2}, 1610.79),  # aws m5 host (coefficients-aws-embodied.csv)
        ({"memory_gb": 192, "cpus": 2}, 1344.29),  # aws c5
        ({"memory_gb": 1152, "cpus": 2, "ssds": 8, "gpus": 8}, 4676.79),  # aws p4d
        ({"memory_gb": 384, "cpus": 2, "ssds": 2, "gpus": 8}, 3010.79),  # aws g4dn
        (
            {"memory_gb": 1360, "cpus": 2, "ssds": 1, "gpus": 16},
            5465.5,
        ),  # gcp a2 (coefficients-gcp-embodied.csv)
        ({"memory_gb": 128, "cpus": 1}, 1155.46),  # gcp e2 on EPYC 2nd gen
        ({"memory_gb": 448, "cpus": 2, "hdds": 1, "gpus": 4}, 2349.62),  # azure NCas T4 v3
    ],
)
def test_ccf_method_reproduces_ccf_totals(hardware: dict[str, int], ccf_total: float) -> None:
    te, gpu = ccf_server_kg(**hardware)
    assert round(te, 2) == ccf_total
    assert gpu == 150 * hardware.get("gpus", 0)


def test_every_catalog_type_has_a_sourced_row() -> None:
    table = embodied_table()
    for t in instance_types():
        row = table[(t.provider, t.key)]
        assert (row.vcpus, row.gpus) == (t.vcpus, t.gpus)
        assert row.host_vcpus >= t.vcpus and row.host_gpus >= t.gpus
        assert row.source in {"ccf:aws", "ccf:gcp", "ccf:azure", "ccf-method"}, row
        assert row.derivation
        if row.source == "ccf-method":
            assert row.derivation.startswith("not in CCF; CCF's method on the host")
    assert len(table) == len(instance_types())
    # the families CCF lacks are worked out, not missing
    assert table[("aws", "p5.48xlarge")].source == "ccf-method"
    assert table[("gcp", "a3-highgpu-8g")].source == "ccf-method"


@pytest.mark.skipif(not CCF.is_dir(), reason="../shared/data (the CCF coefficients) is not present")
def test_copied_rows_match_ccf_and_the_build_is_current() -> None:
    with (CCF / "coefficients-aws-embodied.csv").open() as f:
        aws = {r["type"]: float(r["total"]) for r in csv.DictReader(f)}
    table = embodied_table()
    assert table[("aws", "p4d.24xlarge")].te_kg_co2e == aws["p4d.24xlarge"] == 4676.79
    assert table[("aws", "m5.xlarge")].te_kg_co2e == aws["m5.xlarge"]
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_embodied.py"), "--shared", str(SHARED), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_whole_server_type_by_hand() -> None:
    """p5.48xlarge reserves its whole host: M = TE x TR/EL, TE by CCF's method from AWS's specs
    (2048 GB, 2 CPUs, 8 NVMe SSDs, 8 H100): 1000 + 2032 x 533/384 + 100 + 800 + 1200 kg."""
    te = 1000 + (2048 - 16) * 533 / 384 + 100 + 8 * 100 + 8 * 150
    est = embodied_for(provider="aws", instance_type="p5.48xlarge", duration_s=4 * 3600)
    assert est.kg_co2e == pytest.approx(te * 4 / LIFESPAN_H)
    assert est.resource_share == pytest.approx(1.0)
    assert est.source == "ccf-method"
    text = " ".join(est.assumptions)
    assert "8x H100" in text and "4-year lifespan" in text and "35,040 h" in text


def test_slice_of_a_gpu_host_pays_its_gpus_share() -> None:
    """g4dn.xlarge: 1 of the host's 8 T4s and 4 of its 96 vCPUs. CCF's TE 3010.79 kg of which the GPUs
    are 1200 kg: reserved = 1200 x 1/8 + 1810.79 x 4/96."""
    est = embodied_for(provider="aws", instance_type="g4dn.xlarge", duration_s=3600)
    reserved = 1200 / 8 + (3010.79 - 1200) * 4 / 96
    assert est.kg_co2e == pytest.approx(reserved / LIFESPAN_H)
    assert est.resource_share == pytest.approx(reserved / 3010.79)
    assert "1/8 GPUs" in est.assumptions[1] and "4/96 vCPUs" in est.assumptions[1]
    assert est.source == "ccf:aws"


def test_cpu_type_is_ccf_share_exactly() -> None:
    """A CPU type: CCF's own allocation, TE x vCPUs/host vCPUs x TR/EL (m5.xlarge: 4 of 96)."""
    est = embodied_for(provider="aws", instance_type="m5.xlarge", duration_s=2 * 3600)
    assert est.kg_co2e == pytest.approx(1610.79 * 4 / 96 * 2 / 35040)


def test_n1_attachments_found_by_gpu_count() -> None:
    plain = host_for("gcp", "n1-standard-16")
    two = host_for("gcp", "n1-standard-16", gpus=2)
    assert plain is None  # the catalog lists N1 only with GPUs attached
    assert two is not None and two.key == "n1-standard-16+2xnvidia-tesla-t4"
    est = embodied_for(provider="gcp", instance_type="n1-standard-16", gpus=2, duration_s=3600)
    assert est.kg_co2e == pytest.approx((600 * 2 / 4 + 1677.48 * 16 / 96) / LIFESPAN_H)


def test_unknown_host_falls_back_to_its_hardware() -> None:
    est = embodied_for(duration_s=3600, gpus=1, vcpus=16, memory_gb=64)
    te = 1000 + (64 - 16) * 533 / 384 + 150
    assert est.kg_co2e == pytest.approx(te / LIFESPAN_H)
    assert est.source == "ccf-method (host hardware)"
    assert "whole host" in est.assumptions[1]
    named = embodied_for(provider="aws", instance_type="x9.huge", duration_s=60)
    assert "aws:x9.huge is not in the embodied table" in named.assumptions[0]
    assert named.to_dict()["lifespan_years"] == 4.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        embodied_for(duration_s=-1)
    with pytest.raises(ValueError):
        ccf_server_kg(memory_gb=16, cpus=0)


def test_plan_option_charges_the_type_a_launch_would_pick() -> None:
    """For the planner: 8x H100 in aws:us-east-1 is a p5.48xlarge (the whole server); 1x A10G with 4 vCPUs
    a g5.xlarge (1/8 of the GPUs, 4/192 vCPUs); a local place has no catalog, so the hardware itself."""
    from carbonshift.catalog.embodied import embodied_in_region
    from carbonshift.config.jobspec import Hardware

    h100 = Hardware.model_validate({"gpu": "H100", "gpus": 8})
    est = embodied_in_region("aws", "us-east-1", h100, 3600)
    assert est.kg_co2e == pytest.approx(
        embodied_for(provider="aws", instance_type="p5.48xlarge", duration_s=3600).kg_co2e
    )
    a10g = Hardware.model_validate({"gpu": "A10G", "gpus": 1, "vcpus": 4, "memory_gb": 16})
    g5 = embodied_table()[("aws", "g5.xlarge")]
    est = embodied_in_region("aws", "us-east-1", a10g, 3600)
    assert est.kg_co2e == pytest.approx((1200 / 8 + (g5.te_kg_co2e - 1200) * 4 / 192) / LIFESPAN_H)
    local = embodied_in_region("local", "this-machine", a10g, 3600)
    assert local.source == "ccf-method (host hardware)"
    assert local.kg_co2e == pytest.approx(ccf_server_kg(memory_gb=16, gpus=1)[0] / LIFESPAN_H)


def test_a_regions_reserved_kg_amortised_is_the_estimates_kg_to_the_bit() -> None:
    """`Footprints.add_fields` remembers `reserved_in_region` per (region, hardware) and amortises it
    for each run's duration: that must be the very float `embodied_in_region` gives, for catalog
    types (whole servers and slices) and for places without a catalog, at any duration."""
    from carbonshift.catalog.embodied import amortised_kg, embodied_in_region, reserved_in_region
    from carbonshift.config.jobspec import Hardware

    hardware = [
        Hardware.model_validate({"gpu": "H100", "gpus": 8}),
        Hardware.model_validate({"gpu": "A10G", "gpus": 1, "vcpus": 4, "memory_gb": 16}),
        Hardware.model_validate({"gpu": "T4", "gpus": 1, "vcpus": 4, "memory_gb": 16}),
        Hardware.model_validate({"vcpus": 16, "memory_gb": 64}),
    ]
    places = [("aws", "us-east-1"), ("gcp", "europe-west4"), ("azure", "westeurope"), ("local", "dip")]
    durations = [0, 1, 1799, 1800, 3600, 7 * 3600 + 59 * 60, 28_800, 1e6 + 0.5]
    for provider, region in places:
        for hw in hardware:
            reserved = reserved_in_region(provider, region, hw)
            for d in durations:
                want = embodied_in_region(provider, region, hw, d).kg_co2e
                assert amortised_kg(reserved, d).hex() == want.hex(), (provider, region, hw, d)
