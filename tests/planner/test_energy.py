"""The energy model against a hand calculation, and the bundled tables against their sources."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.planner.energy import EnergyModel, estimate_energy
from carbonshift.planner.power_tables import gpu_table, host_power, lookup_gpu, normalise_gpu_name

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_issue_example_by_hand() -> None:
    spec = parse_jobspec(
        {
            "name": "resnet",
            "command": ["python", "train.py"],
            "duration": "4h",
            "hardware": {"gpu": "A100", "gpus": 8, "vcpus": 32, "memory_gb": 256},
        }
    )
    est = estimate_energy(spec, 1.1)
    # 8 x 400 W (A100 SXM4) + 32 x (0.74 + 0.5 x (3.5 - 0.74)) W + 256 GB x 0.392 W/GB
    gpu_w, cpu_w, mem_w = 3200.0, 32 * 2.12, 256 * 0.392
    assert (est.power.gpu_w, est.power.cpu_w, est.power.memory_w) == pytest.approx((gpu_w, cpu_w, mem_w))
    assert est.it_kwh == pytest.approx((gpu_w + cpu_w + mem_w) * 4 / 1000)  # 13.472768 kWh
    assert est.kwh == pytest.approx(13.472768 * 1.1)
    assert est.kg_co2e(300.0) == pytest.approx(13.472768 * 1.1 * 0.3)
    text = " ".join(est.assumptions)
    for needle in ("400 W TDP", "50% utilisation", "0.392 W/GB", "PUE 1.1"):
        assert needle in text


def test_power_watts_overrides_the_hardware_but_not_the_pue() -> None:
    spec = parse_jobspec(
        {
            "name": "a",
            "command": "x",
            "duration": "90m",
            "power_watts": 2800,
            "hardware": {"gpu": "H100", "gpus": 8},
        }
    )
    est = estimate_energy(spec, 1.2)
    assert est.power.it_w == 2800 and est.power.gpu_w == 0
    assert est.kwh == pytest.approx(2.8 * 1.5 * 1.2)
    assert est.to_dict()["source"] == "power_watts"


def test_defaults_are_stated() -> None:
    spec = parse_jobspec({"name": "a", "command": "x", "duration": "1h", "hardware": {"gpus": 2}})
    est = estimate_energy(spec, None)
    assert est.pue == 1.56
    assert est.power.gpu_w == 2 * 200.0  # Green Algorithms' unnamed GPU
    text = " ".join(est.assumptions)
    assert "assumed 4 vCPUs and 16 GB" in text and "PUE 1.56 assumed" in text


def test_utilisation_is_a_parameter() -> None:
    spec = parse_jobspec(
        {"name": "a", "command": "x", "duration": "1h", "hardware": {"gpu": "T4", "vcpus": 10}}
    )
    est = EnergyModel(gpu_utilisation=0.5, cpu_utilisation=1.0).estimate(spec, 1.0)
    assert est.power.gpu_w == 35.0
    assert est.power.cpu_w == pytest.approx(35.0)
    with pytest.raises(ValueError):
        EnergyModel(gpu_utilisation=1.5)


def test_required_gpus_are_in_the_table() -> None:
    names = (
        "H100",
        "H200",
        "A100",
        "A100 40GB",
        "A100 80GB",
        "L4",
        "A10G",
        "T4",
        "V100",
        "L40S",
        "K80",
        "P100",
    )
    for name in (*names, "TPU v4", "TPU v5e"):
        row = lookup_gpu(name)
        assert row is not None, name
        assert row.source and row.year.isdigit(), row  # every row says where and when
    assert lookup_gpu("tpu-v5e") == lookup_gpu("TPU v5 lite")
    assert normalise_gpu_name("NVIDIA Tesla V100") == normalise_gpu_name("v-100") == "V100"
    assert lookup_gpu("B9000") is None


def _shared_rows(path: Path, key: str, skip: int = 0) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        for _ in range(skip):
            f.readline()
        return {row[key].strip(): row for row in csv.DictReader(f)}


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (the upstream tables) is not present")
def test_bundled_rows_match_their_sources() -> None:
    ga = _shared_rows(SHARED / "green-algorithms" / "TDP_gpu.csv", "model", skip=1)
    ml = _shared_rows(SHARED / "mlco2-impact" / "gpus.csv", "name")
    for row in gpu_table().values():
        if row.source == "green-algorithms":
            upstream = float(ga[row.source_row]["TDP"] or ga[row.source_row]["TDP_per_core"])
        elif row.source == "mlco2-impact":
            upstream = float(ml[row.source_row]["tdp_watts"])
        elif row.source == "nvidia-datasheet":
            assert row.model == "H200" and row.tdp_watts == 700
            continue
        else:  # no open table and no vendor figure: no TDP, said so
            assert row.source == "google-cloud-docs" and row.tdp_watts is None, row.model
            assert "publishes no TDP" in row.note
            continue
        assert row.tdp_watts == upstream, row.model
    ccf = {
        (r["provider"], r["constant"]): r["value"]
        for r in csv.DictReader((SHARED / "cloud-carbon-footprint" / "ccf_cloud_constants.csv").open())
    }
    host = host_power()
    assert host.cpu_min_w_per_vcpu == float(ccf[("aws", "MIN_WATTS_AVG")])
    assert host.cpu_max_w_per_vcpu == float(ccf[("aws", "MAX_WATTS_AVG")])
    assert host.cpu_utilisation == float(ccf[("aws", "AVG_CPU_UTILIZATION_2020")]) / 100
    assert host.memory_w_per_gb == pytest.approx(float(ccf[("aws", "MEMORY_COEFFICIENT")]) * 1000)
    pue = _shared_rows(SHARED / "green-algorithms" / "defaults_PUE.csv", "provider", skip=1)
    assert host.default_pue == float(pue["Unknown"]["PUE"])


def test_a_model_without_a_published_tdp_needs_power_watts() -> None:
    """TPU v5e: Google publishes no TDP, so the spec must bring a measured draw."""
    from carbonshift.config.jobspec import JobSpecError

    job = {"name": "a", "command": "x", "duration": "1h"}
    with pytest.raises(JobSpecError, match=r"hardware.gpu: TPU v5e has no published TDP.*power_watts"):
        parse_jobspec({**job, "hardware": {"gpu": "TPU v5e", "gpus": 8}})
    spec = parse_jobspec({**job, "power_watts": 1600, "hardware": {"gpu": "tpu-v5e", "gpus": 8}})
    assert spec.hardware.gpu == "TPU v5e"
    assert estimate_energy(spec, 1.1).kwh == pytest.approx(1.6 * 1.1)
