"""Which live sources exist and when each is switched on: sources are plugins named in
`intensity.priority`; a source without its credentials or URL simply isn't built."""

from __future__ import annotations

from collections.abc import Callable

from carbonshift.config import Settings
from carbonshift.intensity.base import IntensitySource
from carbonshift.intensity.sources.files import FileSource


def _files(settings: Settings) -> IntensitySource | None:
    if not settings.intensity.files:
        return None
    return FileSource(dict(settings.intensity.files), max_g_per_kwh=settings.intensity.max_g_per_kwh)


FACTORIES: dict[str, Callable[[Settings], IntensitySource | None]] = {
    "files": _files,
}


def build_sources(settings: Settings) -> list[IntensitySource]:
    """The enabled live sources, in the configured priority order."""
    built = (FACTORIES[name](settings) for name in settings.intensity.priority if name in FACTORIES)
    return [s for s in built if s is not None]
