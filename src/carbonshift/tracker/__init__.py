"""The bundled tracker: measures what a job really used (RAPL, NVML, or a CPU/memory model), charges
each interval's energy at the grid's intensity for that time and place, and reports it.

Names are exported lazily so `import carbonshift` (and the settings, which include the tracker's)
stays cheap: psutil, numpy and the intensity service load only when a job is tracked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.tracker.api import Track, track
    from carbonshift.tracker.report import TrackReport
    from carbonshift.tracker.tracker import Tracker

__all__ = ["Track", "TrackReport", "Tracker", "track"]

_WHERE = {
    "Track": "carbonshift.tracker.api",
    "track": "carbonshift.tracker.api",
    "TrackReport": "carbonshift.tracker.report",
    "Tracker": "carbonshift.tracker.tracker",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
