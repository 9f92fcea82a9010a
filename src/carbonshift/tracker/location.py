"""Where the job runs, as the emissions need it: a grid zone, and the PUE of the building.

In order: the command line (`--region provider:region` or `--zone Z`), the config's `location` (a
region, one of the user's `locations`, or a zone), then the cloud's instance metadata (detected in the
background while the job runs). Explicit beats detected: a user who names a place means it. The PUE
is `tracker.pue` when set, else the region's (provider figure, or the user's location), else the
planner's stated default, flagged as assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from carbonshift import runtime
from carbonshift.catalog import Catalog, Region
from carbonshift.config import Settings
from carbonshift.errors import UnknownLocationError, UserInputError
from carbonshift.intensity.types import GridZone
from carbonshift.planner.power_tables import host_power
from carbonshift.tracker.metadata import CloudPlace


@dataclass(frozen=True, slots=True)
class Place:
    zone: GridZone
    how: str  # what told us: "--region", "--zone", "config location", "aws instance metadata", ...
    region: Region | None
    pue: float
    pue_source: str
    on_cloud: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone.id,
            "region": self.region.key if self.region is not None else None,
            "country": self.zone.country,
            "how": self.how,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "on_cloud": self.on_cloud,
        }


def _default_pue() -> tuple[float, str]:
    h = host_power()
    return h.default_pue, f"assumed: no region given ({h.sources['default_pue']})"


def from_region(region: Region, how: str, on_cloud: bool = False) -> Place:
    return Place(region.grid_zone(), how, region, region.pue, region.pue_source, on_cloud)


def from_text(text: str, option: str, catalog: Catalog, settings: Settings, *, zone_only: bool) -> Place:
    """A region ('aws:eu-west-1', a user location) or, failing that, a zone ('DE', a file zone)."""
    if not zone_only or ":" in text:
        try:
            return from_region(catalog.resolve(text), option)
        except UnknownLocationError as exc:
            if ":" in text:
                raise UserInputError(option, exc.problem) from None
    try:
        zone = runtime.resolve_zone(text, catalog, settings)
    except UnknownLocationError as exc:
        raise UserInputError(option, exc.problem) from None
    pue, source = _default_pue()
    return Place(zone, option, None, pue, source)


def explicit_place(
    settings: Settings, catalog: Catalog, *, region: str | None = None, zone: str | None = None
) -> Place | None:
    """The place the user named (options first, then the config's `location`), or None."""
    if region and zone:
        raise UserInputError("--region/--zone", "give one of them, not both")
    if region:
        place = from_text(region, "--region", catalog, settings, zone_only=False)
    elif zone:
        place = from_text(zone, "--zone", catalog, settings, zone_only=True)
    elif settings.location:
        place = from_text(settings.location, "location", catalog, settings, zone_only=False)
    else:
        return None
    return with_pue_override(place, settings)


def from_cloud(cloud: CloudPlace, catalog: Catalog, settings: Settings) -> Place | None:
    """The detected cloud region, or None when the catalog does not know it."""
    try:
        region = catalog.region(cloud.provider, cloud.region)
    except UserInputError:
        return None
    return with_pue_override(
        from_region(region, f"{cloud.provider} instance metadata", on_cloud=True), settings
    )


def with_pue_override(place: Place, settings: Settings) -> Place:
    if settings.tracker.pue is None:
        return place
    return replace(place, pue=settings.tracker.pue, pue_source="config: tracker.pue")
