"""Settings and (later) job spec models: everything a user writes, validated before anything runs."""

from carbonshift.config.settings import (
    CacheSettings,
    IntensitySettings,
    LocationSetting,
    Settings,
    load_settings,
)

__all__ = ["CacheSettings", "IntensitySettings", "LocationSetting", "Settings", "load_settings"]
