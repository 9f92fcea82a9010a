"""`carbonshift run`'s planning half: the spec planned for this machine only, at its own location.

This machine is a `local` region: one of the user's `locations`, the config's `location` (a region
or a zone, turned into a local region with that zone and PUE), or, with neither, the cloud region the
instance metadata reports; with none of these, the tracker's assumed place (the country of this
machine's time zone, else the world average), with a warning. The plan is contiguous (the job is
started once and runs to the end) and its baseline is this machine now, so the saving shown is the
saving of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from carbonshift import runtime
from carbonshift.advisor import Advice, advise
from carbonshift.catalog import Catalog, Region
from carbonshift.clock import FixedClock
from carbonshift.config import Settings
from carbonshift.config.jobspec import JobSpec, Placement
from carbonshift.errors import UnknownLocationError, UserInputError
from carbonshift.intensity.service import IntensityService
from carbonshift.planner.plan import PlanOption
from carbonshift.tracker import location, metadata
from carbonshift.tracker.location import Place
from carbonshift.tracker.report import Planned

THIS_MACHINE = "this-machine"


@dataclass(frozen=True)
class ThisMachine:
    """The region standing for this machine, how it was found, on what basis, and (for an assumed
    place) the warning that says so."""

    region: Region
    how: str
    basis: location.PlaceBasis
    warning: str | None = None


@dataclass(frozen=True)
class LocalPlan:
    advice: Advice
    option: PlanOption
    region: Region
    place: Place
    planned: Planned
    notes: tuple[str, ...]


def _as_local(region: Region, name: str, description: str, settings: Settings) -> Region:
    pue = settings.tracker.pue if settings.tracker.pue is not None else region.pue
    source = "config: tracker.pue" if settings.tracker.pue is not None else region.pue_source
    return replace(region, provider="local", region=name, location=description, pue=pue, pue_source=source)


def _zone_region(place: Place, settings: Settings) -> Region:
    """A local region for a place that is a zone only (no region): its zone, static value and PUE."""
    zone = place.zone
    pue = settings.tracker.pue if settings.tracker.pue is not None else place.pue
    return Region(
        provider="local",
        region=THIS_MACHINE,
        location=f"this machine (zone {zone.id})",
        country=zone.country,
        lat=zone.lat,
        lon=zone.lon,
        zone=zone.id,
        watttime_region=zone.watttime_region,
        pue=pue,
        pue_source="config: tracker.pue" if settings.tracker.pue is not None else place.pue_source,
        g_per_kwh=zone.static_g_per_kwh,
        source=zone.static_source,
        year=zone.static_year,
        basis=zone.static_basis,
    )


def this_machine(settings: Settings, catalog: Catalog) -> ThisMachine:
    """The region standing for this machine and how it was found: the config's `location`, the one
    local location, the cloud's instance metadata, else the assumed place (time zone's country or the
    world average, with a warning). A `location` that is neither region nor zone: UserInputError."""
    local = [r for r in catalog.regions() if r.provider == "local"]
    if settings.location:
        try:
            region = catalog.resolve(settings.location)
        except UnknownLocationError:
            place = location.from_text(settings.location, "location", catalog, settings, zone_only=True)
            return ThisMachine(_zone_region(place, settings), "config location (a zone)", location.CONFIG)
        if region.provider == "local":
            return ThisMachine(_with_pue(region, settings), "config location", location.CONFIG)
        return ThisMachine(
            _as_local(region, THIS_MACHINE, f"this machine ({region.key})", settings),
            "config location",
            location.CONFIG,
        )
    if len(local) == 1:
        return ThisMachine(
            _with_pue(local[0], settings), "the one local location in the config", location.CONFIG
        )
    if len(local) > 1:
        names = ", ".join(r.region for r in local)
        raise UserInputError(
            "location", f"several local locations ({names}): set `location:` to the one this machine is"
        )
    ts = settings.tracker
    if ts.detect_cloud:
        cloud = metadata.detect(
            aws_url=ts.aws_metadata_url,
            gcp_url=ts.gcp_metadata_url,
            azure_url=ts.azure_metadata_url,
            timeout_s=ts.metadata_timeout_s,
        )
        if cloud is not None:
            try:
                region = catalog.region(cloud.provider, cloud.region)
            except UserInputError:
                pass
            else:
                return ThisMachine(
                    _as_local(region, THIS_MACHINE, f"this machine ({region.key})", settings),
                    f"{cloud.provider} instance metadata",
                    location.CLOUD_METADATA,
                )
    assumed = location.assumed_place(settings, catalog)
    return ThisMachine(
        _zone_region(assumed, settings), f"assumed: {assumed.how}", assumed.basis, assumed.warning
    )


def _with_pue(region: Region, settings: Settings) -> Region:
    if settings.tracker.pue is None:
        return region
    return replace(region, pue=settings.tracker.pue, pue_source="config: tracker.pue")


def plan_here(
    spec: JobSpec,
    settings: Settings,
    at: datetime,
    *,
    catalog: Catalog | None = None,
    service: IntensityService | None = None,
) -> LocalPlan:
    catalog = catalog or runtime.build_catalog(settings)
    here = this_machine(settings, catalog)
    region, how = here.region, here.how
    only_here = Catalog([region], catalog.countries(), catalog.zones())
    notes: list[str] = [f"this machine: {region.key} in zone {region.zone} ({how})"]
    if spec.interruptible:
        notes.append("planned as one contiguous run: `run` starts the job once and lets it finish")
    local_spec = spec.model_copy(
        update={"placement": Placement(providers=["local"]), "baseline": None, "interruptible": False}
    )
    advice = advise(
        local_spec,
        catalog=only_here,
        service=service or runtime.build_service(settings, clock=FixedClock(at)),
        now=at,
        signal=settings.signal,
    )
    option = advice.plan.best
    place = replace(location.from_region(region, f"plan ({how})", basis=here.basis), warning=here.warning)
    planned = Planned(
        job=spec.name,
        region=option.ref,
        zone=option.zone,
        start=option.start,
        end=option.end,
        energy_kwh=option.energy.kwh,
        mean_g_per_kwh=option.mean_g_per_kwh,
        kg_co2e=option.kg_co2e,
    )
    return LocalPlan(advice, option, region, place, planned, tuple(notes))


def argv_of(spec: JobSpec) -> list[str]:
    """An argv list is run as is; a string goes to the shell, as the spec's schema says."""
    return list(spec.command) if isinstance(spec.command, list) else ["/bin/sh", "-c", spec.command]
