"""The scheduler's figures in the Prometheus text format (version 0.0.4), for GET /metrics.

`Scheduler.metrics()` returns plain numbers and mappings; this module only names and formats them,
so the scheduler needs no Prometheus client and the metric names are fixed here, in one table. A key
the table does not know yet still appears (a number as `carbonshift_<key>`, a mapping with a `key`
label) so a new figure is never silently dropped. A value of None (nothing measured yet) is left out
rather than written as 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "carbonshift_"
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")
ROLES = ("active", "standby", "stopped")


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    label: str | None = None  # for a mapping: the label its keys go into
    kind: str = "gauge"  # or "counter": only ever goes up (its name ends in _total)


KNOWN: dict[str, Metric] = {
    "runs_by_status": Metric("carbonshift_runs", "Runs by status.", "status"),
    "jobs_by_status": Metric("carbonshift_jobs", "Jobs by status.", "status"),
    "runs_launched": Metric("carbonshift_runs_launched", "Runs handed to a provider so far."),
    "planned_kg_co2e": Metric(
        "carbonshift_planned_kg_co2e", "Planned emissions of the launched runs, kg CO2e."
    ),
    "baseline_kg_co2e": Metric(
        "carbonshift_baseline_kg_co2e",
        "Emissions the launched runs would have had at their baseline (region and time), kg CO2e.",
    ),
    "saving_kg_co2e": Metric(
        "carbonshift_saving_kg_co2e", "Planned saving against the baseline for the launched runs, kg CO2e."
    ),
    "saving_pct": Metric("carbonshift_saving_percent", "Planned saving against the baseline, percent."),
    "runs_measured": Metric("carbonshift_runs_measured", "Runs whose tracker reported measured emissions."),
    "actual_kg_co2e": Metric(
        "carbonshift_actual_kg_co2e", "Measured emissions of the runs that reported, kg CO2e."
    ),
    "actual_embodied_kg_co2e": Metric(
        "carbonshift_actual_embodied_kg_co2e",
        "Embodied emissions (the hardware's share of its manufacture) the same runs reported, kg CO2e.",
    ),
    "reports_rejected": Metric(
        "carbonshift_reports_rejected_total",
        "Run reports refused (a number not finite, negative or implausible for the run): kept aside, never summed.",
        kind="counter",
    ),
    "planned_kg_co2e_measured": Metric(
        "carbonshift_planned_kg_co2e_measured",
        "Planned emissions of the same runs as actual_kg_co2e (compare like for like), kg CO2e.",
    ),
}


def _generic(key: str) -> Metric:
    name = _NAME_BAD.sub("_", key.strip()).strip("_").lower() or "value"
    return Metric(PREFIX + name, key.replace("_", " ").capitalize() + ".", "key")


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _role_lines(role: str) -> list[str]:
    """The daemon's role as a state set: 1 for the current role, 0 for the others."""
    name = PREFIX + "daemon_role"
    roles = sorted({*ROLES, role})
    return [
        f"# HELP {name} This daemon's role: active (launches runs), standby (waits for the lock), stopped.",
        f"# TYPE {name} gauge",
        *(f'{name}{{role="{_label_value(r)}"}} {1 if r == role else 0}' for r in roles),
    ]


def render_metrics(data: Mapping[str, Any]) -> str:
    """Prometheus text for the scheduler's metrics."""
    lines: list[str] = []
    for key in sorted(data):
        value = data[key]
        if key == "role" and isinstance(value, str):
            lines += _role_lines(value)
            continue
        metric = KNOWN.get(key) or _generic(key)
        if (number := _number(value)) is not None:
            lines += [
                f"# HELP {metric.name} {metric.help}",
                f"# TYPE {metric.name} {metric.kind}",
                f"{metric.name} {_format(number)}",
            ]
        elif isinstance(value, Mapping):
            samples = [(str(k), _number(v)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
            kept = [(k, v) for k, v in samples if v is not None]
            if not kept:
                continue
            label = metric.label or "key"
            lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
            lines += [f'{metric.name}{{{label}="{_label_value(k)}"}} {_format(v)}' for k, v in kept]
    return "\n".join(lines) + "\n"
