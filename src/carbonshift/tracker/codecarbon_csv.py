"""A CodeCarbon-compatible `emissions.csv` row, so dashboards and notebooks written for CodeCarbon read
carbonshift runs too.

Columns, names and order are CodeCarbon 3.3's `EmissionsData` (output_methods/emissions_data.py); units
as CodeCarbon's: duration s, emissions kg, emissions_rate kg/s, power W and energy kWh (both with the
PUE, as CodeCarbon applies it), ram sizes GB, timestamps local time without offset. What carbonshift
does not know (experiment_id, codecarbon_version, water, GPU utilisation) stays empty.

Appending is safe with several trackers at once and without a lock file: a new file is created
complete with its header and linked into place atomically (only one creator wins), and each row is
one write() to a file opened with O_APPEND.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from carbonshift.tracker.report import TrackReport

COLUMNS: tuple[str, ...] = (
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
)


@cache
def _countries() -> dict[str, tuple[str, str]]:
    """ISO alpha-2 -> (name, alpha-3), from the catalog's bundled country table (CodeCarbon uses
    alpha-3 codes)."""
    text = (
        resources.files("carbonshift.catalog").joinpath("data", "countries.csv").read_text(encoding="utf-8")
    )
    return {row["country"]: (row["name"], row["iso3"]) for row in csv.DictReader(io.StringIO(text))}


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(float(value)) if isinstance(value, float) else str(value)


def row(report: TrackReport, project_name: str) -> dict[str, str]:
    loc = report.location or {}
    country = loc.get("country") or ""
    name, iso3 = _countries().get(country.upper(), ("", ""))
    region_ref = loc.get("region") or ""
    provider, _, region = region_ref.partition(":")
    cloud = provider in {"aws", "gcp", "azure"}
    host = report.host
    e = report.energy_by_component_kwh
    kg = report.kg_co2e
    values: dict[str, Any] = {
        "timestamp": report.end.astimezone().strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": project_name,
        "run_id": report.run_id,
        "experiment_id": "",
        "duration": report.duration_s,
        "emissions": kg,
        "emissions_rate": None if kg is None or report.duration_s <= 0 else kg / report.duration_s,
        "cpu_power": report.mean_power_w.get("cpu", 0.0),
        "gpu_power": report.mean_power_w.get("gpu", 0.0),
        "ram_power": report.mean_power_w.get("ram", 0.0),
        "cpu_energy": e.get("cpu", 0.0),
        "gpu_energy": e.get("gpu", 0.0),
        "ram_energy": e.get("ram", 0.0),
        "energy_consumed": report.energy_kwh,
        "water_consumed": None,
        "country_name": name,
        "country_iso_code": iso3,
        "region": loc.get("zone") or "",
        "cloud_provider": provider if cloud else "",
        "cloud_region": region if cloud else "",
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "codecarbon_version": "",
        "cpu_count": host.get("cpu_count"),
        "cpu_model": host.get("cpu_model", ""),
        "gpu_count": host.get("gpu_count", 0),
        "gpu_model": host.get("gpu_model", ""),
        "longitude": None,
        "latitude": None,
        "ram_total_size": _gib(host.get("ram_total_gb")),
        "tracking_mode": report.attribution.get("mode", ""),
        "cpu_utilization_percent": host.get("cpu_utilization_percent"),
        "gpu_utilization_percent": None,
        "ram_utilization_percent": host.get("ram_utilization_percent"),
        "ram_used_gb": host.get("ram_used_gb"),
        "on_cloud": "Y" if report.location and report.location.get("on_cloud") else "N",
        "pue": report.pue,
        "wue": None,
    }
    out: dict[str, str] = {}
    for column in COLUMNS:
        v = values[column]
        out[column] = (
            _num(v)
            if isinstance(v, int | float) and not isinstance(v, bool)
            else ("" if v is None else str(v))
        )
    return out


def _line(fields: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue().encode("utf-8")


def append(path: Path, values: dict[str, str]) -> Path:
    """Append one row; create the file (with the header) if it does not exist. A file with another
    header (an older CodeCarbon, another tool) is left alone and the row goes to a sibling file
    `<stem>.carbonshift.csv`, rather than mixing columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _line(list(COLUMNS))
    target = path
    if not _create_with_header(target, header) and _first_line(target) != header:
        target = path.with_name(f"{path.stem}.carbonshift{path.suffix}")
        _create_with_header(target, header)
    data = _line([values.get(c, "") for c in COLUMNS])
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return target


def _create_with_header(path: Path, header: bytes) -> bool:
    """Create `path` holding just the header, atomically; False when it already exists."""
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.write(fd, header)
        os.close(fd)
        try:
            os.link(tmp, path)  # fails if another tracker created it first: theirs is as good
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _first_line(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline()


GIB_PER_GB = 1e9 / 2**30


def _gib(gb: object) -> float | None:
    """CodeCarbon writes `ram_total_size` in GiB (psutil's bytes / 1024**3) while its other sizes are GB;
    our report keeps decimal GB (`ram_total_gb`), so the column is converted to read the same."""
    if not isinstance(gb, int | float):
        return None
    return round(float(gb) * GIB_PER_GB, 3)
