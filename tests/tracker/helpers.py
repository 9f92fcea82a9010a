"""Shared pieces for the tracker tests: settings with a user file zone (so expected emissions are
hand-computable), a constant-power source, and a stand-in NVML module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from carbonshift.config import Settings
from carbonshift.config.settings import CacheSettings, IntensitySettings
from carbonshift.tracker.settings import TrackerSettings
from carbonshift.tracker.sources.base import Component, SourceInfo, Tick

ZONE = "TESTZONE"
PY = sys.executable


def constant_zone_file(tmp: Path, g_per_kwh: float = 200.0) -> Path:
    """A file whose one value holds from 2020 for 40 years: every run in these tests sees it."""
    path = tmp / "zone.csv"
    path.write_text(f"timestamp,g_per_kwh\n2020-01-01T00:00Z,{g_per_kwh}\n2040-01-01T00:00Z,{g_per_kwh}\n")
    return path


def settings(tmp: Path, zone_file: Path | None = None, **tracker: Any) -> Settings:
    zone_file = zone_file or constant_zone_file(tmp)
    options = {"interval_s": 0.05, "detect_cloud": False, "gpu": False, "rapl": False, **tracker}
    return Settings(
        ukci_enabled=False,
        location=ZONE,
        data_dir=tmp / "data",
        intensity=IntensitySettings(files={ZONE: zone_file}),
        cache=CacheSettings(enabled=False),
        tracker=TrackerSettings(**options),
    )


def config_file(tmp: Path, extra: str = "", g_per_kwh: float = 200.0) -> Path:
    """The same as a YAML config file, for the CLI."""
    zone_file = constant_zone_file(tmp, g_per_kwh)
    path = tmp / "carbonshift.yaml"
    path.write_text(
        f"ukci_enabled: false\nlocation: {ZONE}\n"
        f"intensity:\n  files:\n    {ZONE}: {zone_file}\n"
        f"cache:\n  enabled: false\n"
        f"tracker:\n  interval_s: 0.05\n  detect_cloud: false\n  gpu: false\n{extra}"
    )
    return path


class ConstantSource:
    """A power source that draws exactly `watts` (a known energy per interval)."""

    def __init__(self, component: Component, watts: float) -> None:
        self.component = component
        self.name = f"constant-{component.value}"
        self.problem: str | None = None
        self.watts = watts
        self.closed = False

    def available(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def read(self, tick: Tick) -> float:
        return self.watts * tick.dt_s

    def close(self) -> None:
        self.closed = True

    def info(self) -> SourceInfo:
        return SourceInfo(self.component, self.name, "measured", f"{self.watts} W")


class FakeNvml:
    """Stands in for the `pynvml` module: the same function names, handles are ints, and each GPU is a
    dict with what it supports. Energy counters (mJ) and power (mW) are set by the test."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[dict[str, Any]], init_error: str | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return str(self.gpus[h]["name"]).encode()

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return str(self.gpus[h]["uuid"])

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        gpu = self.gpus[h]
        if "energy_mj" not in gpu:
            raise self.NVMLError("Not Supported")
        return int(gpu["energy_mj"])

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        gpu = self.gpus[h]
        if "power_mw" not in gpu:
            raise self.NVMLError("Not Supported")
        return int(gpu["power_mw"])
