"""Build the bundled region catalog from openly licensed tables, so a maintainer can refresh it next year.

    .venv/bin/python tools/build_catalog.py --shared ../shared/data

reads the source folders under --shared plus the hand-curated tools/catalog/region_facts.csv and
writes src/carbonshift/catalog/data/{regions,countries,zones}.csv and SOURCES.md. Every static value
carries its own source label and year; nothing here reads data whose licence forbids bundling
(gsf-real-time-cloud, lets-wait-awhile, Electricity Maps' yearly averages are never opened).

The output is deterministic (sorted rows, no timestamps): `--check` rebuilds in memory and fails when
the bundled files differ, which is how the tests prove the tables are what the sources say.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "src" / "carbonshift" / "catalog" / "data"
DEFAULT_FACTS = REPO / "tools" / "catalog" / "region_facts.csv"
PROVIDERS = ("aws", "gcp", "azure")

# ---------------------------------------------------------------------------------------------------
# The sources this build reads (folder under --shared), with the licence and attribution they ask for.


@dataclass(frozen=True)
class Source:
    folder: str
    title: str
    repo: str
    licence: str
    attribution: str
    used_for: str
    redistribution: str


SOURCES: tuple[Source, ...] = (
    Source(
        "google-region-carbon-info",
        "Google Cloud region carbon info",
        "https://github.com/GoogleCloudPlatform/region-carbon-info",
        "Apache-2.0",
        "Google Cloud region carbon data (Apache-2.0)",
        "GCP regions: Google's grid intensity per region and year, kept as provider_reported_* only",
        "allowed (Apache-2.0, with attribution): values bundled",
    ),
    Source(
        "cloud-carbon-footprint",
        "Cloud Carbon Footprint app constants",
        "https://github.com/cloud-carbon-footprint/cloud-carbon-footprint",
        "Apache-2.0",
        "Cloud Carbon Footprint, (c) Thoughtworks, Inc. (Apache-2.0)",
        "eGRID2019 NERC-region factors, region -> Electricity Maps zone mapping, PUE constants",
        "allowed (Apache-2.0, with attribution): values bundled",
    ),
    Source(
        "codecarbon",
        "CodeCarbon data tables",
        "https://github.com/mlco2/codecarbon",
        "MIT (country data from Our World in Data, CC BY 4.0, based on Ember and the Energy Institute)",
        "CodeCarbon (MIT); Our World in Data (CC BY 4.0); Ember (CC BY 4.0); Energy Institute",
        "country annual averages (private_infra/global_energy_mix.json); Nordic bidding zones "
        "(private_infra/nordic_emissions.json)",
        "allowed (MIT; CC BY 4.0 with attribution): values bundled",
    ),
    Source(
        "ember-annual",
        "Ember 2021 annual intensity per country (via grid-intensity-go)",
        "https://github.com/thegreenwebfoundation/grid-intensity-go",
        "Ember data CC BY 4.0 (repository Apache-2.0)",
        "Ember (CC BY 4.0)",
        "country averages (win only where CodeCarbon's table lacks the country); ISO3 -> ISO2 codes",
        "allowed (CC BY 4.0, with attribution): values bundled",
    ),
    Source(
        "green-algorithms",
        "Green Algorithms calculator data",
        "https://github.com/GreenAlgorithms/green-algorithms-tool",
        "CC BY 4.0",
        "Green Algorithms (Lannelongue, Grealey & Inouye 2021), CC BY 4.0",
        "sub-national zones: US states, Canadian provinces, Australian states; the world average "
        "(CI_aggregated.csv)",
        "allowed (CC BY 4.0, with attribution): values bundled",
    ),
    Source(
        "carbon-aware-scheduler-mapping",
        "CarbonAware scheduler: cloud region -> WattTime region",
        "https://github.com/carbon-aware/scheduler",
        "Apache-2.0",
        "carbon-aware/scheduler region mapping (Apache-2.0)",
        "WattTime region per cloud region",
        "allowed (Apache-2.0): region ids bundled",
    ),
    Source(
        "gsf-carbon-aware-sdk-locations",
        "GSF Carbon Aware SDK location sources",
        "https://github.com/Green-Software-Foundation/carbon-aware-sdk",
        "MIT",
        "Green Software Foundation Carbon Aware SDK (MIT)",
        "Azure region coordinates and names; AWS region names",
        "allowed (MIT): names and coordinates bundled",
    ),
    Source(
        "experiment-impact-tracker",
        "experiment-impact-tracker region tables",
        "https://github.com/Breakend/experiment-impact-tracker",
        "MIT",
        "experiment-impact-tracker, (c) 2019 Peter Henderson (MIT)",
        "AWS and GCP region coordinates and locations; Electricity Maps 2019 zone display names",
        "allowed (MIT): names and coordinates bundled",
    ),
    Source(
        "carbontracker",
        "carbontracker data tables",
        "https://github.com/lfwa/carbontracker",
        "MIT",
        "carbontracker (MIT)",
        "ISO 3166 alpha-3 -> alpha-2 codes only",
        "not bundled: read at build time to map codes",
    ),
    Source(
        "eco2ai",
        "eco2AI data tables",
        "https://github.com/sb-ai-lab/Eco2AI",
        "Apache-2.0",
        "eco2AI (Apache-2.0)",
        "ISO 3166 alpha-3 -> alpha-2 codes only",
        "not bundled: read at build time to map codes",
    ),
)

# ---------------------------------------------------------------------------------------------------
# Scope: what the data sources list that is not a public region one can run in. Every name a source
# carries that is neither here nor in the catalog fails the build, so a refresh cannot add junk silently.

EXCLUDED: dict[tuple[str, str], str] = {
    ("aws", "us-gov-east-1"): "AWS GovCloud: restricted to vetted US government customers",
    ("aws", "us-gov-west-1"): "AWS GovCloud: restricted to vetted US government customers",
    ("aws", "unknown"): "CCF's average for unmapped regions, not a place",
    ("gcp", "us-central2"): "in Google's table, but not open to customers",
    ("gcp", "us-east2"): "in Google's table, but not open to customers",
    ("gcp", "unknown"): "CCF's average for unmapped regions, not a place",
    ("azure", "unknown"): "CCF's average for unmapped regions, not a place",
    ("azure", "eastus3"): "announced, not open (CCF lists it ahead of time)",
    ("azure", "brazilus"): "restricted logical region",
}
GCP_MULTI_REGIONS = frozenset({"asia", "europe", "us", "asia1", "eur4", "nam4"})
AZURE_LOGICAL = frozenset(
    {
        "asia", "asiapacific", "australia", "brazil", "canada", "europe", "france", "germany", "global",
        "india", "japan", "korea", "norway", "southafrica", "switzerland", "uae", "uk", "unitedstates",
        "apeast", "apsoutheast", "usnorth",
    }
)  # fmt: skip
AZURE_CHINA = frozenset({"chinaeast", "chinaeast2", "chinaeast3", "chinanorth", "chinanorth2", "chinanorth3"})


def excluded_reason(provider: str, region: str) -> str | None:
    if (provider, region) in EXCLUDED:
        return EXCLUDED[(provider, region)]
    if provider == "gcp" and region in GCP_MULTI_REGIONS:
        return "multi-region or dual-region, not a place"
    if provider == "azure":
        if region in AZURE_LOGICAL:
            return "logical (geography) region, not a place"
        if region in AZURE_CHINA:
            return "Azure operated by 21Vianet (a separate cloud)"
        if region.endswith(("stage", "stg", "euap")):
            return "staging / early-access region"
    return None


# CCF's methodology appendix ("Grid emissions factors") names the origin of its "explicit" factors: the EEA
# for these, carbonfootprint.com's "2021 electricity" factors for the rest. Its US factors are eGRID NERC
# regions, moved to eGRID2019 in CCF issue #252 (2021) and not updated since.
CCF_EEA = frozenset(
    [("aws", r) for r in ("eu-central-1", "eu-west-1", "eu-west-2", "eu-south-1", "eu-west-3", "eu-north-1")]
    + [("azure", r) for r in ("northeurope", "westeurope", "uksouth", "ukwest")]
)
CCF_EEA_YEAR = 2019  # the latest EEA year when CCF last refreshed (2021); CCF does not state it
CCF_CFCOM_YEAR = 2021  # carbonfootprint.com "emissions factors sources for 2021 electricity" (2022-03)
CCF_EGRID_YEAR = 2019

# ISO 3166 alpha-3 -> alpha-2 for the two countries none of the code tables carries.
EXTRA_ISO3 = {"SHN": "SH", "TLS": "TL"}

# Green Algorithms' own location codes -> the zone ids used here (ISO 3166-2, which Electricity Maps
# shares for Canadian provinces and Australian states); None drops a row this catalog covers otherwise.
GA_ZONE_IDS: dict[str, str | None] = {
    "CA-MT": "CA-MB",  # Manitoba
    "AU-WA2": "AU-WA",  # South West Interconnected System, the main WA grid (Electricity Maps AU-WA)
    "AU-WA1": None,  # North Western Interconnected System: no zone id of its own
    "AU-NT2": None,  # Darwin-Katherine system, a part of AU-NT
    "CN-HK": None,  # Hong Kong: a country (HK) in this catalog
    "CN-HK2": None,
    "TW": None,  # Taiwan: a country (TW) in this catalog
}

GA_NAME_FIXES = {"Mississip": "Mississippi"}

NORDIC_ZONE_IDS = {f"SE{i}": f"SE-SE{i}" for i in range(1, 5)} | {f"NO{i}": f"NO-NO{i}" for i in range(1, 6)}

ZONE_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]+)*$")

# ---------------------------------------------------------------------------------------------------
# Output rows


@dataclass
class RegionRow:
    provider: str
    region: str
    location: str = ""
    country: str = ""
    lat: float | None = None
    lon: float | None = None
    zone: str = ""
    watttime_region: str = ""
    pue: float | None = None
    pue_source: str = ""
    provider_reported_g_per_kwh: float | None = None
    provider_reported_source: str = ""
    provider_reported_year: int | None = None
    provider_reported_basis: str = ""
    coords_source: str = ""
    zone_source: str = ""


@dataclass(frozen=True)
class Candidate:
    """One table's annual average for one geography (a zone, a sub-national area, a country, the world)."""

    geo: str
    name: str
    country: str
    g_per_kwh: float
    source: str  # a key of VALUE_SOURCES
    year: int


