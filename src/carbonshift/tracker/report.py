"""The run report: what the job used, where, when, what it emitted, and how each figure was obtained.

Its JSON keys are a contract for scripts (`SCHEMA` names the version); new keys may be added, none
renamed or removed. A command line can carry secrets (`--token xyz`, `PASSWORD=...`,
`https://user:pw@host`): they are masked before anything is written or printed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from carbonshift.timeutil import isoformat_z

SCHEMA = "carbonshift.track/1"
COMPONENTS = ("cpu", "gpu", "ram")
MASK = "***"
_SECRET_NAME = re.compile(r"(token|passw|secret|credential|api[-_]?key|apikey|auth|private[-_]?key)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)


def redact_argv(argv: list[str]) -> list[str]:
    """The command with likely secrets masked: the value of an option or variable whose name says
    secret (`--api-key X`, `--token=X`, `PASSWORD=X`) and passwords in URLs."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", arg)
        name, eq, _value = text.partition("=")
        if eq and _SECRET_NAME.search(name) and not name.startswith(("http://", "https://")):
            text = f"{name}={MASK}"
        elif text.startswith("-") and not eq and _SECRET_NAME.search(text):
            mask_next = True
        out.append(text)
    return out


@dataclass(frozen=True)
class Planned:
    """What the plan promised for this run (the `run` command knows it; `track` may be given it)."""

    job: str
    region: str
    zone: str
    start: datetime
    end: datetime
    energy_kwh: float
    mean_g_per_kwh: float
    kg_co2e: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass
class TrackReport:
    run_id: str
    command: list[str]
    start: datetime
    end: datetime
    duration_s: float
    exit_code: int | None
    energy_kwh: float
    energy_by_component_kwh: dict[str, float]
    it_energy_kwh: float
    pue: float
    kg_co2e: float | None
    mean_g_per_kwh: float | None
    signal: str
    zone: str | None
    location: dict[str, Any] | None
    intensity_sources: list[dict[str, Any]]
    power_sources: list[dict[str, Any]]
    attribution: dict[str, Any]
    tracker: dict[str, Any]
    planned: Planned | None = None
    terminated_by: str | None = None  # the signal that ended the command, if one did
    embodied_kg_co2e: float = 0.0  # the hardware's share of its manufacture and disposal (SCI's M)
    total_kg_co2e: float | None = None  # operational + embodied; None when the operational part is unknown
    embodied: dict[str, Any] | None = None  # which hardware, how it was known, TE, shares, assumptions
    sci: dict[str, Any] | None = None  # kg CO2e per functional unit, when one is named
    warnings: list[str] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)  # cpu model, counts, memory: for the CSV
    mean_power_w: dict[str, float] = field(default_factory=dict)  # job's, PUE included (CodeCarbon's way)
    paths: dict[str, str] = field(default_factory=dict)  # where the outputs were written

    def planned_dict(self) -> dict[str, Any] | None:
        p = self.planned
        if p is None:
            return None
        return {
            "job": p.job,
            "region": p.region,
            "zone": p.zone,
            "start": isoformat_z(p.start),
            "end": isoformat_z(p.end),
            "duration_s": p.duration_s,
            "energy_kwh": p.energy_kwh,
            "mean_g_per_kwh": round(p.mean_g_per_kwh, 3),
            "kg_co2e": p.kg_co2e,
            "actual": {
                "start": isoformat_z(self.start),
                "end": isoformat_z(self.end),
                "duration_s": round(self.duration_s, 3),
                "energy_kwh": self.energy_kwh,
                "mean_g_per_kwh": None if self.mean_g_per_kwh is None else round(self.mean_g_per_kwh, 3),
                "kg_co2e": self.kg_co2e,
            },
            "difference": {
                "start_delay_s": round((self.start - p.start).total_seconds(), 3),
                "duration_ratio": _ratio(self.duration_s, p.duration_s),
                "energy_kwh": _diff(self.energy_kwh, p.energy_kwh),
                "energy_ratio": _ratio(self.energy_kwh, p.energy_kwh),
                "mean_g_per_kwh": _diff(self.mean_g_per_kwh, p.mean_g_per_kwh),
                "kg_co2e": _diff(self.kg_co2e, p.kg_co2e),
                "kg_co2e_ratio": _ratio(self.kg_co2e, p.kg_co2e),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "command": redact_argv(self.command),
            "start": isoformat_z(self.start),
            "end": isoformat_z(self.end),
            "duration_s": round(self.duration_s, 3),
            "exit_code": self.exit_code,
            "terminated_by": self.terminated_by,
            "energy_kwh": self.energy_kwh,
            "energy_by_component_kwh": {c: self.energy_by_component_kwh.get(c, 0.0) for c in COMPONENTS},
            "it_energy_kwh": self.it_energy_kwh,
            "pue": self.pue,
            "kg_co2e": self.kg_co2e,
            "embodied_kg_co2e": self.embodied_kg_co2e,
            "total_kg_co2e": self.total_kg_co2e,
            "sci": self.sci,
            "embodied": self.embodied,
            "mean_g_per_kwh": None if self.mean_g_per_kwh is None else round(self.mean_g_per_kwh, 3),
            "signal": self.signal,
            "zone": self.zone,
            "location": self.location,
            "intensity_sources": self.intensity_sources,
            "power_sources": self.power_sources,
            "attribution": self.attribution,
            "planned": self.planned_dict(),
            "tracker": self.tracker,
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write_json(self, path: Path) -> Path:
        """Atomically (temp file + rename), so a reader never sees half a report."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def summary_line(self) -> str:
        """One line for stderr: duration, energy, emissions and where the intensity came from."""
        parts = [f"carbonshift: {self.duration_s:.1f} s", f"{self.energy_kwh * 1000:.4g} Wh"]
        if self.kg_co2e is not None and self.mean_g_per_kwh is not None:
            kinds = sorted({str(s.get("kind")) for s in self.intensity_sources})
            parts.append(
                f"{self.kg_co2e * 1000:.4g} g CO2e at {self.mean_g_per_kwh:.0f} g/kWh "
                f"({self.zone}, {'/'.join(kinds)})"
            )
        else:
            parts.append(
                "emissions unknown (no location)" if self.zone is None else f"emissions unknown ({self.zone})"
            )
        if self.embodied_kg_co2e:
            parts.append(f"+ {self.embodied_kg_co2e * 1000:.3g} g embodied")
        if self.sci is not None:
            unit = self.sci["functional_unit"]["name"]
            parts.append(f"SCI {self.sci['g_co2e_per_unit']:.4g} g CO2e per {unit}")
        share = self.attribution.get("job_cpu_share")
        if self.attribution.get("mode") == "process" and share is not None:
            parts.append(f"job {share:.0%} of machine CPU")
        if "report" in self.paths:
            parts.append(f"report {self.paths['report']}")
        return ", ".join(parts)
