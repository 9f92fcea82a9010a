"""Where the job runs, as the emissions need it: a grid zone, and the PUE of the building.

In order, each named in the report as the place's `basis`: the command line (`--region
provider:region` or `--zone Z`: given), the config's `location` (a region, one of the user's
`locations`, or a zone: config), the cloud's instance metadata (detected in the background while the
job runs: cloud-metadata); with none of these, the country of this machine's time zone (timezone),
else the world average (world-average), each of those two with a warning that says what was assumed
and how to say where. Explicit beats detected: a user who names a place means it. Every run that has
energy therefore has emissions. The PUE is `tracker.pue` when set, else the region's (provider
figure, or the user's location), else the planner's stated default, flagged as assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from carbonshift import runtime
from carbonshift.catalog import Catalog, Region
from carbonshift.config import Settings
from carbonshift.errors import UnknownLocationError, UserInputError
from carbonshift.intensity.types import GridZone
from carbonshift.planner.power_tables import host_power
from carbonshift.tracker import timezone
from carbonshift.tracker.metadata import CloudPlace

# a place's basis (`location.basis` in the report): what it rests on, from a user's word to a guess
PlaceBasis = Literal["given", "config", "cloud-metadata", "timezone", "world-average"]
GIVEN: PlaceBasis = "given"  # --region / --zone (or region= / zone= in Python)
CONFIG: PlaceBasis = "config"  # the config's `location`, or the one local location it defines
CLOUD_METADATA: PlaceBasis = "cloud-metadata"  # the cloud's instance metadata service
TIMEZONE: PlaceBasis = "timezone"  # assumed: the country of this machine's time zone
WORLD_AVERAGE: PlaceBasis = "world-average"  # assumed: nothing says where; the world's average grid
HOW_TO_SAY_WHERE = "say where with --region provider:region, --zone ZONE or `location:` in the config"


@dataclass(frozen=True, slots=True)
class Place:
    zone: GridZone
    how: str  # what told us: "--region", "--zone", "config location", "aws instance metadata", ...
    region: Region | None
    pue: float
    pue_source: str
    on_cloud: bool = False
    basis: PlaceBasis = GIVEN
    warning: str | None = None  # for an assumed place: one line saying what was assumed, and the fix

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone.id,
            "region": self.region.key if self.region is not None else None,
            "country": self.zone.country,
            "basis": self.basis,
            "how": self.how,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "on_cloud": self.on_cloud,
        }


def _default_pue() -> tuple[float, str]:
    h = host_power()
    return h.default_pue, f"assumed: no region given ({h.sources['default_pue']})"


def from_region(region: Region, how: str, on_cloud: bool = False, *, basis: PlaceBasis = GIVEN) -> Place:
    return Place(region.grid_zone(), how, region, region.pue, region.pue_source, on_cloud, basis)


def from_text(
    text: str,
    option: str,
    catalog: Catalog,
    settings: Settings,
    *,
    zone_only: bool,
    basis: PlaceBasis = GIVEN,
) -> Place:
    """A region ('aws:eu-west-1', a user location) or, failing that, a zone ('DE', a file zone).
    Neither: UserInputError naming `option` (exit 2)."""
    if not zone_only or ":" in text:
        try:
            return from_region(catalog.resolve(text), option, basis=basis)
        except UnknownLocationError as exc:
            if ":" in text:
                raise UserInputError(option, exc.problem) from None
    try:
        zone = runtime.resolve_zone(text, catalog, settings)
    except UnknownLocationError as exc:
        raise UserInputError(option, exc.problem) from None
    pue, source = _default_pue()
    return Place(zone, option, None, pue, source, basis=basis)


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
        place = from_text(settings.location, "location", catalog, settings, zone_only=False, basis=CONFIG)
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
        from_region(region, f"{cloud.provider} instance metadata", on_cloud=True, basis=CLOUD_METADATA),
        settings,
    )


def assumed_place(
    settings: Settings,
    catalog: Catalog,
    *,
    tz_name: str | None = None,
    zone_tab: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Place:
    """Where the job is assumed to run when nothing says (no option, no config `location`, no cloud
    metadata): the country of this machine's time zone (basis `timezone`), else the world average
    (basis `world-average`). The place's `warning` says what was assumed and how to say where.

    `tz_name` defaults to this machine's zone (TZ, else its configuration) and `zone_tab` to the tz
    database's table that zoneinfo finds; `environ` (default os.environ) is where TZ and
    PYTHONTZPATH are read."""
    name = tz_name if tz_name is not None else timezone.local_zone_name(environ)
    country = None
    if name:
        country = timezone.country_of_zone(name, zone_tab or timezone.find_zone_tab(environ))
    pue, pue_source = _default_pue()
    if country is not None:
        zone = catalog.zone(country)
        if zone.static_g_per_kwh is not None:
            called = f"{zone.name} ({country})" if zone.name else country
            warning = (
                f"no location given: assumed the grid of {called}, the country of this machine's time "
                f"zone {name}; {HOW_TO_SAY_WHERE}"
            )
            place = Place(zone, f"time zone {name}", None, pue, pue_source, basis=TIMEZONE, warning=warning)
            return with_pue_override(place, settings)
    world = catalog.world_zone()
    if not name:
        why = "no time zone is set"
    elif country is None:
        why = f"the time zone {name} names no country"
    else:
        why = f"no grid average is known for {country}, the country of the time zone {name}"
    value = f" ({world.static_g_per_kwh:.0f} g/kWh)" if world.static_g_per_kwh is not None else ""
    warning = f"no location given and {why}: assumed the world average grid{value}; {HOW_TO_SAY_WHERE}"
    place = Place(world, "world average", None, pue, pue_source, basis=WORLD_AVERAGE, warning=warning)
    return with_pue_override(place, settings)


def with_pue_override(place: Place, settings: Settings) -> Place:
    if settings.tracker.pue is None:
        return place
    return replace(place, pue=settings.tracker.pue, pue_source="config: tracker.pue")
