"""The region catalog: every public AWS, Google Cloud and Azure region with its grid zone, PUE and
static annual grid intensity (each value with its source and year), plus country and sub-national
zone averages for on-prem and local runs. Built by tools/build_catalog.py from openly licensed
tables; see data/SOURCES.md."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from carbonshift.catalog.catalog import Catalog
from carbonshift.catalog.loader import bundled_tables
from carbonshift.catalog.models import CLOUD_PROVIDERS, EU_COUNTRIES, Region, ZoneInfo

if TYPE_CHECKING:
    from carbonshift.config.settings import LocationSetting

__all__ = ["CLOUD_PROVIDERS", "EU_COUNTRIES", "Catalog", "Region", "ZoneInfo", "load_catalog"]


@cache
def _bundled() -> Catalog:
    tables = bundled_tables()
    return Catalog(tables.regions, tables.countries, tables.zones)


def load_catalog(locations: Iterable[LocationSetting] = ()) -> Catalog:
    """The bundled catalog (read once per process), plus the user's own locations when given."""
    extra = list(locations)
    return _bundled().with_locations(extra) if extra else _bundled()
