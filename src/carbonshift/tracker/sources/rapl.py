"""Intel/AMD RAPL energy counters through Linux powercap (/sys/class/powercap/intel-rapl:*).

Each zone has `name` (package-0, dram, core, uncore, psys), `energy_uj` (a counter in microjoules that
wraps to 0 after `max_energy_range_uj`) and subzones that appear flattened next to it. Only package
and dram zones are read: core and uncore are parts of a package (counting them too would count twice)
and psys is the whole platform. The root is a parameter so tests can use a fake tree.

Since Linux 5.10 (CVE-2020-8694, the Platypus attack) energy_uj is readable only by root on most
distributions: that is a warning and a fallback to the model, never a crash.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from carbonshift.tracker.sources.base import Component, SourceInfo, Tick

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/sys/class/powercap")
_ZONE_DIR = re.compile(r"^intel-rapl:\d+(?::\d+)*$")  # AMD CPUs use the same control type name


@dataclass
class RaplZone:
    path: Path
    label: str  # "intel-rapl:0 package-0"
    max_range_uj: int
    last_uj: int = 0


def _zone_component(name: str) -> Component | None:
    lowered = name.strip().lower()
    if lowered.startswith("package"):
        return Component.CPU
    if lowered == "dram":
        return Component.RAM
    return None  # core/uncore (parts of a package), psys (the platform), anything new


def discover(root: Path, component: Component) -> list[RaplZone]:
    """The zones under `root` that measure `component`, in a stable order (by zone id)."""
    zones: list[RaplZone] = []
    seen: set[Path] = set()
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:
        return zones
    for entry in entries:
        if not _ZONE_DIR.match(entry.name):
            continue
        real = entry.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        if _zone_component(name) is not component:
            continue
        try:
            max_range = int((entry / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            max_range = 0
        zones.append(RaplZone(entry, f"{entry.name} {name}", max_range))
    return zones


def counter_delta(last_uj: int, now_uj: int, max_range_uj: int) -> int:
    """Microjoules between two readings of a counter that wraps to 0 after `max_range_uj` (at most one
    wrap between readings: at 1 s sampling a counter needs minutes to wrap)."""
    delta = now_uj - last_uj
    if delta < 0:
        delta += max_range_uj
    return max(delta, 0)


class RaplSource:
    """Package (component cpu) or dram (component ram) energy, summed over sockets."""

    def __init__(self, component: Component, root: Path = DEFAULT_ROOT) -> None:
        if component is Component.GPU:
            raise ValueError("RAPL measures CPU packages and DRAM, not GPUs")
        self.component: Component = component
        self.name = "rapl"
        self.root = root
        self.problem: str | None = None
        self._zones: list[RaplZone] = []
        self._read_errors: set[str] = set()

    def available(self) -> bool:
        if not self.root.is_dir():
            self.problem = f"no powercap interface at {self.root} (not Linux, or a VM without RAPL)"
            return False
        zones = discover(self.root, self.component)
        wanted = "package" if self.component is Component.CPU else "dram"
        if not zones:
            self.problem = f"no RAPL {wanted} zone under {self.root}"
            return False
        for zone in zones:
            try:
                zone.last_uj = self._read_uj(zone)
            except PermissionError:
                self.problem = (
                    f"RAPL counter {zone.path / 'energy_uj'} is readable only by root (Linux restricts it "
                    "since 5.10, CVE-2020-8694); using the model instead. To measure, run as root or "
                    f"grant read access: sudo chmod o+r {self.root}/intel-rapl:*/energy_uj"
                )
                return False
            except (OSError, ValueError) as exc:
                self.problem = f"cannot read {zone.path / 'energy_uj'}: {exc}"
                return False
            if zone.max_range_uj <= 0:
                self.problem = f"{zone.path} has no max_energy_range_uj; a wrap could not be handled"
                return False
        self._zones = zones
        return True

    def start(self) -> None:
        for zone in self._zones:
            zone.last_uj = self._read_uj(zone)

    def read(self, tick: Tick) -> float:
        total_uj = 0
        for zone in self._zones:
            try:
                now = self._read_uj(zone)
            except (OSError, ValueError) as exc:
                if zone.label not in self._read_errors:  # say it once, not every second
                    self._read_errors.add(zone.label)
                    log.warning(
                        "RAPL zone %s unreadable (%s); its energy is missing meanwhile", zone.label, exc
                    )
                continue
            total_uj += counter_delta(zone.last_uj, now, zone.max_range_uj)
            zone.last_uj = now
        return total_uj / 1e6

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        what = "package" if self.component is Component.CPU else "dram"
        return SourceInfo(
            self.component,
            "rapl",
            "measured",
            f"RAPL {what} energy counters ({self.root})",
            devices=[z.label for z in self._zones],
        )

    @staticmethod
    def _read_uj(zone: RaplZone) -> int:
        return int((zone.path / "energy_uj").read_text().strip())
