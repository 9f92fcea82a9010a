"""The CPU and memory models against hand calculations with the bundled Cloud Carbon Footprint figures."""

from __future__ import annotations

import pytest

from carbonshift.planner.power_tables import host_power
from carbonshift.tracker.sources.base import Tick
from carbonshift.tracker.sources.models import CpuModelSource, MemoryModelSource


def test_cpu_model_by_hand() -> None:
    h = host_power()
    assert (h.cpu_min_w_per_vcpu, h.cpu_max_w_per_vcpu) == (0.74, 3.5)  # the table the planner uses
    cpu = CpuModelSource(4)
    # 4 vCPUs at 25 % for 2 s: 4 x (0.74 + 0.25 x (3.5 - 0.74)) W x 2 s = 4 x 1.43 x 2 = 11.44 J
    assert cpu.read(Tick(2.0, 0.25)) == pytest.approx(11.44)
    # then 1 s idle: 4 x 0.74 = 2.96 J; then 1 s flat out: 4 x 3.5 = 14 J
    assert cpu.read(Tick(1.0, 0.0)) == pytest.approx(2.96)
    assert cpu.read(Tick(1.0, 1.0)) == pytest.approx(14.0)
    extra = cpu.info().extra
    # idle share: 4 x 0.74 W x 4 s of 28.4 J
    assert extra["idle_share"] == pytest.approx(11.84 / 28.4, abs=1e-4)
    assert extra["mean_utilisation"] == pytest.approx((0.5 + 0 + 1) / 4)
    assert cpu.info().kind == "modelled"


def test_cpu_model_clamps_utilisation() -> None:
    cpu = CpuModelSource(2)
    assert cpu.watts(1.7) == pytest.approx(7.0) and cpu.watts(-0.1) == pytest.approx(1.48)


def test_memory_model_by_hand() -> None:
    ram = MemoryModelSource(16.0)
    assert ram.read(Tick(2.0, 0.9)) == pytest.approx(16 * 0.392 * 2)
    assert "16.0 GB x 0.392 W/GB" in ram.info().detail
