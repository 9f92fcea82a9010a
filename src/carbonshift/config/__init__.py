"""Settings and job spec models: everything a user writes, validated before anything runs."""

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