@dataclass(frozen=True)
class ValueRow:
    """A country or zone with the annual average chosen for it by the documented precedence."""

    id: str
    name: str
    country: str
    g_per_kwh: float
    source: str
    year: int
    iso3: str = ""
    basis: str = ""
    level: str = ""  # zone | area | country | world: how specific the chosen value's geography is
    geography: str = ""  # the id of the geography the value describes (the zone itself, US-WA, JP, ...)
    method: str = ""


@dataclass(frozen=True)
class ValueSource:
    """What a source label's values are: emissions basis, method, and its rank among equals."""

    basis: str  # direct (combustion at the plant) | lifecycle (plus upstream and construction)
    method: str
    why_basis: str


# Source labels in ranking order: when two values for one geography describe the same year, the earlier
# label wins. Basis per source as each source documents it (see why_basis).
VALUE_SOURCES: dict[str, ValueSource] = {
    "OWID/Ember via CodeCarbon": ValueSource(
        "lifecycle",
        "national generation mix x IPCC AR5 lifecycle factors (Ember yearly data, via OWID and CodeCarbon)",
        "Ember computes intensity with lifecycle emission factors (IPCC AR5); OWID republishes it",
    ),
    "CodeCarbon nordic_emissions (ENTSO-E)": ValueSource(
        "lifecycle",
        "static bidding-zone factors from historical ENTSO-E generation (CodeCarbon)",
        "CodeCarbon does not name its factors; 18 g for hydro/nuclear Norway and Sweden is a lifecycle "
        "magnitude (direct factors give under 10 g)",
    ),
    "Green Algorithms (carbonfootprint.com)": ValueSource(
        "direct",
        "state/province generation factor compiled by carbonfootprint.com from national inventories and eGRID",
        "carbonfootprint.com's electricity factors are generation (combustion) CO2e, as national "
        "inventories report them",
    ),
    "CCF: EPA eGRID2019": ValueSource(
        "direct",
        "EPA eGRID2019 NERC-region output emission rate, as embedded in Cloud Carbon Footprint",
        "eGRID output emission rates count stack (combustion) emissions only",
    ),
    "Ember 2021": ValueSource(
        "lifecycle",
        "national generation mix x lifecycle factors (Ember 2021, via grid-intensity-go)",
        "Ember's methodology uses lifecycle emission factors",
    ),
    "IEA via Green Algorithms": ValueSource(
        "direct",
        "world power-sector CO2 per kWh (IEA Global Energy & CO2 Status Report 2019, via Green Algorithms)",
        "IEA reports combustion CO2 of power generation",
    ),
}
SOURCE_RANK = {label: i for i, label in enumerate(VALUE_SOURCES)}

