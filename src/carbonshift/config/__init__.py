"""Settings and job spec models: everything a user writes, validated before anything runs.

The names below load on first use: importing one module of this package (the job spec, for the
planner or the API) does not build the settings models, nor the settings the job spec's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.config.jobspec import (
        JobSpec,
        JobSpecError,
        jobspec_json_schema,
        load_jobspec,
        loads_jobspec,
        parse_jobspec,
    )
    from carbonshift.config.settings import (
        CacheSettings,
        IntensitySettings,
        LocationSetting,
        Settings,
        load_settings,
    )

_MODULE_OF = {
    **dict.fromkeys(
        ("JobSpec", "JobSpecError", "jobspec_json_schema", "load_jobspec", "loads_jobspec", "parse_jobspec"),
        "carbonshift.config.jobspec",
    ),
    **dict.fromkeys(
        ("CacheSettings", "IntensitySettings", "LocationSetting", "Settings", "load_settings"),
        "carbonshift.config.settings",
    ),
}

__all__ = [
    "CacheSettings",
    "IntensitySettings",
    "JobSpec",
    "JobSpecError",
    "LocationSetting",
    "Settings",
    "jobspec_json_schema",
    "load_jobspec",
    "load_settings",
    "loads_jobspec",
    "parse_jobspec",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
