"""How much energy a job uses: IT power from the hardware (or a measured draw) times the PUE times the
duration, with every assumption written out so a user can see why a number is what it is.

Power comes from the bundled tables (data/SOURCES.md): GPUs at TDP, CPUs per vCPU at an assumed
utilisation (Cloud Carbon Footprint), memory per GB. A measured `power_watts` replaces the hardware
model; it is taken as the draw at the machine, so the facility's PUE still multiplies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from carbonshift.config.jobspec import DEFAULT_MEMORY_GB, DEFAULT_VCPUS, JobSpec, format_duration
from carbonshift.planner.power_tables import (
    GpuPower,
    HostPower,
    gpu_table,
    host_power,
    lookup_gpu,
    no_public_tdp,
)


@dataclass(frozen=True, slots=True)
class PowerBreakdown:
    """IT power in W by component; `measured_w` is set (and the others 0) when the spec gives power_watts."""

    gpu_w: float
    cpu_w: float
    memory_w: float
    measured_w: float = 0.0
    assumptions: tuple[str, ...] = ()

    @property
    def it_w(self) -> float:
        return self.gpu_w + self.cpu_w + self.memory_w + self.measured_w

    @property
    def source(self) -> str:
        return "power_watts" if self.measured_w else "hardware model"


@dataclass(frozen=True, slots=True)
class EnergyEstimate:
    """Energy of one run of the job in one place (the PUE is the place's)."""

    power: PowerBreakdown
    pue: float
    duration_s: int
    pue_stated: bool = True  # False: the region gave none and the default was used
    it_kwh: float = field(init=False)
    kwh: float = field(init=False)  # what the grid supplies: IT energy times PUE

    def __post_init__(self) -> None:
        # stored, not derived on each access: a plan reads them once per region
        it_kwh = self.power.it_w * self.duration_s / 3.6e6
        object.__setattr__(self, "it_kwh", it_kwh)
        object.__setattr__(self, "kwh", it_kwh * self.pue)

    @property
    def assumptions(self) -> tuple[str, ...]:
        """Every assumption behind the figure, in words. Built when asked for (the planner makes an
        estimate per region and shows the words for a few)."""
        if self.pue_stated:
            pue_note = f"PUE {self.pue:g} (the region's)"
        else:
            pue_note = (
                f"PUE {self.pue:g} assumed: the region states none (Green Algorithms' default, "
                "Uptime Institute 2024 survey)"
            )
        return (
            *self.power.assumptions,
            pue_note,
            f"energy = IT power x PUE x {format_duration_s(self.duration_s)}; restarts of an "
            "interrupted job add nothing",
        )

    @property
    def facility_w(self) -> float:
        return self.power.it_w * self.pue

    def kg_co2e(self, mean_g_per_kwh: float) -> float:
        return self.kwh * mean_g_per_kwh / 1000.0

    def to_dict(self) -> dict[str, Any]:
        power: dict[str, float] = {
            "gpu": round(self.power.gpu_w, 3),
            "cpu": round(self.power.cpu_w, 3),
            "memory": round(self.power.memory_w, 3),
        }
        if self.power.measured_w:
            power["measured"] = round(self.power.measured_w, 3)
        return {
            "kwh": round(self.kwh, 6),
            "it_kwh": round(self.it_kwh, 6),
            "pue": self.pue,
            "power_w": power,
            "it_power_w": round(self.power.it_w, 3),
            "source": self.power.source,
            "assumptions": list(self.assumptions),
        }


class EnergyModel:
    """The hardware power model. Utilisations are parameters so a caller with better knowledge (a
    tracker's measurement of a previous run) can say so; defaults are the tables' stated ones."""

    def __init__(
        self,
        *,
        gpu_utilisation: float = 1.0,
        cpu_utilisation: float | None = None,
        host: HostPower | None = None,
    ) -> None:
        self.host = host or host_power()
        if not 0.0 <= gpu_utilisation <= 1.0:
            raise ValueError("gpu_utilisation is a fraction in [0, 1]")
        self.gpu_utilisation = gpu_utilisation
        self.cpu_utilisation = self.host.cpu_utilisation if cpu_utilisation is None else cpu_utilisation
        if not 0.0 <= self.cpu_utilisation <= 1.0:
            raise ValueError("cpu_utilisation is a fraction in [0, 1]")
        self._power_cache: dict[tuple[object, ...], PowerBreakdown] = {}

    @property
    def cpu_w_per_vcpu(self) -> float:
        h = self.host
        return h.cpu_min_w_per_vcpu + self.cpu_utilisation * (h.cpu_max_w_per_vcpu - h.cpu_min_w_per_vcpu)

    def power(self, spec: JobSpec) -> PowerBreakdown:
        """IT power of the spec's hardware (or its measured draw). Remembered per distinct hardware:
        a batch of specs usually shares a few machine shapes."""
        hw = spec.hardware
        key = (spec.power_watts, hw.gpu, hw.gpus, hw.vcpus, hw.memory_gb, frozenset(hw.model_fields_set))
        found = self._power_cache.get(key)
        if found is None:
            if len(self._power_cache) >= 4096:
                self._power_cache.clear()
            found = self._power_cache[key] = self._power(spec)
        return found

    def _power(self, spec: JobSpec) -> PowerBreakdown:
        if spec.power_watts is not None:
            return PowerBreakdown(
                0.0,
                0.0,
                0.0,
                measured_w=spec.power_watts,
                assumptions=(
                    f"power: {spec.power_watts:g} W as measured (power_watts in the spec), replacing the "
                    "hardware model; taken as the draw at the machine, so PUE still applies",
                ),
            )
        hw = spec.hardware
        notes: list[str] = []
        gpu_w = 0.0
        if hw.gpus:
            row = self._gpu_row(hw.gpu)
            if row.tdp_watts is None:  # the job spec refuses this without power_watts
                raise ValueError(no_public_tdp(row))
            gpu_w = hw.gpus * row.tdp_watts * self.gpu_utilisation
            named = hw.gpu or f"an unnamed GPU ('{row.model}')"
            notes.append(
                f"GPU: {hw.gpus} x {named} at {row.tdp_watts:g} W TDP ({row.source}: {row.source_row}), "
                f"{self.gpu_utilisation:.0%} utilisation"
            )
        per_vcpu = self.cpu_w_per_vcpu
        cpu_w = hw.vcpus * per_vcpu
        h = self.host
        notes.append(
            f"CPU: {hw.vcpus} vCPUs x {per_vcpu:.3g} W ({h.cpu_min_w_per_vcpu:g}-{h.cpu_max_w_per_vcpu:g} W "
            f"per vCPU at {self.cpu_utilisation:.0%} utilisation, Cloud Carbon Footprint averages)"
        )
        memory_w = hw.memory_gb * h.memory_w_per_gb
        notes.append(f"memory: {hw.memory_gb:g} GB x {h.memory_w_per_gb:g} W/GB (Cloud Carbon Footprint)")
        unset = [k for k in ("vcpus", "memory_gb") if k not in hw.model_fields_set]
        if unset:
            notes.append(
                f"hardware not fully given: assumed {DEFAULT_VCPUS} vCPUs and {DEFAULT_MEMORY_GB:g} GB "
                f"where missing ({', '.join(unset)})"
            )
        return PowerBreakdown(gpu_w, cpu_w, memory_w, assumptions=tuple(notes))

    def estimate(self, spec: JobSpec, pue: float | None) -> EnergyEstimate:
        return self.at_pue(self.power(spec), spec.duration_s, pue)

    def at_pue(self, power: PowerBreakdown, duration_s: int, pue: float | None) -> EnergyEstimate:
        """The same IT power in another building: only the PUE changes, so plans over many regions
        compute the hardware model once."""
        if pue is None:
            return EnergyEstimate(power, self.host.default_pue, duration_s, pue_stated=False)
        if pue < 1.0:
            raise ValueError(f"a PUE below 1 ({pue}) is not physical")
        return EnergyEstimate(power, pue, duration_s)

    @staticmethod
    def _gpu_row(name: str | None) -> GpuPower:
        table = gpu_table()
        if name is None:
            return table["Any"]
        row = table.get(name) or lookup_gpu(name)  # a validated spec holds the table's own name
        if row is None:  # the job spec checks names, so only a hand-built spec gets here
            raise ValueError(f"unknown GPU model {name!r}")
        return row


def format_duration_s(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


_DEFAULT_MODEL: EnergyModel | None = None


def default_model() -> EnergyModel:
    global _DEFAULT_MODEL  # noqa: PLW0603 - built once; the tables never change in a process
    if _DEFAULT_MODEL is None:
        _DEFAULT_MODEL = EnergyModel()
    return _DEFAULT_MODEL


def estimate_energy(spec: JobSpec, pue: float | None, *, model: EnergyModel | None = None) -> EnergyEstimate:
    """Energy of `spec` in a building with this PUE (None: the default PUE, stated)."""
    return (model or default_model()).estimate(spec, pue)


__all__ = [
    "EnergyEstimate",
    "EnergyModel",
    "PowerBreakdown",
    "default_model",
    "estimate_energy",
]
