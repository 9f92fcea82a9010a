"""Grid carbon intensity: static tables and live APIs merged into one series with provenance."""

from carbonshift.intensity.types import (
    GridZone,
    IntensityPoint,
    IntensitySeries,
    Kind,
    Provenance,
    Signal,
    TimeSpan,
)

__all__ = ["GridZone", "IntensityPoint", "IntensitySeries", "Kind", "Provenance", "Signal", "TimeSpan"]
