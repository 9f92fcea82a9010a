"""Wiring: builds the objects a command or the HTTP API needs (catalog, intensity service) from settings.

The CLI and the API stay thin by asking here; tests build the same objects with their own settings.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime

from carbonshift.catalog import Catalog, load_catalog
from carbonshift.clock import Clock, SystemClock
from carbonshift.config import Settings
from carbonshift.errors import UnknownLocationError
from carbonshift.intensity.cache import IntensityCache
from carbonshift.intensity.registry import build_sources
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.shared import SharedIntensity
from carbonshift.intensity.types import GridZone

log = logging.getLogger(__name__)

_UKCI_ZONE = re.compile(r"^GB-UKCI-[A-Z0-9]{1,4}$", re.IGNORECASE)


def build_catalog(settings: Settings) -> Catalog:
    """The bundled catalog plus the user's `locations:` and the Slurm clusters (`slurm:NAME`, each with
    its zone's grid; a `locations:` entry of the same name wins)."""
    if settings.kubernetes.clusters:  # `kubernetes:NAME` the same way (a `locations:` entry wins)
        from carbonshift.providers.kubernetes import cluster_locations as kubernetes_locations

        derived = kubernetes_locations(settings)
        settings = settings.model_copy(update={"locations": [*derived, *settings.locations]})
    if not settings.slurm.clusters:
        return load_catalog(locations=settings.locations)
    from carbonshift.providers.slurm import cluster_locations

    return load_catalog(locations=[*cluster_locations(settings), *settings.locations])


def build_service(settings: Settings, clock: Clock | None = None, *, cache: bool = True) -> IntensityService:
    """The merging service with every source the settings switch on, and the cache if it can be opened
    (an unwritable cache directory costs speed, not correctness). `cache=False`: none, for a process
    whose sources are all local (the cache keeps only remote answers) that runs beside others which
    may be creating the same cache file (`cli/plan_slices.py`'s workers)."""
    return IntensityService(
        build_sources(settings),
        cache=_open_cache(settings) if cache else None,
        clock=clock or SystemClock(),
        model_history_days=settings.intensity.model_history_days,
    )


def service_factory(settings: Settings, clock: Clock | None = None) -> Callable[[], IntensityService]:
    """For a process that plans again and again (the daemon: every API plan, submission and re-plan):
    a new service per plan, so each keeps its own notices, but all of them share the sources, the
    opened cache, one thread pool and the merged series per (zone, signal, hour) (see
    intensity/shared.py). Building all that per plan was most of a dry-run plan's time."""
    sources = build_sources(settings)
    cache = _open_cache(settings)
    shared = SharedIntensity(ttl_s=settings.cache.forecast_ttl_s)
    at = clock or SystemClock()

    def make() -> IntensityService:
        return IntensityService(
            sources,
            cache=cache,
            clock=at,
            model_history_days=settings.intensity.model_history_days,
            shared=shared,
        )

    return make


def _open_cache(settings: Settings) -> IntensityCache | None:
    if not settings.cache.enabled:
        return None
    path = settings.cache.resolved_path()
    try:
        return IntensityCache(
            path, forecast_ttl_s=settings.cache.forecast_ttl_s, history_ttl_s=settings.cache.history_ttl_s
        )
    except (OSError, sqlite3.Error) as exc:  # unwritable, or locked by another process past the timeout
        log.warning("intensity cache %s unavailable (%s); running without it", path, exc)
        return None


def resolve_zone(text: str, catalog: Catalog, settings: Settings) -> GridZone:
    """A region ('aws:eu-west-1', 'eu-west-1', a user location) or a zone id ('DE', 'US-CAL-CISO',
    'GB-UKCI-13', or a zone the user mapped to a file) to the grid zone the sources understand."""
    try:
        return catalog.resolve(text).grid_zone()
    except UnknownLocationError as region_error:
        zone = catalog.zone(text.upper() if not _is_user_zone(text, settings) else text)
        known = (
            zone.static_g_per_kwh is not None or _is_user_zone(text, settings) or bool(_UKCI_ZONE.match(text))
        )
        if not known:
            raise UnknownLocationError(
                "ZONE_OR_REGION",
                f"{text!r} is neither a known region nor a known zone ({region_error.problem}); "
                "see `carbonshift regions` for regions, or map the zone to a file in the config",
            ) from None
        return zone


def _is_user_zone(text: str, settings: Settings) -> bool:
    return text.upper() in {z.upper() for z in settings.intensity.files}


def now_or(value: datetime | None, clock: Clock | None = None) -> datetime:
    return value if value is not None else (clock or SystemClock()).now()