# A provider's own published figure per region: kept beside the zone's value, never ranked by.
PROVIDER_REPORTED = ValueSource(
    "direct",
    "Google's average hourly grid intensity for the region's local grid, as Google publishes it",
    "Google defines it as 'the average operational gross emissions per unit of energy from the grid'",
)
LEVELS = ("zone", "area", "country")


@dataclass
class Inputs:
    google: dict[str, tuple[float, int, str]] = field(default_factory=dict)
    ccf_factor: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    ccf_zone: dict[tuple[str, str], str] = field(default_factory=dict)
    pue_avg: dict[str, float] = field(default_factory=dict)
    gcp_pue: dict[str, float] = field(default_factory=dict)
    watttime: dict[tuple[str, str], str] = field(default_factory=dict)
    coords: dict[tuple[str, str], tuple[float, float, str]] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    candidates: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    countries: dict[str, ValueRow] = field(default_factory=dict)  # chosen, once every table is read
    zones: dict[str, ValueRow] = field(default_factory=dict)  # chosen, once every table is read
    facts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    values: dict[str, list[Candidate]] = field(default_factory=dict)  # by geography id
    country_meta: dict[str, tuple[str, str]] = field(default_factory=dict)  # ISO2 -> (name, ISO3)
    zone_areas: dict[str, tuple[str, str]] = field(default_factory=dict)  # zone -> (area, justification)
    area_zone_names: dict[str, str] = field(default_factory=dict)  # zone -> its name, from zone_areas.csv
    zone_names: dict[str, str] = field(default_factory=dict)

    def offer(self, candidate: Candidate) -> None:
        if candidate.source not in VALUE_SOURCES:
            raise SystemExit(f"{candidate.geo}: source label {candidate.source!r} is not in VALUE_SOURCES")
        self.values.setdefault(candidate.geo, []).append(candidate)

    def seen(self, provider: str, region: str, where: str) -> None:
        self.candidates.setdefault((provider, region.lower()), set()).add(where)


# ---------------------------------------------------------------------------------------------------
# Readers: one per source file, each returning plain values.


def _csv(path: Path, encoding: str = "utf-8-sig", delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as f:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items() if k}
            for row in csv.DictReader(f, delimiter=delimiter)
        ]


