"""NVML through a stand-in module passed where the code takes `nvml=`: counters, power samples,
CUDA_VISIBLE_DEVICES, and a machine without a driver."""

from __future__ import annotations

import pytest

from carbonshift.tracker.power import select_sources
from carbonshift.tracker.settings import TrackerSettings
from carbonshift.tracker.sources.base import Component, Tick
from carbonshift.tracker.sources.nvml import NvmlSource, visible_indices

from .helpers import FakeNvml

UUIDS = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-cccc3333"]


def three_gpus() -> FakeNvml:
    return FakeNvml(
        [
            {"name": "NVIDIA H100 80GB HBM3", "uuid": UUIDS[0], "energy_mj": 1_000_000, "power_mw": 1},
            {"name": "Tesla P100-PCIE-16GB", "uuid": UUIDS[1], "power_mw": 200_000},  # no counter (Pascal)
            {"name": "Ancient", "uuid": UUIDS[2]},  # neither
        ]
    )


def test_counter_and_power_samples_give_exact_energies() -> None:
    nvml = three_gpus()
    src = NvmlSource(nvml, cuda_visible_devices=None)
    assert src.available(), src.problem
    src.start()
    nvml.gpus[0]["energy_mj"] += 350_000  # 350 J by the counter
    nvml.gpus[1]["power_mw"] = 300_000  # 200 W -> 300 W over 2 s: trapezoid 500 J
    assert src.read(Tick(2.0, 0.0)) == pytest.approx(350.0 + 500.0)
    nvml.gpus[0]["energy_mj"] += 1_000  # 1 J
    assert src.read(Tick(0.5, 0.0)) == pytest.approx(1.0 + 150.0)  # 300 W x 0.5 s
    info = src.info()
    assert info.kind == "measured" and len(info.devices) == 2
    assert "1 by total-energy counter" in info.detail and "1 by power samples" in info.detail
    assert "Ancient" in " ".join(info.extra["notes"])  # the GPU it could not read is named
    src.close()
    assert nvml.calls[-1] == "shutdown"


def test_counter_restart_is_not_negative_energy() -> None:
    nvml = three_gpus()
    src = NvmlSource(nvml, cuda_visible_devices="0")
    assert src.available()
    src.start()
    nvml.gpus[0]["energy_mj"] = 10  # the driver reloaded
    assert src.read(Tick(1.0, 0.0)) == 0.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, [0, 1, 2]),
        ("1", [1]),
        ("2,0", [2, 0]),
        ("GPU-bbbb", [1]),  # a UUID prefix, as CUDA takes it
        ("0,7,1", [0]),  # CUDA stops at the first entry that names no device
        ("", []),
        ("-1", []),
    ],
)
def test_cuda_visible_devices(env: str | None, expected: list[int]) -> None:
    assert visible_indices(env, 3, UUIDS) == expected


def test_only_visible_gpus_are_read() -> None:
    nvml = three_gpus()
    src = NvmlSource(nvml, cuda_visible_devices="GPU-bbbb2222")
    assert src.available()
    src.start()
    nvml.gpus[0]["energy_mj"] += 999_000  # not visible: not the job's
    assert src.read(Tick(1.0, 0.0)) == pytest.approx(200.0)
    assert src.info().devices == [f"1: Tesla P100-PCIE-16GB ({UUIDS[1]})"]


def test_no_visible_gpu_is_unavailable_with_the_reason() -> None:
    src = NvmlSource(three_gpus(), cuda_visible_devices="")
    assert not src.available()
    assert src.problem is not None and "no NVIDIA GPU visible" in src.problem


def test_no_driver_is_a_fallback_not_a_crash() -> None:
    nvml = FakeNvml([], init_error="Driver Not Loaded")
    src = NvmlSource(nvml)
    assert not src.available()
    assert src.problem is not None and "Driver Not Loaded" in src.problem
    sel = select_sources(TrackerSettings(rapl=False), nvml=nvml)
    assert [s.name for s in sel.sources] == ["cpu-model", "memory-model"]
    assert "Driver Not Loaded" in sel.fallbacks[Component.GPU]


def test_selection_adds_the_gpu_and_names_its_model() -> None:
    sel = select_sources(TrackerSettings(rapl=False), nvml=three_gpus())
    assert [s.name for s in sel.sources] == ["cpu-model", "memory-model", "nvml"]
    assert sel.host["gpu_count"] == 2
