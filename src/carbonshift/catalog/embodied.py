"""Embodied emissions per run: the share of the hardware's manufacturing and disposal emissions that a
run is charged, by the SCI specification's `M = TE x (TR/EL) x (RR/ToR)` (ISO/IEC 21031:2024).

- TE, the server's total embodied kgCO2e, per instance type from the bundled `data/embodied.csv`:
  Cloud Carbon Footprint's coefficients (Apache-2.0) where CCF lists the type, else worked out from the
  host's hardware by CCF's own method (`ccf_server_kg`), each row saying which and how.
- TR/EL, time-share: the run's duration over the server's expected lifespan, 4 years (CCF's
  SERVER_EXPECTED_LIFESPAN, 35,040 h, after the Dell PowerEdge R740 life-cycle assessment).
- RR/ToR, resource-share, per component: the GPUs' part of TE by GPUs reserved / GPUs in the host,
  the rest by vCPUs reserved / vCPUs in the host (CCF's share). A whole-server type has both at 1;
  a one-GPU slice of an eight-GPU host pays an eighth of the GPUs' embodied emissions, not the (often
  smaller) vCPU fraction.

Hosts the table does not know (local machines, other clouds) fall back to their own hardware by
CCF's method, the whole host reserved. Pure apart from reading the bundled table once per process;
the planner may call `embodied_for` freely.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from carbonshift.catalog.instances import candidates
from carbonshift.config.jobspec import Hardware

HOURS_PER_YEAR = 24 * 365
LIFESPAN_YEARS = 4.0  # CCF SERVER_EXPECTED_LIFESPAN = 35,040 h (Dell R740 LCA via Teads)
LIFESPAN_H = LIFESPAN_YEARS * HOURS_PER_YEAR

# Cloud Carbon Footprint's server model (Teads, "Building an AWS EC2 Carbon Emissions Dataset", 2021,
# chapter 5, from the Dell PowerEdge R740 LCA), as used for every row of CCF's
# coefficients-{aws,gcp,azure}-embodied.csv: a base server with one CPU, 16 GB of memory and no
# drives, plus each additional part.
BASE_SERVER_KG = 1000.0
BASE_MEMORY_GB = 16.0
MEMORY_KG_PER_GB = 533.0 / 384.0  # 533 kgCO2e per 384 GB of additional memory
EXTRA_CPU_KG = 100.0  # per CPU (socket) beyond the first
SSD_KG = 100.0  # per SSD
HDD_KG = 50.0  # per HDD
GPU_KG = 150.0  # per GPU

CCF_METHOD = (
    "Cloud Carbon Footprint's method (Teads 2021, from the Dell R740 LCA): 1000 kg base server with 1 CPU "
    "and 16 GB, + 533/384 kg per further GB of memory, + 100 kg per further CPU, + 100 kg per SSD, + 50 kg "
    "per HDD, + 150 kg per GPU"
)


@dataclass(frozen=True, slots=True)
class HostEmbodied:
    """One instance type's host: its total embodied emissions and what a type reserves of it."""

    provider: str
    key: str  # the catalog's InstanceType.key
    te_kg_co2e: float  # the whole server (TE)
    gpu_kg_co2e: float  # the GPUs' part of TE
    host_vcpus: int
    host_gpus: int
    vcpus: int  # what the type reserves
    gpus: int
    source: str
    derivation: str

    @property
    def vcpu_share(self) -> float:
        return min(1.0, self.vcpus / self.host_vcpus)

    @property
    def gpu_share(self) -> float:
        return min(1.0, self.gpus / self.host_gpus) if self.host_gpus else 0.0

    @property
    def reserved_kg_co2e(self) -> float:
        """TE x RR/ToR, per component: what the type holds of the server while it runs."""
        return (self.te_kg_co2e - self.gpu_kg_co2e) * self.vcpu_share + self.gpu_kg_co2e * self.gpu_share


@dataclass(frozen=True, slots=True)
class EmbodiedEstimate:
    """A run's embodied emissions (SCI's M) with where the number comes from."""

    kg_co2e: float
    source: str
    assumptions: tuple[str, ...]
    te_kg_co2e: float = 0.0  # the whole server's total embodied emissions
    resource_share: float = 1.0  # reserved kg / TE (RR/ToR, both components together)
    time_share: float = 0.0  # TR/EL

    def to_dict(self) -> dict[str, object]:
        return {
            "kg_co2e": self.kg_co2e,
            "source": self.source,
            "server_kg_co2e": round(self.te_kg_co2e, 2),
            "resource_share": round(self.resource_share, 6),
            "time_share": self.time_share,
            "lifespan_years": LIFESPAN_YEARS,
            "assumptions": list(self.assumptions),
        }


