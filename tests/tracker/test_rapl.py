"""RAPL over a fake powercap tree: exact energies, wrap-around, which zones count, permission errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonshift.tracker.power import select_sources
from carbonshift.tracker.settings import TrackerSettings
from carbonshift.tracker.sources.base import Component, Tick
from carbonshift.tracker.sources.rapl import RaplSource, counter_delta

from .helpers import PY

MAX = 262_143_328_850  # a real package's max_energy_range_uj
TICK = Tick(1.0, 0.5)


def zone(root: Path, zone_id: str, name: str, energy_uj: int, max_uj: int = MAX) -> Path:
    d = root / zone_id
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def advance(d: Path, energy_uj: int) -> None:
    (d / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Two sockets with package, core and dram zones, a psys zone and an MMIO duplicate, as on a
    two-socket Xeon; only package-0, package-1 and the dram zones must count."""
    root = tmp_path / "powercap"
    return {
        "root": root,
        "pkg0": zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "core0": zone(root, "intel-rapl:0:0", "core", 5_000_000),
        "dram0": zone(root, "intel-rapl:0:1", "dram", 2_000_000),
        "pkg1": zone(root, "intel-rapl:1", "package-1", MAX - 1_000_000),
        "dram1": zone(root, "intel-rapl:1:0", "dram", 0),
        "psys": zone(root, "intel-rapl:2", "psys", 0),
        "mmio": zone(root, "intel-rapl-mmio:0", "package-0", 0),
    }


def test_package_energy_is_the_sum_over_sockets_with_a_wrap_around(tree: dict[str, Path]) -> None:
    src = RaplSource(Component.CPU, tree["root"])
    assert src.available(), src.problem
    assert src.info().devices == ["intel-rapl:0 package-0", "intel-rapl:1 package-1"]
    src.start()
    advance(tree["pkg0"], 31_000_000)  # +30 J
    advance(tree["pkg1"], 4_000_000)  # wrapped: 1 J to the top, then 4 J
    advance(tree["core0"], 999_000_000)  # part of the package: must not count again
    advance(tree["psys"], 999_000_000)
    advance(tree["mmio"], 999_000_000)
    assert src.read(TICK) == pytest.approx(30.0 + 1.0 + 4.0, abs=1e-9)
    advance(tree["pkg0"], 41_000_000)  # +10 J
    assert src.read(TICK) == pytest.approx(10.0, abs=1e-9)
    assert src.read(TICK) == 0.0  # nothing moved
    assert src.info().kind == "measured"


def test_dram_zones_are_the_ram_component(tree: dict[str, Path]) -> None:
    src = RaplSource(Component.RAM, tree["root"])
    assert src.available()
    src.start()
    advance(tree["dram0"], 2_500_000)
    advance(tree["dram1"], 250_000)
    assert src.read(TICK) == pytest.approx(0.75, abs=1e-12)


def test_counter_delta_handles_one_wrap() -> None:
    assert counter_delta(100, 300, 1000) == 200
    assert counter_delta(900, 50, 1000) == 150  # 100 to the top, then 50
    assert counter_delta(5, 5, 1000) == 0


def test_no_powercap_is_a_quiet_fallback_to_the_model(tmp_path: Path) -> None:
    src = RaplSource(Component.CPU, tmp_path / "missing")
    assert not src.available() and src.problem is not None and "no powercap" in src.problem
    sel = select_sources(TrackerSettings(powercap_path=tmp_path / "missing", gpu=False))
    assert [s.name for s in sel.sources] == ["cpu-model", "memory-model"]
    assert sel.warnings == []  # a VM without RAPL is normal: noted in the report, not warned about
    assert "no powercap" in sel.fallbacks[Component.CPU]


def test_counters_in_the_tree_are_used_by_source_selection(tree: dict[str, Path]) -> None:
    sel = select_sources(TrackerSettings(powercap_path=tree["root"], gpu=False))
    assert [(s.name, s.component) for s in sel.sources] == [("rapl", Component.CPU), ("rapl", Component.RAM)]


@pytest.fixture
def readable_tree() -> Iterator[Path]:
    """A tree outside pytest's private tmp dir, so another user can walk it."""
    base = Path(tempfile.mkdtemp(prefix="carbonshift-rapl-"))
    base.chmod(0o755)
    root = base / "powercap"
    zone(root, "intel-rapl:0", "package-0", 1_000)
    for d in (root, root / "intel-rapl:0"):
        d.chmod(0o755)
    for f in (root / "intel-rapl:0").iterdir():
        f.chmod(0o644)
    (root / "intel-rapl:0" / "energy_uj").chmod(0o400)  # as Linux has it since 5.10: root only
    yield root
    shutil.rmtree(base)


PROBE = """
import json, os, sys
from pathlib import Path
from carbonshift.planner.power_tables import host_power
from carbonshift.tracker.power import select_sources
from carbonshift.tracker.settings import TrackerSettings
host_power()  # package data read while still allowed
if os.geteuid() == 0:  # root reads anything: become an unprivileged user, for real
    os.setgid(65534)
    os.setuid(65534)
sel = select_sources(TrackerSettings(powercap_path=Path(sys.argv[1]), gpu=False))
print(json.dumps({"sources": [s.name for s in sel.sources], "warnings": sel.warnings,
                  "fallback": sel.fallbacks.get("cpu")}))
"""


def test_permission_error_is_a_warning_and_a_fallback_not_a_crash(readable_tree: Path) -> None:
    if os.geteuid() != 0:
        (readable_tree / "intel-rapl:0" / "energy_uj").chmod(0o000)
    result = subprocess.run(
        [PY, "-c", PROBE, str(readable_tree)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["sources"] == ["cpu-model", "memory-model"]
    (warning,) = out["warnings"]
    assert "readable only by root" in warning and "chmod" in warning
    assert "readable only by root" in out["fallback"]