def read_google(shared: Path, inp: Inputs) -> None:
    """The latest year Google published for each region wins (older years stay in the repo for history)."""
    for path in sorted((shared / "google-region-carbon-info").glob("[0-9][0-9][0-9][0-9].csv")):
        year = int(path.stem)
        for row in _csv(path):
            region = row["Google Cloud Region"]
            value_key = next(k for k in row if "carbon intensity" in k.lower())
            if not row[value_key]:
                continue
            inp.seen("gcp", region, "google")
            inp.google[region] = (float(row[value_key]), year, row["Location"])


def read_ccf(shared: Path, inp: Inputs) -> None:
    folder = shared / "cloud-carbon-footprint"
    for row in _csv(folder / "ccf_emissions_factors.csv"):
        provider = row["provider"]
        if provider not in PROVIDERS:  # gcp_cfe_adjusted is market-style, not a grid average
            continue
        region = row["region"].lower()
        inp.seen(provider, region, "ccf")
        inp.ccf_factor[(provider, region)] = (float(row["g_co2e_per_kwh"]), row["basis"])
        if row["basis"].startswith("eGRID NERC"):
            # the one CCF factor with a clear geography (a NERC region); its carbonfootprint.com and EEA
            # factors are per cloud region (one country gets different values per provider), so unused
            nerc = row["basis"].split()[-1]
            inp.offer(
                Candidate(
                    f"US-NERC-{nerc}",
                    f"NERC {nerc}",
                    "US",
                    float(row["g_co2e_per_kwh"]),
                    "CCF: EPA eGRID2019",
                    CCF_EGRID_YEAR,
                )
            )
    for row in _csv(folder / "ccf_region_to_electricitymaps_zone.csv"):
        region = row["region"].lower()
        inp.seen(row["provider"], region, "ccf")
        if row["electricitymaps_zone"]:
            inp.ccf_zone[(row["provider"], region)] = row["electricitymaps_zone"]
    with (folder / "ccf_cloud_constants.csv").open(encoding="utf-8", newline="") as f:
        for cells in csv.reader(f):
            if len(cells) < 4:
                continue
            provider, name, region, value = cells[0], cells[1], cells[2], cells[3]
            if name == "PUE_AVG":
                inp.pue_avg[provider] = float(value)
            elif name == "PUE_TRAILING_TWELVE_MONTH" and provider == "gcp":
                inp.gcp_pue[region] = float(value)


def read_watttime(shared: Path, inp: Inputs) -> None:
    data = json.loads(
        (shared / "carbon-aware-scheduler-mapping" / "cloud-region_to_watttime-region.json").read_text()
    )
    for (provider, region), wt_region in data:
        if provider in PROVIDERS:
            inp.seen(provider, region, "watttime-mapping")
            inp.watttime[(provider, region.lower())] = wt_region


def read_locations(shared: Path, inp: Inputs) -> None:
    eit = shared / "experiment-impact-tracker"
    for provider, name in (("aws", "aws_regions.csv"), ("gcp", "gcp_regions.csv")):
        with (eit / name).open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
        for region, location, lat, lon in (tuple(c.strip() for c in r) for r in rows):
            inp.seen(provider, region, "experiment-impact-tracker")
            inp.coords[(provider, region)] = (float(lat), float(lon), "experiment-impact-tracker")
            if provider == "gcp":
                inp.names[(provider, region)] = location
    casdk = shared / "gsf-carbon-aware-sdk-locations"
    # latin-1: the file stores "São Paulo" as one byte per character
    for entry in json.loads((casdk / "aws-regions.json").read_text(encoding="latin-1")):
        inp.seen("aws", entry["code"], "carbon-aware-sdk")
        inp.names[("aws", entry["code"])] = entry["full_name"]
    cli = json.loads((casdk / "azure-cli-list-locations_2021-11-02.utf8.json").read_text(encoding="utf-8"))
    for entry in cli:
        meta = entry.get("metadata", {})
        if meta.get("regionType") != "Physical":
            continue
        region = entry["name"]
        inp.seen("azure", region, "azure-cli")
        physical = meta.get("physicalLocation")
        inp.names[("azure", region)] = (
            f"{entry['displayName']} ({physical})" if physical else entry["displayName"]
        )
        inp.coords[("azure", region)] = (float(meta["latitude"]), float(meta["longitude"]), "azure-cli 2021")
    for region, entry in json.loads((casdk / "location-sources_azure-regions.json").read_text()).items():
        inp.seen("azure", region, "carbon-aware-sdk")
        inp.coords[("azure", region)] = (
            float(entry["Latitude"]),
            float(entry["Longitude"]),
            "carbon-aware-sdk",
        )


def _iso3_to_iso2(shared: Path) -> dict[str, str]:
    codes = dict(EXTRA_ISO3)
    for row in _csv(shared / "carbontracker" / "carbon-intensities.csv"):
        if row["alpha-2"] and row["Code"]:
            codes[row["Code"]] = row["alpha-2"]
    for row in _csv(shared / "eco2ai" / "carbon_index.csv"):
        if row["alpha_3_code"] not in ("", "N/A") and row["alpha_2_code"] not in ("", "N/A"):
            codes.setdefault(row["alpha_3_code"], row["alpha_2_code"])
    for row in _csv(shared / "ember-annual" / "co2-intensities-ember-2021.csv"):
        if row["country_code_iso_2"]:
            codes.setdefault(row["country_code_iso_3"], row["country_code_iso_2"])
    return codes