def ccf_server_kg(
    *, memory_gb: float, cpus: int = 1, ssds: int = 0, hdds: int = 0, gpus: int = 0
) -> tuple[float, float]:
    """(TE, the GPUs' part of it) in kgCO2e for a server with this hardware, by CCF's method. Reproduces
    CCF's own totals (m5: 384 GB, 2 CPUs -> 1610.79 kg)."""
    if memory_gb < 0 or cpus < 1 or ssds < 0 or hdds < 0 or gpus < 0:
        raise ValueError("memory_gb >= 0, cpus >= 1, and no negative drive or GPU counts")
    gpu_kg = gpus * GPU_KG
    total = (
        BASE_SERVER_KG
        + max(0.0, memory_gb - BASE_MEMORY_GB) * MEMORY_KG_PER_GB
        + (cpus - 1) * EXTRA_CPU_KG
        + ssds * SSD_KG
        + hdds * HDD_KG
        + gpu_kg
    )
    return total, gpu_kg


@cache
def embodied_table() -> dict[tuple[str, str], HostEmbodied]:
    """(provider, instance key) -> its host's embodied emissions (data/embodied.csv, read once)."""
    text = resources.files("carbonshift.catalog").joinpath("data/embodied.csv").read_text("utf-8")
    out: dict[tuple[str, str], HostEmbodied] = {}
    for row in csv.DictReader(text.splitlines()):
        entry = HostEmbodied(
            provider=row["provider"],
            key=row["key"],
            te_kg_co2e=float(row["te_kg_co2e"]),
            gpu_kg_co2e=float(row["gpu_kg_co2e"]),
            host_vcpus=int(row["host_vcpus"]),
            host_gpus=int(row["host_gpus"]),
            vcpus=int(row["vcpus"]),
            gpus=int(row["gpus"]),
            source=row["source"],
            derivation=row["derivation"],
        )
        out[(entry.provider, entry.key)] = entry
    return out


def host_for(provider: str, instance_type: str, gpus: int | None = None) -> HostEmbodied | None:
    """The table's row for an instance type. Compute Engine N1 machines come with 0 to 8 attached GPUs
    under one name: `gpus` picks the matching attachment row (`n1-standard-8+1xnvidia-tesla-t4`), and
    without GPUs the machine alone."""
    table = embodied_table()
    provider = provider.lower()
    found = table.get((provider, instance_type))
    if found is not None or provider != "gcp" or not gpus:
        return found
    for (p, key), row in table.items():
        if p == provider and key.split("+", 1)[0] == instance_type and row.gpus == gpus:
            return row
    return None


def _amortise(reserved_kg: float, duration_s: float) -> tuple[float, float]:
    if duration_s < 0:
        raise ValueError("duration_s must not be negative")
    time_share = duration_s / 3600.0 / LIFESPAN_H
    return reserved_kg * time_share, time_share


def amortised_kg(reserved_kg: float, duration_s: float) -> float:
    """What a run of `duration_s` seconds is charged of `reserved_kg` (TE x RR/ToR, what it holds of
    the server): the `kg_co2e` of every estimate here, by the same arithmetic, so a caller that
    remembers `reserved_in_region` per region and hardware gets the same float for any duration."""
    return _amortise(reserved_kg, duration_s)[0]


@lru_cache(maxsize=4096)
def _time_note(duration_s: float) -> str:
    """Remembered: a batch's runs last one of a few hundred durations (to the minute)."""
    return (
        f"time-share: {duration_s / 3600:.4g} h of a {LIFESPAN_YEARS:g}-year lifespan "
        f"({LIFESPAN_H:,.0f} h, CCF's SERVER_EXPECTED_LIFESPAN)"
    )


