"""carbonshift: run compute where and when the grid is cleanest, and prove it afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.tracker.api import Track, track
    from carbonshift.tracker.report import TrackReport

    __version__: str

__all__ = ["Track", "TrackReport", "__version__", "track"]

# The tracker (psutil, numpy, the intensity service) loads only when used: `import carbonshift` stays cheap.
_LAZY = {
    "track": "carbonshift.tracker.api",
    "Track": "carbonshift.tracker.api",
    "TrackReport": "carbonshift.tracker.report",
}


def _installed_version() -> str:
    """The installed distribution's version. Read on first use: importlib.metadata costs ~35 ms of
    start-up, which a `carbonshift plan` that never shows the version should not pay."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("carbonshift")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _installed_version()
        return value
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