COUNTRY_LABEL = "OWID/Ember via CodeCarbon"
EMBER_LABEL = "Ember 2021"


def read_countries(shared: Path, inp: Inputs) -> None:
    """CodeCarbon's OWID extract (2022/2023, 213 countries) and Ember 2021 are both offered; the
    precedence picks (Ember 2021 only ever wins for a country OWID lacks)."""
    codes = _iso3_to_iso2(shared)
    mix = json.loads((shared / "codecarbon" / "private_infra" / "global_energy_mix.json").read_text())
    for iso3, entry in mix.items():
        iso2 = codes.get(iso3)
        if iso2 is None:
            raise SystemExit(
                f"no ISO alpha-2 code for {iso3} ({entry['country_name']}); add it to EXTRA_ISO3"
            )
        inp.country_meta[iso2] = (entry["country_name"], iso3)
        inp.offer(
            Candidate(
                iso2,
                entry["country_name"],
                iso2,
                float(entry["carbon_intensity"]),
                COUNTRY_LABEL,
                int(entry["year"]),
            )
        )
    for row in _csv(shared / "ember-annual" / "co2-intensities-ember-2021.csv"):
        iso2 = row["country_code_iso_2"]
        if not iso2:
            continue
        inp.country_meta.setdefault(iso2, (row["country_or_region"], row["country_code_iso_3"]))
        inp.offer(
            Candidate(
                iso2,
                row["country_or_region"],
                iso2,
                float(row["emissions_intensity_gco2_per_kwh"]),
                EMBER_LABEL,
                int(row["year"]),
            )
        )


NORDIC_LABEL = "CodeCarbon nordic_emissions (ENTSO-E)"
GA_LABEL = "Green Algorithms (carbonfootprint.com)"
WORLD_LABEL = "IEA via Green Algorithms"


def read_zones(shared: Path, inp: Inputs) -> None:
    nordic = json.loads((shared / "codecarbon" / "private_infra" / "nordic_emissions.json").read_text())[
        "data"
    ]
    for key, entry in nordic.items():
        zone = NORDIC_ZONE_IDS.get(key, key)  # FI is a whole country: offered as one
        inp.offer(
            Candidate(
                zone,
                entry["description"],
                zone[:2],
                float(entry["emission_factor"]),
                NORDIC_LABEL,
                int(entry["year"]),
            )
        )
    path = shared / "green-algorithms" / "CI_aggregated.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()[1:]  # the first of the two header rows is a caption
    for row in csv.DictReader(lines):
        code = row["location"].strip()
        if code == "WORLD":  # its `source` is the IEA report's address; the year is in `comments`
            year = re.search(r"(\d{4})", row.get("comments") or "")
            if year is None:
                raise SystemExit("green-algorithms WORLD: no data year")
            inp.offer(
                Candidate(
                    "WORLD", "World", "", float(row["carbonIntensity"]), WORLD_LABEL, int(year.group(1))
                )
            )
            continue
        if row["Type"].strip() != "Region" or ("-" not in code and code not in GA_ZONE_IDS):
            continue
        zone = GA_ZONE_IDS.get(code, code)
        if zone is None:
            continue
        year = re.search(r"data from (\d{4})", row["source"])
        if year is None:
            raise SystemExit(f"green-algorithms {code}: no data year in {row['source']!r}")
        inp.offer(
            Candidate(
                zone,
                GA_NAME_FIXES.get(row["regionName"].strip(), row["regionName"].strip()),
                zone[:2],
                float(row["carbonIntensity"]),
                GA_LABEL,
                int(year.group(1)),
            )
        )


def read_zone_areas(path: Path, inp: Inputs) -> None:
    for row in _csv(path, encoding="utf-8"):
        if row["zone"] in inp.zone_areas:
            raise SystemExit(f"{path}: zone {row['zone']} appears twice")
        if not row["justification"]:
            raise SystemExit(f"{path}: zone {row['zone']} maps to {row['area']} without a justification")
        inp.zone_areas[row["zone"]] = (row["area"], row["justification"])
        inp.area_zone_names[row["zone"]] = row["name"]


def read_zone_names(shared: Path, inp: Inputs) -> None:
    """Electricity Maps zone names (2019, via experiment-impact-tracker): display names only."""
    data = json.loads((shared / "experiment-impact-tracker" / "zone_names.json").read_text(encoding="utf-8"))
    for zone, entry in data["zoneShortName"].items():
        inp.zone_names[zone] = entry["zoneName"]


def read_facts(path: Path, inp: Inputs) -> None:
    for row in _csv(path, encoding="utf-8"):
        key = (row["provider"], row["region"])
        if key in inp.facts:
            raise SystemExit(f"{path}: {key} appears twice")
        if row["zone"] and not row["zone_justification"]:
            raise SystemExit(f"{path}: {key} sets a zone without a justification")
        if not row["reference"]:
            raise SystemExit(f"{path}: {key} cites no reference")
        inp.facts[key] = row
        inp.seen(row["provider"], row["region"], "region_facts")


# ---------------------------------------------------------------------------------------------------
# Assembly


