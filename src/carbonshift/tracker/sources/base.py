"""The one interface every power source implements, and what the sampler hands each of them per tick.

A source answers for the whole machine (a RAPL package counter knows nothing of processes); the
tracker charges the job its share afterwards (attribution.py), so the sources stay simple and a
machine-level figure is always available for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Component(StrEnum):
    CPU = "cpu"
    GPU = "gpu"
    RAM = "ram"


@dataclass(frozen=True, slots=True)
class Tick:
    """What the sampler knows about one interval before asking the sources: its length and the
    machine's CPU utilisation over it (the CPU model needs it; counters ignore it)."""

    dt_s: float
    cpu_utilisation: float  # 0..1, all logical CPUs together


@dataclass
class SourceInfo:
    """How a source describes itself in the report's `power_sources`."""

    component: Component
    name: str
    kind: str  # "measured" or "modelled"
    detail: str
    devices: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "component": self.component.value,
            "name": self.name,
            "kind": self.kind,
            "detail": self.detail,
        }
        if self.devices:
            out["devices"] = list(self.devices)
        out.update(self.extra)
        return out


class PowerSource(Protocol):
    """`available()` is asked once, before the job starts, and says why not in `problem`; `start()`
    takes the first reading; each `read(tick)` returns the joules used since the previous read."""

    component: Component
    name: str
    problem: str | None

    def available(self) -> bool: ...

    def start(self) -> None: ...

    def read(self, tick: Tick) -> float: ...

    def close(self) -> None: ...

    def info(self) -> SourceInfo: ...
