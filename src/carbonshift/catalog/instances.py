"""The bundled instance-type catalog: which instance type runs a job's hardware in which region.

One table (data/instance_types.csv, sources in data/INSTANCE_TYPES_SOURCES.md) serves two readers, so
they can never disagree: the launch (`pick_instance`: the smallest type that has the GPUs, vCPUs and memory asked for)
and the planner (`offers` / `filter_offering`: propose only regions where such a type exists). A job
without a GPU is never given a GPU instance: it would waste the accelerator and distort the energy
estimate. Providers the table does not know (`local`, a user's own locations) are not filtered: the
table says nothing about them.

It lives in the catalog, not in providers: the planner's advisor reads it to choose candidate regions,
and planning must not import the provider adapters (cloud SDK wrappers, launch code).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Protocol, TypeVar

from carbonshift.config.jobspec import Hardware
from carbonshift.errors import UserInputError

ANY_REGION = "*"


@dataclass(frozen=True, slots=True)
class InstanceType:
    provider: str
    name: str  # the provider's type / machine type / VM size, as its API takes it
    gpu: str | None  # canonical GPU model (gpu_tdp.csv), None for CPU types
    gpus: int
    vcpus: int
    memory_gb: float
    accelerator: str | None  # Compute Engine: accelerator type attached to an N1 machine
    regions: frozenset[str] | None  # None: every region of the provider
    source: str

    @property
    def key(self) -> str:
        """What a user writes to choose this type (`--instance-type`): the name, plus the attachment
        for an N1 machine with GPUs, since the same N1 machine comes with 0, 1, 2 or 4 of them."""
        return f"{self.name}+{self.gpus}x{self.accelerator}" if self.accelerator else self.name

    def offered_in(self, region: str) -> bool:
        return self.regions is None or region in self.regions

    def satisfies(self, hardware: Hardware) -> bool:
        if hardware.gpus > 0:
            if self.gpus < hardware.gpus:
                return False
            if hardware.gpu is not None and self.gpu != hardware.gpu:
                return False
        elif self.gpus > 0:
            return False
        return self.vcpus >= hardware.vcpus and self.memory_gb >= hardware.memory_gb

    def describe(self) -> str:
        gpu = f"{self.gpus}x {self.gpu}, " if self.gpus else ""
        return f"{self.provider} {self.key} ({gpu}{self.vcpus} vCPUs, {self.memory_gb:g} GB)"

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "name": self.name,
            "key": self.key,
            "gpu": self.gpu,
            "gpus": self.gpus,
            "vcpus": self.vcpus,
            "memory_gb": self.memory_gb,
            "accelerator": self.accelerator,
            "regions": sorted(self.regions) if self.regions is not None else ANY_REGION,
            "source": self.source,
        }


@cache
def instance_types() -> tuple[InstanceType, ...]:
    """Every row of the bundled table, in file order (read once per process)."""
    text = resources.files("carbonshift.catalog").joinpath("data/instance_types.csv").read_text("utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        regions = row["regions"].strip()
        out.append(
            InstanceType(
                provider=row["provider"],
                name=row["name"],
                gpu=row["gpu"] or None,
                gpus=int(row["gpus"]),
                vcpus=int(row["vcpus"]),
                memory_gb=float(row["memory_gb"]),
                accelerator=row["accelerator"] or None,
                regions=None if regions == ANY_REGION else frozenset(regions.split()),
                source=row["source"],
            )
        )
    return tuple(out)


@cache
def catalog_providers() -> frozenset[str]:
    return frozenset(t.provider for t in instance_types())


@cache
def _types_of(provider: str) -> tuple[InstanceType, ...]:
    """One provider's rows: a lookup reads its provider's few dozen types, not the whole table."""
    return tuple(t for t in instance_types() if t.provider == provider)


def _size_order(t: InstanceType) -> tuple[int, int, float, str]:
    return (t.gpus, t.vcpus, t.memory_gb, t.key)


def candidates(provider: str, region: str, hardware: Hardware) -> list[InstanceType]:
    """Types in `region` that satisfy `hardware`, smallest first (GPUs, then vCPUs, then memory)."""
    return list(_candidates(provider.lower(), region, hardware))


@lru_cache(maxsize=65536)
def _candidates(provider: str, region: str, hardware: Hardware) -> tuple[InstanceType, ...]:
    """Remembered per (provider, region, hardware), as `offers` is: a batch plan's JSON asks for each
    option's launch type (its embodied share) thousands of times over a few dozen rows each."""
    return tuple(
        sorted(
            (t for t in _types_of(provider) if t.offered_in(region) and t.satisfies(hardware)),
            key=_size_order,
        )
    )