def _source_commit(shared: Path, folder: str) -> tuple[str, str]:
    text = (shared / folder / "SOURCES.md").read_text(encoding="utf-8")
    commit = re.search(r"\b[0-9a-f]{40}\b", text)
    date = re.search(r"\b(\d{4}-\d{2}-\d{2})\b", text[commit.end() :] if commit else text)
    return (commit.group(0) if commit else "unknown", date.group(1) if date else "unknown")


def pick(candidates: list[Candidate]) -> Candidate:
    """Among values for one geography: the most recent year, then the source ranking."""
    best = min(candidates, key=lambda c: (-c.year, SOURCE_RANK[c.source]))
    rivals = {c.g_per_kwh for c in candidates if (c.year, c.source) == (best.year, best.source)}
    if len(rivals) > 1:
        raise SystemExit(f"{best.geo}: {best.source} {best.year} gives different values {sorted(rivals)}")
    return best


def zone_value(zone: str, inp: Inputs) -> tuple[str, Candidate] | None:
    """The one static value of a zone: the most specific geography that has a value (the zone itself,
    then the sub-national area region_facts maps it to, then its country), then `pick` among that
    geography's values."""
    area = inp.zone_areas.get(zone, ("", ""))[0]
    for level, geo in zip(LEVELS, (zone, area, zone.split("-", maxsplit=1)[0]), strict=True):
        if geo and inp.values.get(geo):
            return level, pick(inp.values[geo])
    return None


def _value_row(zone: str, name: str, country: str, level: str, chosen: Candidate, iso3: str = "") -> ValueRow:
    info = VALUE_SOURCES[chosen.source]
    return ValueRow(
        zone,
        name,
        country,
        chosen.g_per_kwh,
        chosen.source,
        chosen.year,
        iso3,
        info.basis,
        level,
        chosen.geo,
        info.method,
    )


def choose_values(inp: Inputs, region_zones: Iterable[str]) -> None:
    """Fill inp.countries and inp.zones: every country, every sub-national table zone, every zone a
    region sits in, and the world average, each with its one value."""
    used = set(region_zones)
    for iso2, (name, iso3) in inp.country_meta.items():
        inp.countries[iso2] = _value_row(iso2, name, iso2, "country", pick(inp.values[iso2]), iso3)
    table_zones = {g for g in inp.values if "-" in g and not g.startswith("US-NERC-")}
    for zone in sorted(table_zones | used):
        if zone in inp.countries:
            continue
        found = zone_value(zone, inp)
        if found is None:
            raise SystemExit(f"zone {zone}: no value for the zone, its area or its country")
        level, chosen = found
        exact = [c for c in inp.values.get(zone, []) if c.name]
        country = zone.split("-")[0]
        name = (
            exact[0].name
            if exact
            else inp.area_zone_names.get(zone)
            or inp.zone_names.get(zone)
            or f"{inp.country_meta.get(country, (country, ''))[0]} ({zone})"
        )
        inp.zones[zone] = _value_row(zone, name, country, level, chosen)
    for zone, (area, _) in inp.zone_areas.items():
        if zone not in used:
            raise SystemExit(f"zone_areas.csv maps {zone}, which no region sits in")
        if not inp.values.get(area):
            raise SystemExit(f"zone_areas.csv maps {zone} to {area}, which no table has a value for")
    world = pick(inp.values["WORLD"])
    inp.zones["WORLD"] = _value_row("WORLD", "World", "", "world", world)


def build_region(provider: str, region: str, inp: Inputs) -> RegionRow:
    key = (provider, region)
    facts = inp.facts.get(key, {})
    row = RegionRow(provider, region)
    row.location = (
        facts.get("location")
        or inp.names.get(key)
        or (inp.google.get(region, (0, 0, ""))[2] if provider == "gcp" else "")
    )
    if facts.get("lat") and facts.get("lon"):
        row.lat, row.lon, row.coords_source = float(facts["lat"]), float(facts["lon"]), "region_facts.csv"
    elif key in inp.coords:
        row.lat, row.lon, row.coords_source = inp.coords[key]
    if facts.get("zone"):
        row.zone, row.zone_source = facts["zone"], f"region_facts.csv: {facts['zone_justification']}"
    elif key in inp.ccf_zone:
        row.zone, row.zone_source = inp.ccf_zone[key], "CCF region -> Electricity Maps zone mapping"
    prefix = row.zone.split("-")[0]
    row.country = facts.get("country") or prefix
    if row.zone and row.country != prefix:
        raise SystemExit(f"{provider}:{region}: country {row.country} does not match zone {row.zone}")
    override = facts.get("watttime_region", "")
    row.watttime_region = "" if override == "-" else override or inp.watttime.get(key, "")
    if provider == "gcp" and region in inp.gcp_pue:
        row.pue, row.pue_source = inp.gcp_pue[region], "CCF GCP trailing-12-month PUE"
    else:
        row.pue, row.pue_source = inp.pue_avg[provider], f"CCF {provider} PUE_AVG"
    if provider == "gcp" and region in inp.google:
        g, year, _ = inp.google[region]
        row.provider_reported_g_per_kwh = g
        row.provider_reported_source = f"Google region-carbon-info {year}"
        row.provider_reported_year = year
        row.provider_reported_basis = PROVIDER_REPORTED.basis
    problems = [name for name in ("location", "country", "zone") if not getattr(row, name)]
    problems += [name for name in ("lat", "lon", "pue") if getattr(row, name) is None]
    if problems:
        raise SystemExit(
            f"{provider}:{region} lacks {', '.join(problems)} (seen in: {', '.join(sorted(inp.candidates[key]))}); "
            "add it to tools/catalog/region_facts.csv, or to EXCLUDED if it is not a public region"
        )
    if not ZONE_RE.match(row.zone):
        raise SystemExit(f"{provider}:{region}: zone {row.zone!r} is not an Electricity Maps style id")
    if row.country not in inp.country_meta:
        raise SystemExit(f"{provider}:{region}: country {row.country} is not in the country table")
    assert row.lat is not None and row.lon is not None
    if not (-90 <= row.lat <= 90 and -180 <= row.lon <= 180):
        raise SystemExit(f"{provider}:{region}: coordinates out of range")
    return row


