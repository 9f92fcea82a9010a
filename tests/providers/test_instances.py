"""The bundled instance-type catalog: integrity, the smallest-fit pick, and the planner's region filter."""

from __future__ import annotations

import pytest

from carbonshift.catalog import load_catalog
from carbonshift.catalog.instances import (
    filter_offering,
    find_instance_type,
    instance_types,
    offers,
    pick_instance,
)
from carbonshift.config.jobspec import Hardware
from carbonshift.errors import UserInputError
from carbonshift.planner.power_tables import known_gpu_models


def hw(**kwargs: object) -> Hardware:
    return Hardware.model_validate(kwargs)


def test_catalog_integrity() -> None:
    rows = instance_types()
    assert {r.provider for r in rows} == {"aws", "gcp", "azure"}
    keys = [(r.provider, r.key) for r in rows]
    assert len(keys) == len(set(keys))
    regions = {(r.provider, r.region) for r in load_catalog().regions()}
    gpus = set(known_gpu_models())
    for r in rows:
        assert (r.gpu is None) == (r.gpus == 0), r
        assert r.gpu is None or r.gpu in gpus, r
        assert r.vcpus > 0 and r.memory_gb > 0
        for region in r.regions or ():
            assert (r.provider, region) in regions, (r.key, region)
        assert r.accelerator is None or r.provider == "gcp"
    families = {r.name.split(".")[0] for r in rows if r.provider == "aws"}
    assert {"p4d", "p5", "g5", "g6", "m5", "c5"} <= families
    gcp = {r.name.split("-")[0] for r in rows if r.provider == "gcp"}
    assert {"a2", "a3", "g2", "n2", "e2"} <= gcp
    azure = {r.name for r in rows if r.provider == "azure"}
    assert any(n.startswith("Standard_NC") for n in azure) and any(n.startswith("Standard_ND") for n in azure)
    assert any(n.startswith("Standard_D") and "s_v5" in n for n in azure)


@pytest.mark.parametrize(
    ("provider", "region", "hardware", "expected"),
    [
        ("aws", "us-east-1", {"gpu": "A100", "gpus": 8, "vcpus": 96, "memory_gb": 1000}, "p4d.24xlarge"),
        ("aws", "us-east-1", {"gpu": "H100", "gpus": 8}, "p5.48xlarge"),
        ("aws", "us-east-1", {"gpu": "A10G", "gpus": 1, "vcpus": 4, "memory_gb": 16}, "g5.xlarge"),
        ("aws", "us-east-1", {"gpu": "A10G", "gpus": 1, "vcpus": 16, "memory_gb": 32}, "g5.4xlarge"),
        ("aws", "us-east-1", {"gpu": "L4", "gpus": 2}, "g6.12xlarge"),  # smallest with >= 2 L4
        ("aws", "eu-west-3", {"vcpus": 2, "memory_gb": 4}, "c5.large"),
        ("aws", "eu-west-3", {"vcpus": 4, "memory_gb": 16}, "m5.xlarge"),
        ("aws", "eu-west-3", {"vcpus": 4, "memory_gb": 30}, "r5.xlarge"),
        ("gcp", "us-central1", {"gpu": "A100", "gpus": 1}, "a2-highgpu-1g"),
        ("gcp", "us-central1", {"gpu": "H100", "gpus": 8}, "a3-highgpu-8g"),
        ("gcp", "europe-west4", {"gpu": "L4", "gpus": 1, "vcpus": 4, "memory_gb": 16}, "g2-standard-4"),
        ("gcp", "europe-west1", {"gpu": "T4", "gpus": 2}, "n1-standard-16+2xnvidia-tesla-t4"),
        ("gcp", "europe-north1", {"vcpus": 4, "memory_gb": 16}, "e2-standard-4"),
        ("azure", "westeurope", {"gpu": "A100", "gpus": 8}, "Standard_ND96asr_v4"),
        ("azure", "eastus", {"gpu": "A100 PCIe 80GB", "gpus": 1}, "Standard_NC24ads_A100_v4"),
        ("azure", "swedencentral", {"vcpus": 8, "memory_gb": 32}, "Standard_D8s_v5"),
    ],
)
def test_pick_the_smallest_that_fits(
    provider: str, region: str, hardware: dict[str, object], expected: str
) -> None:
    assert pick_instance(provider, region, hw(**hardware)).key == expected


def test_any_gpu_when_no_model_is_named() -> None:
    picked = pick_instance("aws", "us-east-1", hw(gpus=1, vcpus=4, memory_gb=16))
    assert picked.gpus == 1 and picked.gpu is not None


def test_a_cpu_job_never_gets_a_gpu_instance() -> None:
    for t in (
        pick_instance(p, r, hw(vcpus=2, memory_gb=8))
        for p, r in [("aws", "us-east-1"), ("gcp", "us-central1")]
    ):
        assert t.gpus == 0


def test_clear_errors() -> None:
    with pytest.raises(UserInputError, match=r"offered in: .*us-east-1"):
        pick_instance("aws", "eu-south-2", hw(gpu="H100", gpus=8))
    with pytest.raises(UserInputError, match="the largest is"):
        pick_instance("aws", "us-east-1", hw(gpu="A10G", gpus=16))
    with pytest.raises(UserInputError, match="GPU models here"):
        pick_instance("azure", "eastus", hw(gpu="L4", gpus=1))
    with pytest.raises(UserInputError, match="no instance catalog"):
        pick_instance("local", "lab", hw())


def test_offers_and_filter_offering() -> None:
    h100 = hw(gpu="H100", gpus=8)
    assert offers("aws", "us-east-1", h100)
    assert not offers("aws", "eu-west-3", h100)
    assert offers("local", "my-lab", h100)  # the table says nothing about a user's own machines
    regions = load_catalog().regions()
    left = filter_offering(regions, h100)
    assert left and all(offers(r.provider, r.region, h100) for r in left)
    assert {r.provider for r in left} == {"aws", "gcp", "azure"}
    assert len(left) < len(regions)
    aws_paris = [r for r in regions if r.key == "aws:eu-west-3"]
    with pytest.raises(UserInputError, match="no candidate region offers"):
        filter_offering(aws_paris, h100)
    assert filter_offering(regions, hw()) == regions  # CPU types are everywhere


def test_find_instance_type_by_key() -> None:
    t = find_instance_type("gcp", "n1-standard-8+1xnvidia-tesla-t4")
    assert t is not None and t.accelerator == "nvidia-tesla-t4" and t.name == "n1-standard-8"
    assert find_instance_type("aws", "x9.nothing") is None