@lru_cache(maxsize=65536)
def offers(provider: str, region: str, hardware: Hardware) -> bool:
    """Whether `provider:region` has an instance type for `hardware`. True for providers the table
    does not cover (local, user locations): there is nothing to say against them. Remembered per
    (provider, region, hardware): the table is bundled and read once, and a plan over 139 regions asks
    139 times (10 ms per API plan before)."""
    provider = provider.lower()
    if provider not in catalog_providers():
        return True
    return any(t.offered_in(region) and t.satisfies(hardware) for t in _types_of(provider))


def describe_hardware(hardware: Hardware) -> str:
    gpu = f"{hardware.gpus}x {hardware.gpu or 'any GPU'}, " if hardware.gpus else ""
    return f"{gpu}{hardware.vcpus} vCPUs, {hardware.memory_gb:g} GB"


def pick_instance(provider: str, region: str, hardware: Hardware) -> InstanceType:
    """The smallest type in `provider:region` with the GPU model and count, vCPUs and memory asked for.
    UserInputError (on `hardware`) otherwise, naming the regions that do offer it, or the largest
    type of that GPU when nothing is big enough."""
    provider = provider.lower()
    if provider not in catalog_providers():
        raise UserInputError("provider", f"no instance catalog for {provider!r}; known: {_known()}")
    found = candidates(provider, region, hardware)
    if found:
        return found[0]
    raise UserInputError("hardware", _why_none(provider, region, hardware))


def find_instance_type(provider: str, key: str) -> InstanceType | None:
    """An explicitly named type (its `key`), or None when the catalog does not list it."""
    provider = provider.lower()
    for t in instance_types():
        if t.provider == provider and t.key == key:
            return t
    return None


class _ProviderRegion(Protocol):
    """What filter_offering reads of a region (the catalog's Region, the planner's regions)."""

    @property
    def provider(self) -> str: ...

    @property
    def region(self) -> str: ...


R = TypeVar("R", bound=_ProviderRegion)


def filter_offering(regions: Sequence[R], hardware: Hardware) -> list[R]:
    """The regions that offer `hardware` (order kept). For the planner's candidate list: raises
    UserInputError("hardware", ...) when none is left, naming what was asked, so an empty plan is
    explained rather than silent. Regions of providers the table does not know pass unchanged."""
    left = [r for r in regions if offers(r.provider, r.region, hardware)]
    if regions and not left:
        shown = ", ".join(f"{r.provider}:{r.region}".lower() for r in regions[:5]) + (
            " ..." if len(regions) > 5 else ""
        )
        raise UserInputError(
            "hardware",
            f"no candidate region offers an instance with {describe_hardware(hardware)} "
            f"(candidates: {shown}); see `carbonshift providers instances`",
        )
    return left


def _known() -> str:
    return ", ".join(sorted(catalog_providers()))


def _why_none(provider: str, region: str, hardware: Hardware) -> str:
    wanted = describe_hardware(hardware)
    anywhere = sorted(
        {
            r
            for t in instance_types()
            if t.provider == provider and t.satisfies(hardware)
            for r in t.regions or ()
        }
    )
    any_region = any(
        t.provider == provider and t.regions is None and t.satisfies(hardware) for t in instance_types()
    )
    if anywhere or any_region:
        where = "every region" if any_region else ", ".join(anywhere)
        return f"{provider}:{region} has no instance type with {wanted}; offered in: {where}"
    same_gpu = [t for t in instance_types() if t.provider == provider and _same_kind(t, hardware)]
    if not same_gpu:
        models = sorted({t.gpu for t in instance_types() if t.provider == provider and t.gpu})
        return f"{provider} has no instance type with {wanted}; its GPU models here: {', '.join(models)}"
    biggest = max(same_gpu, key=_size_order)
    return f"{provider} has no instance type with {wanted}; the largest is {biggest.describe()}"


def _same_kind(t: InstanceType, hardware: Hardware) -> bool:
    if not hardware.gpus:
        return t.gpus == 0
    return t.gpus > 0 and (hardware.gpu is None or t.gpu == hardware.gpu)
