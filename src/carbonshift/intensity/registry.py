"""Which sources exist and when each is switched on: sources are plugins named in
`intensity.priority`; a source without its credentials or URL simply isn't built, so a newcomer with
no keys makes no calls to services they have no account with."""

from __future__ import annotations

from carbonshift.config import Settings
from carbonshift.intensity.base import IntensitySource
from carbonshift.intensity.http import HttpFactory
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.sources.live import build_live_sources


def build_sources(settings: Settings, http_factory: HttpFactory | None = None) -> list[IntensitySource]:
    """The enabled sources (user files and live APIs), in the configured priority order."""
    live = build_live_sources(settings, http_factory)
    ordered: list[IntensitySource] = []
    for name in settings.intensity.priority:
        if name == "files" and settings.intensity.files:
            ordered.append(
                FileSource(
                    dict(settings.intensity.files),
                    max_g_per_kwh=settings.intensity.max_g_per_kwh,
                    basis=settings.intensity.files_basis,
                )
            )
        elif name in live:
            ordered.append(live[name])
    return ordered