def embodied_for(
    *,
    duration_s: float,
    provider: str | None = None,
    instance_type: str | None = None,
    gpus: int = 0,
    vcpus: int = 4,
    memory_gb: float = 16.0,
) -> EmbodiedEstimate:
    """A run's embodied emissions (SCI's M) on `provider`'s `instance_type` for `duration_s` seconds.

    When the table knows the type, its host's TE and shares are used; otherwise (local machines, a
    type the table lacks, no type given) the run is charged a whole server built from `gpus`, `vcpus`
    and `memory_gb` by CCF's method (one CPU, no drives). Every assumption is in `assumptions`."""
    host = host_for(provider, instance_type, gpus) if provider and instance_type else None
    if host is not None:
        return _from_host(host, duration_s)
    te, _gpu_kg = ccf_server_kg(memory_gb=memory_gb, gpus=gpus)
    kg, time_share = _amortise(te, duration_s)
    named = f"{provider}:{instance_type} is not in the embodied table; " if provider and instance_type else ""
    gpu_text = f"{gpus} GPU(s), " if gpus else ""
    return EmbodiedEstimate(
        kg_co2e=kg,
        source="ccf-method (host hardware)",
        assumptions=(
            f"{named}server from the host's hardware ({gpu_text}{vcpus} vCPUs, {memory_gb:g} GB): "
            f"TE {te:.2f} kgCO2e by {CCF_METHOD}; one CPU and no drives assumed",
            "resource-share: 1 (the whole host is taken to be reserved for the run)",
            _time_note(duration_s),
        ),
        te_kg_co2e=te,
        resource_share=1.0,
        time_share=time_share,
    )


def embodied_in_region(provider: str, region: str, hardware: Hardware, duration_s: float) -> EmbodiedEstimate:
    """What a plan option's run would be charged: the instance type a launch would pick in
    `provider:region` for `hardware` (the smallest that fits, as `pick_instance` does), else, where the
    catalog has none (local, your locations, clusters), a server built from `hardware` itself."""
    host = _launch_host(provider, region, hardware)
    if host is not None:
        return _from_host(host, duration_s)
    return embodied_for(
        duration_s=duration_s, gpus=hardware.gpus, vcpus=hardware.vcpus, memory_gb=hardware.memory_gb
    )


def reserved_in_region(provider: str, region: str, hardware: Hardware) -> float:
    """The kgCO2e `embodied_in_region` amortises (TE x RR/ToR, whatever the duration): its `kg_co2e`
    for any `duration_s` is `amortised_kg(reserved_in_region(...), duration_s)`, the same float. For a
    caller that shows runs of many durations in few (region, hardware) pairs."""
    host = _launch_host(provider, region, hardware)
    if host is not None:
        return host.reserved_kg_co2e
    return ccf_server_kg(memory_gb=hardware.memory_gb, gpus=hardware.gpus)[0]


def _launch_host(provider: str, region: str, hardware: Hardware) -> HostEmbodied | None:
    found = candidates(provider, region, hardware)
    return embodied_table()[(found[0].provider, found[0].key)] if found else None


def _from_host(host: HostEmbodied, duration_s: float) -> EmbodiedEstimate:
    kg, time_share = _amortise(host.reserved_kg_co2e, duration_s)
    te_note, share_note = _host_notes(host)
    return EmbodiedEstimate(
        kg_co2e=kg,
        source=host.source,
        assumptions=(te_note, share_note, _time_note(duration_s)),
        te_kg_co2e=host.te_kg_co2e,
        resource_share=host.reserved_kg_co2e / host.te_kg_co2e,
        time_share=time_share,
    )


@lru_cache(maxsize=4096)
def _host_notes(host: HostEmbodied) -> tuple[str, str]:
    """A host's TE and resource-share notes, worked out once per host (the table has a few hundred
    rows; a plan shows the same few for runs of every duration)."""
    share = f"{host.vcpus}/{host.host_vcpus} vCPUs of the rest"
    if host.gpu_kg_co2e:
        share = f"{host.gpus}/{host.host_gpus} GPUs of the GPUs' {host.gpu_kg_co2e:g} kg, " + share
    return (
        f"{host.provider}:{host.key}: server TE {host.te_kg_co2e:.2f} kgCO2e ({host.derivation})",
        f"resource-share: {share}",
    )


__all__ = [
    "LIFESPAN_H",
    "LIFESPAN_YEARS",
    "EmbodiedEstimate",
    "HostEmbodied",
    "amortised_kg",
    "ccf_server_kg",
    "embodied_for",
    "embodied_in_region",
    "embodied_table",
    "host_for",
    "reserved_in_region",
]
