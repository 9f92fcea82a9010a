"""The bundled power tables (GPU TDP, per-vCPU CPU draw, memory, default PUE), read once from package data.

Kept apart from the energy model so the job spec can check GPU names without importing the planner
(the job spec is validated long before anything is planned). Reading package data is the only file
access here; it happens once per process, never during planning.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_PREFIXES = ("NVIDIA", "TESLA", "GEFORCE", "QUADRO")


@dataclass(frozen=True, slots=True)
class GpuPower:
    """One accelerator's row. `tdp_watts` is None where no TDP is published (TPU v5e and later): such
    a model is known by name, but its energy needs a measured `power_watts`."""

    model: str
    tdp_watts: float | None
    source: str
    source_row: str
    note: str
    year: str = ""  # the year of the cited table or document


@dataclass(frozen=True, slots=True)
class HostPower:
    cpu_min_w_per_vcpu: float
    cpu_max_w_per_vcpu: float
    cpu_utilisation: float
    memory_w_per_gb: float
    default_pue: float
    sources: dict[str, str]


def normalise_gpu_name(name: str) -> str:
    """'NVIDIA Tesla V100', 'v100' and 'V-100' are one model: compare upper-case letters and digits
    only, without the brand words people add or leave out."""
    key = re.sub(r"[^A-Z0-9]", "", name.upper())
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("carbonshift.planner").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@cache
def gpu_table() -> dict[str, GpuPower]:
    """Canonical model name -> power, in table order."""
    return {
        row["model"]: GpuPower(
            row["model"],
            float(row["tdp_watts"]) if row["tdp_watts"].strip() else None,
            row["source"],
            row["source_row"],
            row["note"],
            row["year"],
        )
        for row in _read("gpu_tdp.csv")
    }


@cache
def _gpu_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for row in _read("gpu_tdp.csv"):
        names = [row["model"], *[a for a in row["aliases"].split(";") if a.strip()]]
        for name in names:
            key = normalise_gpu_name(name)
            if index.setdefault(key, row["model"]) != row["model"]:
                raise RuntimeError(f"gpu_tdp.csv: {name!r} names two models")
    return index


def known_gpu_models() -> tuple[str, ...]:
    return tuple(gpu_table())


def no_public_tdp(row: GpuPower) -> str:
    """Why a model without a published TDP cannot be estimated, for the message that asks for power_watts."""
    return (
        f"{row.model} has no published TDP ({row.source}: {row.source_row}); give power_watts, "
        "a measured average draw in W"
    )


def lookup_gpu(name: str) -> GpuPower | None:
    """The table row for a GPU name as a person writes it, or None when it is not in the table."""
    model = _gpu_index().get(normalise_gpu_name(name))
    return gpu_table()[model] if model is not None else None


@cache
def host_power() -> HostPower:
    rows = {row["key"]: row for row in _read("host_power.csv")}
    return HostPower(
        cpu_min_w_per_vcpu=float(rows["cpu_min_w_per_vcpu"]["value"]),
        cpu_max_w_per_vcpu=float(rows["cpu_max_w_per_vcpu"]["value"]),
        cpu_utilisation=float(rows["cpu_utilisation"]["value"]),
        memory_w_per_gb=float(rows["memory_w_per_gb"]["value"]),
        default_pue=float(rows["default_pue"]["value"]),
        sources={k: f"{r['source']} ({r['source_row']})" for k, r in rows.items()},
    )
