"""Building the live API sources from settings, for the merging service.

Each live source is on only when configured (a token, credentials, a URL; the GB API unless switched
off), so a newcomer with no keys gets no network calls to services they have no account with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from carbonshift.intensity.base import IntensitySource
from carbonshift.intensity.http import HttpFactory, http_factory_from_settings
from carbonshift.intensity.sources.carbon_aware_sdk import CarbonAwareSdkSource
from carbonshift.intensity.sources.electricitymaps import ElectricityMapsSource
from carbonshift.intensity.sources.ukci import UkCarbonIntensitySource
from carbonshift.intensity.sources.watttime import WattTimeSource

if TYPE_CHECKING:
    from carbonshift.config.settings import Settings

SourceBuilder = Callable[["Settings", HttpFactory | None], IntensitySource | None]

LIVE_SOURCES: dict[str, SourceBuilder] = {
    "electricitymaps": ElectricityMapsSource.from_settings,
    "watttime": WattTimeSource.from_settings,
    "ukci": UkCarbonIntensitySource.from_settings,
    "carbon_aware_sdk": CarbonAwareSdkSource.from_settings,
}


def build_live_sources(
    settings: Settings, http_factory: HttpFactory | None = None
) -> dict[str, IntensitySource]:
    """The configured live sources by name, in `settings.intensity.priority` order (names that are not
    live API sources, such as "files", are skipped; so are sources left unconfigured)."""
    factory = http_factory or http_factory_from_settings(settings)
    built: dict[str, IntensitySource] = {}
    for name in settings.intensity.priority:
        build = LIVE_SOURCES.get(name)
        if build is None or name in built:
            continue
        source = build(settings, factory)
        if source is not None:
            built[name] = source
    return built
