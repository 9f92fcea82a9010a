"""`carbonshift regions`: the bundled catalog (plus the user's own locations), filtered and sorted."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

import typer

from carbonshift import runtime
from carbonshift.catalog import EU_COUNTRIES, Catalog, Region
from carbonshift.cli import context
from carbonshift.cli.render import OutputFormat, emit_json, table

_ISO2 = re.compile(r"^[A-Za-z]{2}$")


class SortKey(StrEnum):
    INTENSITY = "intensity"
    REGION = "region"


def regions(
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider: aws, azure, gcp (or local).")
    ] = None,
    country: Annotated[
        str | None,
        typer.Option(
            "--country", help="Only this country (ISO 3166-1 alpha-2, e.g. DE), or EU for the 27 members."
        ),
    ] = None,
    sort: Annotated[
        SortKey, typer.Option("--sort", help="region (provider, then id) or intensity (cleanest first).")
    ] = SortKey.REGION,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """Cloud regions with their grid zone, PUE and static annual grid intensity (source and year)."""
    catalog = runtime.build_catalog(context.settings())
    wanted_provider = _check_provider(catalog, provider)
    wanted_country = _check_country(catalog, country)
    rows = catalog.regions(provider=wanted_provider, country=wanted_country)
    if sort is SortKey.INTENSITY:
        # regions without a static value (a user zone no table knows) go last, not first
        rows.sort(key=lambda r: (r.g_per_kwh is None, r.g_per_kwh or 0.0, r.provider, r.region))
    if output is OutputFormat.JSON:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        typer.echo("no regions match", err=True)
        return
    typer.echo(_render(rows))


def _check_provider(catalog: Catalog, value: str | None) -> str | None:
    if value is None:
        return None
    known = catalog.providers()
    if value.strip().lower() not in known:
        raise context.fail(f"--provider {value!r} is not one of: {', '.join(known)}")
    return value.strip().lower()


def _check_country(catalog: Catalog, value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if code == "EU" or (_ISO2.match(code) and catalog.country(code) is not None):
        return code
    with_regions = sorted({r.country for r in catalog.regions() if r.country} | {"EU"})
    raise context.fail(
        f"--country {value!r} is not an ISO 3166-1 alpha-2 country code the catalog knows "
        f"(countries with regions: {', '.join(with_regions)})"
    )


def _render(rows: list[Region]) -> str:
    body = table(
        ["provider", "region", "location", "country", "zone", "gCO2e/kWh", "year", "basis", "PUE", "source"],
        [
            (
                r.provider,
                r.region,
                r.location,
                r.country or "",
                r.zone,
                f"{r.g_per_kwh:.1f}" if r.g_per_kwh is not None else "n/a",
                r.year or "",
                r.basis or "",
                f"{r.pue:.3f}",
                r.source or "no static value for this zone",
            )
            for r in rows
        ],
        "lllllrrlrl",
    )
    eu = sum(1 for r in rows if r.country in EU_COUNTRIES)
    noun = "region" if len(rows) == 1 else "regions"
    foot = (
        f"{len(rows)} {noun} ({eu} in the EU); gCO2e/kWh is the zone's static annual location-based grid "
        "average (one per zone; Google's own per-region figures: --format json, provider_reported_*); "
        "sources and licences: carbonshift/catalog/data/SOURCES.md"
    )
    return f"{body}\n{foot}"


def register(app: typer.Typer) -> None:
    app.command("regions")(regions)
