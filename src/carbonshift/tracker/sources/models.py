"""Models for machines without energy counters (most cloud VMs, containers, this kind of machine).

CPU: the machine's draw is vCPUs x (min + utilisation x (max - min)) W, with Cloud Carbon Footprint's
per-vCPU figures, the same table the planner uses (planner/data/host_power.csv), so a plan and a
measurement disagree only where the utilisation or the duration did. The idle part (vCPUs x min) is
paid whether the job computes or not; the report states its share.
Memory: GB x W per GB, from the same table.
"""

from __future__ import annotations

from carbonshift.planner.power_tables import HostPower, host_power
from carbonshift.tracker.sources.base import Component, SourceInfo, Tick


class CpuModelSource:
    def __init__(self, vcpus: int, host: HostPower | None = None) -> None:
        if vcpus < 1:
            raise ValueError("vcpus must be at least 1")
        self.component = Component.CPU
        self.name = "cpu-model"
        self.problem: str | None = None
        self.vcpus = vcpus
        self.host = host or host_power()
        self.idle_j = 0.0
        self.total_j = 0.0
        self._util_s = 0.0
        self._time_s = 0.0

    def watts(self, utilisation: float) -> float:
        u = min(max(utilisation, 0.0), 1.0)
        h = self.host
        return self.vcpus * (h.cpu_min_w_per_vcpu + u * (h.cpu_max_w_per_vcpu - h.cpu_min_w_per_vcpu))

    def available(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def read(self, tick: Tick) -> float:
        joules = self.watts(tick.cpu_utilisation) * tick.dt_s
        self.idle_j += self.vcpus * self.host.cpu_min_w_per_vcpu * tick.dt_s
        self.total_j += joules
        self._util_s += min(max(tick.cpu_utilisation, 0.0), 1.0) * tick.dt_s
        self._time_s += tick.dt_s
        return joules

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        h = self.host
        return SourceInfo(
            Component.CPU,
            "cpu-model",
            "modelled",
            f"machine utilisation x {self.vcpus} vCPUs x ({h.cpu_min_w_per_vcpu:g} W idle .. "
            f"{h.cpu_max_w_per_vcpu:g} W busy per vCPU); {h.sources['cpu_max_w_per_vcpu']}",
            extra={
                "vcpus": self.vcpus,
                "w_per_vcpu": {"idle": h.cpu_min_w_per_vcpu, "busy": h.cpu_max_w_per_vcpu},
                "mean_utilisation": round(self._util_s / self._time_s, 4) if self._time_s else None,
                "idle_share": round(self.idle_j / self.total_j, 4) if self.total_j else None,
            },
        )


class MemoryModelSource:
    def __init__(self, memory_gb: float, host: HostPower | None = None) -> None:
        self.component = Component.RAM
        self.name = "memory-model"
        self.problem: str | None = None
        self.memory_gb = memory_gb
        self.host = host or host_power()

    @property
    def watts(self) -> float:
        return self.memory_gb * self.host.memory_w_per_gb

    def available(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def read(self, tick: Tick) -> float:
        return self.watts * tick.dt_s

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        h = self.host
        return SourceInfo(
            Component.RAM,
            "memory-model",
            "modelled",
            f"{self.memory_gb:.1f} GB x {h.memory_w_per_gb:g} W/GB; {h.sources['memory_w_per_gb']}",
            extra={"memory_gb": round(self.memory_gb, 3), "w_per_gb": h.memory_w_per_gb},
        )
