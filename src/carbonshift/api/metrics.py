"""The scheduler's figures in the Prometheus text format (version 0.0.4), for GET /metrics.

`Scheduler.metrics()` returns plain numbers and mappings; this module only names and formats them,
so the scheduler needs no Prometheus client and the names stay stable here. A number becomes a gauge
`carbonshift_<key>`; a mapping of names to numbers becomes one gauge with a label (`status` for runs
by status), so a dashboard can sum or filter it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "carbonshift_"
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")

HELP = {
    "runs": "Runs by status.",
    "runs_by_status": "Runs by status.",
    "jobs": "Jobs by status.",
    "jobs_by_status": "Jobs by status.",
    "planned_kg_co2e": "Planned emissions of the runs, kg CO2e.",
    "actual_kg_co2e": "Measured emissions of the runs that reported, kg CO2e.",
    "saving_kg_co2e": "Emissions avoided against each run's baseline, kg CO2e.",
    "baseline_kg_co2e": "Emissions the runs would have had at their baseline, kg CO2e.",
}


def _metric_name(key: str) -> str:
    name = _NAME_BAD.sub("_", key.strip()).strip("_").lower()
    return PREFIX + (name or "value")


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


def _label_name(key: str) -> str:
    return "status" if key.startswith(("runs", "jobs")) or "status" in key else "key"


def render_metrics(data: Mapping[str, Any]) -> str:
    """Prometheus text for the scheduler's metrics; values that are neither numbers nor mappings of
    numbers (None: nothing measured yet) are left out rather than written as 0."""
    lines: list[str] = []
    for key in sorted(data):
        value = data[key]
        name = _metric_name(key)
        help_text = HELP.get(key, key.replace("_", " ").capitalize() + ".")
        if (number := _number(value)) is not None:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_format(number)}"]
        elif isinstance(value, Mapping):
            samples = [(str(k), _number(v)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
            kept = [(k, v) for k, v in samples if v is not None]
            if not kept:
                continue
            label = _label_name(key)
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f'{name}{{{label}="{_label_value(k)}"}} {_format(v)}' for k, v in kept]
    return "\n".join(lines) + "\n"
