"""NVIDIA GPUs through NVML (the `nvidia-ml-py` package, module `pynvml`; the `gpu` extra).

Where a GPU has the total-energy counter (Volta and later: nvmlDeviceGetTotalEnergyConsumption, mJ
since the driver loaded) the energy is the counter's difference, exact whatever the sampling interval.
Older GPUs only report instantaneous power (nvmlDeviceGetPowerUsage, mW); their energy is the
trapezoid between samples, as good as the interval is short.

The module is a constructor parameter (`nvml=`): tests pass a stand-in module object with the same
functions, so the seam is NVML's own API and this code runs unpatched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from carbonshift.tracker.sources.base import Component, SourceInfo, Tick


@dataclass
class _Gpu:
    index: int
    handle: Any
    label: str
    counter: bool  # total-energy counter (mJ) rather than power samples (mW)
    last: float = 0.0


def visible_indices(env_value: str | None, count: int, uuids: list[str]) -> list[int]:
    """The NVML indices CUDA_VISIBLE_DEVICES leaves visible: unset means all; entries are indices or
    GPU UUIDs (a prefix is enough, as for CUDA); like CUDA, the list ends at the first entry that names
    no device. Integer entries are taken as NVML (PCI bus) order, which is CUDA's only when
    CUDA_DEVICE_ORDER=PCI_BUS_ID; UUIDs are unambiguous."""
    if env_value is None:
        return list(range(count))
    chosen: list[int] = []
    for raw in env_value.split(","):
        token = raw.strip()
        if not token:
            break
        if token.lstrip("-").isdigit():
            idx = int(token)
            if not 0 <= idx < count:
                break
        else:
            matches = [i for i, u in enumerate(uuids) if u.lower().startswith(token.lower())]
            if len(matches) != 1:
                break
            idx = matches[0]
        if idx not in chosen:
            chosen.append(idx)
    return chosen


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource:
    def __init__(self, nvml: Any | None = None, cuda_visible_devices: str | None = None) -> None:
        self.component = Component.GPU
        self.name = "nvml"
        self.problem: str | None = None
        self._nvml = nvml
        self._visible = (
            cuda_visible_devices
            if cuda_visible_devices is not None
            else os.environ.get("CUDA_VISIBLE_DEVICES")
        )
        self._gpus: list[_Gpu] = []
        self._initialised = False
        self._notes: list[str] = []

    def _error_type(self) -> type[BaseException]:
        err = getattr(self._nvml, "NVMLError", None)
        return err if isinstance(err, type) and issubclass(err, BaseException) else Exception

    def available(self) -> bool:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self.problem = "nvidia-ml-py is not installed (pip install 'carbonshift[gpu]')"
                return False
            self._nvml = pynvml
        nvml = self._nvml
        error = self._error_type()
        try:
            nvml.nvmlInit()
        except error as exc:
            self.problem = f"NVML unavailable ({_text(exc) or type(exc).__name__}): no NVIDIA driver or GPU"
            return False
        self._initialised = True
        try:
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        except error as exc:
            self.problem = f"NVML could not list GPUs ({_text(exc)})"
            self.close()
            return False
        chosen = visible_indices(self._visible, count, uuids)
        if self._visible is not None:
            self._notes.append(f"CUDA_VISIBLE_DEVICES={self._visible!r}: GPUs {chosen} of {count}")
        for idx in chosen:
            handle = handles[idx]
            label = f"{idx}: {names[idx]} ({uuids[idx]})"
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                self._gpus.append(_Gpu(idx, handle, label, counter=True))
                continue
            except error:
                pass
            try:
                nvml.nvmlDeviceGetPowerUsage(handle)
                self._gpus.append(_Gpu(idx, handle, label, counter=False))
            except error as exc:
                self._notes.append(f"GPU {label}: neither energy counter nor power reading ({_text(exc)})")
        if not self._gpus:
            self.problem = "no NVIDIA GPU visible" + (f" ({'; '.join(self._notes)})" if self._notes else "")
            self.close()
            return False
        return True

    def start(self) -> None:
        for gpu in self._gpus:
            gpu.last = self._reading(gpu)

    def read(self, tick: Tick) -> float:
        joules = 0.0
        error = self._error_type()
        for gpu in self._gpus:
            try:
                now = self._reading(gpu)
            except error:
                continue  # a transient NVML error loses one interval of one GPU, not the run
            if gpu.counter:
                joules += max(now - gpu.last, 0.0) / 1000.0  # mJ; a driver reload restarts the counter
            else:
                joules += (gpu.last + now) / 2.0 / 1000.0 * tick.dt_s  # mW, trapezoid
            gpu.last = now
        return joules

    def close(self) -> None:
        if self._initialised and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._error_type():
                pass
            self._initialised = False

    def info(self) -> SourceInfo:
        counters = sum(1 for g in self._gpus if g.counter)
        how = []
        if counters:
            how.append(f"{counters} by total-energy counter")
        if len(self._gpus) - counters:
            how.append(f"{len(self._gpus) - counters} by power samples (trapezoid)")
        return SourceInfo(
            Component.GPU,
            "nvml",
            "measured",
            f"NVIDIA NVML: {', '.join(how)}; a GPU's whole energy is charged to the job",
            devices=[g.label for g in self._gpus],
            extra={"notes": list(self._notes)} if self._notes else {},
        )

    def _reading(self, gpu: _Gpu) -> float:
        nvml = self._nvml
        assert nvml is not None
        if gpu.counter:
            return float(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
        return float(nvml.nvmlDeviceGetPowerUsage(gpu.handle))
