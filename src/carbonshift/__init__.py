"""carbonshift: run compute where and when the grid is cleanest, and prove it afterwards."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.tracker.api import Track, track
    from carbonshift.tracker.report import TrackReport

try:
    __version__ = version("carbonshift")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["Track", "TrackReport", "__version__", "track"]

# The tracker (psutil, numpy, the intensity service) loads only when used: `import carbonshift` stays cheap.
_LAZY = {
    "track": "carbonshift.tracker.api",
    "Track": "carbonshift.tracker.api",
    "TrackReport": "carbonshift.tracker.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
