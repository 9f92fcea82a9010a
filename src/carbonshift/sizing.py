"""Host size by the instance a region would launch, for a spec that names its GPUs but not its host.

A spec that says `gpus: 8, gpu: A100` and nothing about vCPUs or memory would be modelled with the
defaults (4 vCPUs, 16 GB), while a launch in that region picks a p4d.24xlarge (96 vCPUs, 1,152 GB): the
plan would understate the energy of the machine the job really gets by hundreds of watts. Here each
candidate region's energy is worked out with the host size of the type the launcher would pick there
(`catalog.instances.pick_instance`, the same choice), and the assumption says so. A region the instance
catalog does not cover (local, the user's locations, clusters) keeps the spec's figures.
"""

from __future__ import annotations

import dataclasses

from carbonshift.catalog.instances import InstanceType, candidates, catalog_providers
from carbonshift.config.jobspec import Hardware, JobSpec
from carbonshift.planner.energy import EnergyEstimate, EnergyModel, default_model
from carbonshift.planner.placement import PlanRegion, region_ref
from carbonshift.planner.plan import EnergyFor, pue_of

SIZED_FIELDS = ("vcpus", "memory_gb")


def needs_sizing(spec: JobSpec) -> bool:
    """True when the spec leaves the host size to us: no measured power, and vCPUs or memory unset."""
    return spec.power_watts is None and not spec.hardware.model_fields_set.issuperset(SIZED_FIELDS)


def launch_type(region: PlanRegion, spec: JobSpec) -> InstanceType | None:
    """The type a launch would pick in `region` for the spec's hardware, or None (no catalog there)."""
    return launch_type_for(region.provider, region.region, spec.hardware)


def launch_type_for(provider: str, region: str, hardware: Hardware) -> InstanceType | None:
    """`launch_type` by name: what the scheduler records as the instance type of a run's hardware."""
    provider = provider.lower()
    if provider not in catalog_providers():
        return None
    found = candidates(provider, region, hardware)
    return found[0] if found else None


def sized_energy(spec: JobSpec, model: EnergyModel | None = None) -> EnergyFor | None:
    """An `energy_for` that sizes the host by each region's launch type; None when the spec gives its
    host size (or its measured power), so the planner's usual, faster path applies."""
    if not needs_sizing(spec):
        return None
    energy_model = model or default_model()
    duration_s = spec.duration_s
    by_type: dict[str, EnergyEstimate] = {}

    def energy_for(region: PlanRegion) -> EnergyEstimate:
        pue, stated = pue_of(region, energy_model.host.default_pue)
        itype = launch_type(region, spec)
        if itype is None:
            return EnergyEstimate(energy_model.power(spec), pue, duration_s, stated)
        key = f"{itype.key}|{pue}|{stated}"
        found = by_type.get(key)
        if found is None:
            given = spec.hardware.model_fields_set
            update = {f: getattr(itype, f) for f in SIZED_FIELDS if f not in given}
            hardware = spec.hardware.model_copy(update=update)
            power = energy_model.power(spec.model_copy(update={"hardware": hardware}))
            note = (
                f"host size: {itype.vcpus} vCPUs and {itype.memory_gb:g} GB of {itype.key}, the type a "
                f"launch picks in {region_ref(region)} for this hardware (the spec gives no "
                f"{' or '.join(sorted(update))})"
            )
            kept = tuple(a for a in power.assumptions if not a.startswith("hardware not fully given"))
            power = dataclasses.replace(power, assumptions=(*kept, note))
            found = by_type[key] = EnergyEstimate(power, pue, duration_s, stated)
        return found

    return energy_for


def sizing_notice(spec: JobSpec, regions: list[PlanRegion], shown: int = 6) -> str | None:
    """What host each region's energy assumes, in one line, when the spec leaves the host size open."""
    if not needs_sizing(spec):
        return None
    sized = [(region_ref(r), t) for r in regions if (t := launch_type(r, spec)) is not None]
    if not sized:
        return None
    parts = [f"{ref} {t.key} ({t.vcpus} vCPUs, {t.memory_gb:g} GB)" for ref, t in sized[:shown]]
    more = f" and {len(sized) - shown} more" if len(sized) > shown else ""
    return (
        "host size not given (vcpus/memory_gb): each region's energy uses the instance type a launch "
        f"would pick there: {'; '.join(parts)}{more}"
    )