def build(shared: Path, facts: Path) -> tuple[list[RegionRow], Inputs, dict[tuple[str, str], str]]:
    inp = Inputs()
    read_google(shared, inp)
    read_ccf(shared, inp)
    read_watttime(shared, inp)
    read_locations(shared, inp)
    read_countries(shared, inp)
    read_zones(shared, inp)
    read_zone_names(shared, inp)
    read_facts(facts, inp)
    read_zone_areas(facts.parent / "zone_areas.csv", inp)
    regions: list[RegionRow] = []
    excluded: dict[tuple[str, str], str] = {}
    for provider, region in sorted(inp.candidates):
        reason = excluded_reason(provider, region)
        if reason is not None:
            if (provider, region) in inp.facts:
                raise SystemExit(f"{provider}:{region} has curated facts but is excluded ({reason})")
            excluded[(provider, region)] = reason
            continue
        regions.append(build_region(provider, region, inp))
    choose_values(inp, (r.zone for r in regions))
    return regions, inp, excluded


# ---------------------------------------------------------------------------------------------------
# Output


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return ""
    text = repr(round(value, digits))
    return text[:-2] if text.endswith(".0") else text


def _write_csv(header: list[str], rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def render_regions(regions: list[RegionRow]) -> str:
    """One column per RegionRow field, in declaration order."""
    header = [f.name for f in fields(RegionRow)]

    def cell(value: object) -> str:
        if value is None or isinstance(value, str):
            return value or ""
        return _num(value) if isinstance(value, float) else str(value)

    return _write_csv(header, ([cell(getattr(r, name)) for name in header] for r in regions))


VALUE_COLUMNS = ["g_per_kwh", "basis", "source", "year", "level", "geography", "method"]


def _value_cells(v: ValueRow) -> list[str]:
    return [_num(v.g_per_kwh), v.basis, v.source, str(v.year), v.level, v.geography, v.method]


def render_countries(values: Iterable[ValueRow]) -> str:
    header = ["country", "iso3", "name", *VALUE_COLUMNS]
    rows = ([v.id, v.iso3, v.name, *_value_cells(v)] for v in sorted(values, key=lambda v: v.id))
    return _write_csv(header, rows)


def render_zones(values: Iterable[ValueRow]) -> str:
    header = ["zone", "name", "country", *VALUE_COLUMNS]
    rows = ([v.id, v.name, v.country, *_value_cells(v)] for v in sorted(values, key=lambda v: v.id))
    return _write_csv(header, rows)


def render_sources_md(
    shared: Path, regions: list[RegionRow], inp: Inputs, excluded: dict[tuple[str, str], str]
) -> str:
    per_provider = ", ".join(f"{p} {sum(r.provider == p for r in regions)}" for p in PROVIDERS)
    zone_of = {r.zone: inp.zones.get(r.zone) or inp.countries[r.zone] for r in regions}
    by_level: dict[str, int] = {}
    for r in regions:
        by_level[zone_of[r.zone].level] = by_level.get(zone_of[r.zone].level, 0) + 1
    out = [
        "# Sources of the bundled catalog",
        "",
        "Generated by `tools/build_catalog.py` (do not edit by hand; edit `tools/catalog/region_facts.csv`,",
        "`tools/catalog/zone_areas.csv` or the script and rebuild with",
        "`.venv/bin/python tools/build_catalog.py --shared ../shared/data`).",
        "",
        f"- `regions.csv`: {len(regions)} public regions ({per_provider}): place, grid zone, PUE, and the",
        "  provider's own published figure where there is one. No static intensity: a region takes its zone's.",
        f"- `zones.csv`: {len(inp.zones)} zones (every zone a region sits in, every sub-national zone of the",
        "  tables, and `WORLD`), each with one static value.",
        f"- `countries.csv`: {len(inp.countries)} countries, each with one static value.",
        "",
        "All values are location-based annual grid averages in gCO2e/kWh (the grid's mix, not a provider's",
        "renewable purchases, never a marginal signal), each with `source`, `year`, `basis` (direct or",
        "lifecycle), `level` and `geography` (what the value describes), and `method`.",
        "",
        "## One value per zone: the precedence",
        "",
        "1. Most specific geography first: a value for the zone itself; else for the sub-national area",
        "   `tools/catalog/zone_areas.csv` maps it to (a US state or NERC region, with the reason); else its country.",
        "2. Among values for that geography, the most recent year.",
        "3. Then the source ranking: " + " > ".join(f"`{label}`" for label in VALUE_SOURCES) + ".",
        "",
        "Regions in one zone therefore always share one value. Regions by the level their zone's value",
        "comes from: " + ", ".join(f"{level} {n}" for level, n in sorted(by_level.items())) + ".",
        "Zones whose value is their country's (no open table has a sub-national value for them): "
        + ", ".join(sorted({r.zone for r in regions if zone_of[r.zone].level == "country" and "-" in r.zone}))
        + ".",
        "",
        "## Value sources",
        "",
        "| source label | basis | method | why this basis |",
        "|---|---|---|---|",
    ]
    out += [f"| {label} | {v.basis} | {v.method} | {v.why_basis} |" for label, v in VALUE_SOURCES.items()]
    out += [
        f"| Google region-carbon-info YEAR (regions.csv `provider_reported_*` only) | {PROVIDER_REPORTED.basis} "
        f"| {PROVIDER_REPORTED.method} | {PROVIDER_REPORTED.why_basis} |",
        "",
        "Google's per-region figures are kept as `provider_reported_g_per_kwh`, never ranked by: they come",
        "from a method and data (Electricity Maps hourly data for Google's own sites) that no table offers",
        "for the other two clouds' regions in the same grid, so ranking by them would rank by provider.",
        "",
        "## Attribution",
        "",
    ]
    out += [f"- {s.attribution}" for s in SOURCES]
    out += [
        "",
        "## Source tables, licences and what reaches the package",
        "",
        "| folder | what it gives here | licence | redistribution | repository @ commit (date) |",
        "|---|---|---|---|---|",
    ]
    for s in SOURCES:
        commit, date = _source_commit(shared, s.folder)
        out.append(
            f"| {s.folder} | {s.used_for} | {s.licence} | {s.redistribution} | {s.repo} @ {commit[:12]} ({date}) |"
        )
    out += [
        "| tools/catalog/region_facts.csv, zone_areas.csv | hand-curated facts for regions the tables lack"
        " (location, country, coordinates, zone with a justification), each citing the provider's public"
        " region list; zone -> sub-national area with the reason | this project | bundled | - |",
        "",
        "Read at build time only, never bundled: carbontracker and eCO2AI tables (ISO 3166 codes).",
        'Deliberately not used: gsf-real-time-cloud ("All rights reserved"; the tests read it as a cross-check',
        "only), lets-wait-awhile (no licence), mlco2's Electricity Maps yearly averages (Electricity Maps'",
        "terms forbid republishing). Cloud Carbon Footprint's per-region carbonfootprint.com and EEA factors",
        "are not used for values: they are per cloud region (one country gets different figures from",
        "different providers' rows), older than the national tables, and of no stated geography.",
        "",
        "## PUE",
        "",
        "From CCF's constants: aws 1.135 and azure 1.185 (PUE_AVG); gcp per region where CCF lists Google's",
        "trailing-twelve-month PUE, else 1.1 (PUE_AVG). `pue_source` says which.",
        "",
        "## Zones and coordinates",
        "",
        "`zone_source` says where each region's grid zone comes from: CCF's region -> Electricity Maps mapping,",
        "or `region_facts.csv` with the reason (new regions, blanks in CCF, and a few CCF mappings that put",
        "a region in the wrong balancing area). `coords_source` does the same for latitude/longitude.",
        "WattTime regions come from the carbon-aware/scheduler mapping and are blank where it has none.",
        "Zone display names: the table's own, else Electricity Maps' 2019 zone names (via",
        "experiment-impact-tracker), else the country's name and the zone id.",
        "",
        "## Not in the catalog",
        "",
    ]
    out += [f"- {p}:{r}: {why}" for (p, r), why in sorted(excluded.items())]
    out += [
        "- anything else a source names that is not a public region fails the build until it is listed here",
        "  (see EXCLUDED in the script) or given facts.",
        "",
    ]
    return "\n".join(out)


def render_all(shared: Path, facts: Path) -> dict[str, str]:
    regions, inp, excluded = build(shared, facts)
    return {
        "regions.csv": render_regions(regions),
        "countries.csv": render_countries(inp.countries.values()),
        "zones.csv": render_zones(inp.zones.values()),
        "SOURCES.md": render_sources_md(shared, regions, inp, excluded),
    }


def _diff(out: Path, files: dict[str, str]) -> Iterator[str]:
    for name, text in files.items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            yield name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared", type=Path, default=REPO.parent / "shared" / "data", help="the source folders"
    )
    parser.add_argument("--facts", type=Path, default=DEFAULT_FACTS, help="hand-curated region facts (CSV)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the generated files go")
    parser.add_argument("--check", action="store_true", help="fail if the files in --out are not up to date")
    args = parser.parse_args(argv)
    files = render_all(args.shared, args.facts)
    if args.check:
        stale = list(_diff(args.out, files))
        if stale:
            print(f"out of date: {', '.join(stale)} (rebuild with tools/build_catalog.py)", file=sys.stderr)
            return 1
        print("catalog is up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    counts = {name: text.count("\n") - 1 for name, text in files.items() if name.endswith(".csv")}
    print(f"wrote {args.out}: " + ", ".join(f"{n} {c} rows" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
