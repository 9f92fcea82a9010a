"""Choosing the power sources at start: a measurement where the machine offers one, the model where
not, and the reason for every fallback kept for the report (and a warning where the user can act)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from carbonshift.tracker.settings import TrackerSettings
from carbonshift.tracker.sources.base import Component, PowerSource
from carbonshift.tracker.sources.models import CpuModelSource, MemoryModelSource
from carbonshift.tracker.sources.nvml import NvmlSource
from carbonshift.tracker.sources.rapl import RaplSource


@dataclass
class Selection:
    sources: list[PowerSource]
    fallbacks: dict[Component, str] = field(default_factory=dict)  # why a measurement was not used
    warnings: list[str] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def select_sources(ts: TrackerSettings, *, nvml: Any | None = None) -> Selection:
    vcpus = ts.vcpus or os.cpu_count() or 1
    memory_bytes = psutil.virtual_memory().total
    memory_gb = ts.memory_gb or memory_bytes / 1e9
    sel = Selection(sources=[])
    for component, model in (
        (Component.CPU, CpuModelSource(vcpus)),
        (Component.RAM, MemoryModelSource(memory_gb)),
    ):
        if ts.rapl:
            rapl = RaplSource(component, ts.powercap_path)
            if rapl.available():
                sel.sources.append(rapl)
                continue
            sel.fallbacks[component] = f"rapl: {rapl.problem}"
            if rapl.problem and "readable only by root" in rapl.problem and not sel.warnings:
                sel.warnings.append(rapl.problem)
        else:
            sel.fallbacks[component] = "rapl: off (tracker.rapl: false)"
        sel.sources.append(model)
    gpus: list[str] = []
    if ts.gpu:
        gpu = NvmlSource(nvml)
        if gpu.available():
            sel.sources.append(gpu)
            gpus = gpu.info().devices
        else:
            sel.fallbacks[Component.GPU] = f"nvml: {gpu.problem}"
    else:
        sel.fallbacks[Component.GPU] = "nvml: off (tracker.gpu: false)"
    sel.host = {
        "cpu_count": vcpus,
        "cpu_model": cpu_model_name(),
        "gpu_count": len(gpus),
        "gpu_model": ", ".join(sorted({d.split(": ", 1)[-1].split(" (", 1)[0] for d in gpus})),
        "ram_total_gb": round(memory_bytes / 1e9, 3),
    }
    return sel
