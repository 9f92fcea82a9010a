"""The run's embodied emissions and SCI score, from what the tracker knows about the machine.

Which hardware: the instance type named with `--instance-type` (`p4d.24xlarge`, or `aws:p4d.24xlarge`
when no cloud region is known), else the one the cloud's instance metadata reported, looked up in the
bundled embodied table; else the host's own hardware (GPUs seen, vCPUs, memory) by Cloud Carbon
Footprint's method, the whole host reserved. The run is charged for its duration (SCI's time reserved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carbonshift.catalog.embodied import EmbodiedEstimate, embodied_for
from carbonshift.config.jobspec import FunctionalUnit
from carbonshift.footprint import Footprint


@dataclass(frozen=True, slots=True)
class Hardware:
    """Where the run was: the cloud and instance type when known, and the host as the tracker saw it."""

    provider: str | None
    instance_type: str | None
    how: str  # "--instance-type", "aws instance metadata", "host hardware"
    gpus: int
    vcpus: int
    memory_gb: float


def which_hardware(
    *,
    explicit: str | None,
    place_provider: str | None,
    cloud_provider: str | None,
    cloud_instance_type: str | None,
    host: dict[str, Any],
) -> Hardware:
    """The hardware to charge: an explicit type first, then the detected one, then the host."""
    provider, kind, how = None, None, "host hardware"
    if explicit:
        named, sep, rest = explicit.partition(":")
        provider, kind = (named.lower(), rest) if sep else (place_provider or cloud_provider, explicit)
        how = "--instance-type"
    elif cloud_instance_type and cloud_provider:
        provider, kind, how = cloud_provider, cloud_instance_type, f"{cloud_provider} instance metadata"
    return Hardware(
        provider=provider,
        instance_type=kind,
        how=how,
        gpus=int(host.get("gpu_count") or 0),
        vcpus=int(host.get("cpu_count") or 1),
        memory_gb=float(host.get("ram_total_gb") or 0.0),
    )


def run_embodied(hw: Hardware, duration_s: float) -> tuple[EmbodiedEstimate, dict[str, Any]]:
    """The estimate and the report's `embodied` object (which hardware, how it was known, the numbers)."""
    estimate = embodied_for(
        duration_s=max(duration_s, 0.0),
        provider=hw.provider,
        instance_type=hw.instance_type,
        gpus=hw.gpus,
        vcpus=hw.vcpus,
        memory_gb=hw.memory_gb,
    )
    named = f"{hw.provider}:{hw.instance_type}" if hw.provider and hw.instance_type else hw.instance_type
    return estimate, {**estimate.to_dict(), "instance_type": named, "known_from": hw.how}


def run_footprint(
    operational_kg: float | None, embodied_kg: float, unit: FunctionalUnit | None
) -> Footprint | None:
    """Operational + embodied (and SCI per unit), or None when the operational part is unknown."""
    if operational_kg is None:
        return None
    return Footprint(
        operational_kg_co2e=operational_kg,
        embodied_kg_co2e=embodied_kg,
        unit_name=unit.name if unit is not None else None,
        unit_count=unit.count if unit is not None else None,
    )
