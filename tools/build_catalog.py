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


SOURCES: tuple[Source, ...] = (
    Source(
        "google-region-carbon-info",
        "Google Cloud region carbon info",
        "https://github.com/GoogleCloudPlatform/region-carbon-info",
        "Apache-2.0",
        "Google Cloud region carbon data (Apache-2.0)",
        "GCP regions: grid intensity per region and year (data/yearly/<year>.csv)",
    ),
    Source(
        "cloud-carbon-footprint",
        "Cloud Carbon Footprint app constants",
        "https://github.com/cloud-carbon-footprint/cloud-carbon-footprint",
        "Apache-2.0",
        "Cloud Carbon Footprint, (c) Thoughtworks, Inc. (Apache-2.0)",
        "AWS and Azure grid factors, region -> Electricity Maps zone mapping, PUE constants",
    ),
    Source(
        "codecarbon",
        "CodeCarbon data tables",
        "https://github.com/mlco2/codecarbon",
        "MIT (country data from Our World in Data, CC BY 4.0, based on Ember and the Energy Institute)",
        "CodeCarbon (MIT); Our World in Data (CC BY 4.0); Ember (CC BY 4.0); Energy Institute",
        "country annual averages (private_infra/global_energy_mix.json); Nordic bidding zones "
        "(private_infra/nordic_emissions.json)",
    ),
    Source(
        "ember-annual",
        "Ember 2021 annual intensity per country (via grid-intensity-go)",
        "https://github.com/thegreenwebfoundation/grid-intensity-go",
        "Ember data CC BY 4.0 (repository Apache-2.0)",
        "Ember (CC BY 4.0)",
        "fallback country averages (only for a country CodeCarbon lacks); ISO3 -> ISO2 codes",
    ),
    Source(
        "green-algorithms",
        "Green Algorithms calculator data",
        "https://github.com/GreenAlgorithms/green-algorithms-tool",
        "CC BY 4.0",
        "Green Algorithms (Lannelongue, Grealey & Inouye 2021), CC BY 4.0",
        "sub-national zones: US states, Canadian provinces, Australian states (CI_aggregated.csv)",
    ),
    Source(
        "carbon-aware-scheduler-mapping",
        "CarbonAware scheduler: cloud region -> WattTime region",
        "https://github.com/carbon-aware/scheduler",
        "Apache-2.0",
        "carbon-aware/scheduler region mapping (Apache-2.0)",
        "WattTime region per cloud region",
    ),
    Source(
        "gsf-carbon-aware-sdk-locations",
        "GSF Carbon Aware SDK location sources",
        "https://github.com/Green-Software-Foundation/carbon-aware-sdk",
        "MIT",
        "Green Software Foundation Carbon Aware SDK (MIT)",
        "Azure region coordinates and names; AWS region names",
    ),
    Source(
        "experiment-impact-tracker",
        "experiment-impact-tracker region tables",
        "https://github.com/Breakend/experiment-impact-tracker",
        "MIT",
        "experiment-impact-tracker, (c) 2019 Peter Henderson (MIT)",
        "AWS and GCP region coordinates and locations",
    ),
    Source(
        "carbontracker",
        "carbontracker data tables",
        "https://github.com/lfwa/carbontracker",
        "MIT",
        "carbontracker (MIT)",
        "ISO 3166 alpha-3 -> alpha-2 codes only",
    ),
    Source(
        "eco2ai",
        "eco2AI data tables",
        "https://github.com/sb-ai-lab/Eco2AI",
        "Apache-2.0",
        "eco2AI (Apache-2.0)",
        "ISO 3166 alpha-3 -> alpha-2 codes only",
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
    g_per_kwh: float | None = None
    source: str = ""
    year: int | None = None
    coords_source: str = ""
    zone_source: str = ""


@dataclass(frozen=True)
class ValueRow:
    """A country or zone with its annual average."""

    id: str
    name: str
    country: str
    g_per_kwh: float
    source: str
    year: int
    iso3: str = ""


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
    countries: dict[str, ValueRow] = field(default_factory=dict)
    zones: dict[str, ValueRow] = field(default_factory=dict)
    facts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

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
    """CodeCarbon's OWID extract (2022/2023, 213 countries) first; Ember 2021 only fills a gap."""
    codes = _iso3_to_iso2(shared)
    mix = json.loads((shared / "codecarbon" / "private_infra" / "global_energy_mix.json").read_text())
    for iso3, entry in mix.items():
        iso2 = codes.get(iso3)
        if iso2 is None:
            raise SystemExit(
                f"no ISO alpha-2 code for {iso3} ({entry['country_name']}); add it to EXTRA_ISO3"
            )
        inp.countries[iso2] = ValueRow(
            iso2,
            entry["country_name"],
            iso2,
            float(entry["carbon_intensity"]),
            COUNTRY_LABEL,
            int(entry["year"]),
            iso3,
        )
    for row in _csv(shared / "ember-annual" / "co2-intensities-ember-2021.csv"):
        iso2 = row["country_code_iso_2"]
        if iso2 and iso2 not in inp.countries:
            inp.countries[iso2] = ValueRow(
                iso2,
                row["country_or_region"],
                iso2,
                float(row["emissions_intensity_gco2_per_kwh"]),
                EMBER_LABEL,
                int(row["year"]),
                row["country_code_iso_3"],
            )


def read_zones(shared: Path, inp: Inputs) -> None:
    nordic = json.loads((shared / "codecarbon" / "private_infra" / "nordic_emissions.json").read_text())[
        "data"
    ]
    for key, entry in nordic.items():
        zone = NORDIC_ZONE_IDS.get(key, key)
        inp.zones[zone] = ValueRow(
            zone,
            entry["description"],
            zone[:2],
            float(entry["emission_factor"]),
            "CodeCarbon nordic_emissions (ENTSO-E)",
            int(entry["year"]),
        )
    path = shared / "green-algorithms" / "CI_aggregated.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()[1:]  # the first of the two header rows is a caption
    for row in csv.DictReader(lines):
        code = row["location"].strip()
        if row["Type"].strip() != "Region" or ("-" not in code and code not in GA_ZONE_IDS):
            continue
        zone = GA_ZONE_IDS.get(code, code)
        if zone is None:
            continue
        year = re.search(r"data from (\d{4})", row["source"])
        if year is None:
            raise SystemExit(f"green-algorithms {code}: no data year in {row['source']!r}")
        inp.zones[zone] = ValueRow(
            zone,
            GA_NAME_FIXES.get(row["regionName"].strip(), row["regionName"].strip()),
            zone[:2],
            float(row["carbonIntensity"]),
            "Green Algorithms (carbonfootprint.com)",
            int(year.group(1)),
        )


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


def ccf_value(provider: str, region: str, inp: Inputs) -> tuple[float, str, int] | None:
    found = inp.ccf_factor.get((provider, region))
    if found is None:
        return None
    value, basis = found
    if basis.startswith("eGRID NERC"):
        return value, f"CCF: EPA eGRID{CCF_EGRID_YEAR} NERC {basis.split()[-1]}", CCF_EGRID_YEAR
    if (provider, region) in CCF_EEA:
        return value, "CCF: EEA", CCF_EEA_YEAR
    return value, f"CCF: carbonfootprint.com {CCF_CFCOM_YEAR}", CCF_CFCOM_YEAR


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
    value: tuple[float, str, int] | None = None
    if provider == "gcp" and region in inp.google:
        g, year, _ = inp.google[region]
        value = (g, f"Google region-carbon-info {year}", year)
    elif provider in ("aws", "azure"):
        value = ccf_value(provider, region, inp)
    if value is None and row.country in inp.countries:
        c = inp.countries[row.country]
        value = (c.g_per_kwh, f"country average {c.id}: {c.source}", c.year)
    if value is not None:
        row.g_per_kwh, row.source, row.year = value
    problems = [name for name in ("location", "country", "zone", "source") if not getattr(row, name)]
    problems += [name for name in ("lat", "lon", "g_per_kwh", "year", "pue") if getattr(row, name) is None]
    if problems:
        raise SystemExit(
            f"{provider}:{region} lacks {', '.join(problems)} (seen in: {', '.join(sorted(inp.candidates[key]))}); "
            "add it to tools/catalog/region_facts.csv, or to EXCLUDED if it is not a public region"
        )
    if not ZONE_RE.match(row.zone):
        raise SystemExit(f"{provider}:{region}: zone {row.zone!r} is not an Electricity Maps style id")
    if row.country not in inp.countries:
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
    read_facts(facts, inp)
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


def render_countries(values: Iterable[ValueRow]) -> str:
    header = ["country", "iso3", "name", "g_per_kwh", "source", "year"]
    rows = (
        [v.id, v.iso3, v.name, _num(v.g_per_kwh), v.source, str(v.year)]
        for v in sorted(values, key=lambda v: v.id)
    )
    return _write_csv(header, rows)


def render_zones(values: Iterable[ValueRow]) -> str:
    header = ["zone", "name", "country", "g_per_kwh", "source", "year"]
    rows = (
        [v.id, v.name, v.country, _num(v.g_per_kwh), v.source, str(v.year)]
        for v in sorted(values, key=lambda v: v.id)
    )
    return _write_csv(header, rows)


def render_sources_md(
    shared: Path, regions: list[RegionRow], inp: Inputs, excluded: dict[tuple[str, str], str]
) -> str:
    per_provider = ", ".join(f"{p} {sum(r.provider == p for r in regions)}" for p in PROVIDERS)
    labels: dict[str, int] = {}
    for r in regions:
        label = "country average (see countries.csv)" if r.source.startswith("country average") else r.source
        labels[label] = labels.get(label, 0) + 1
    out = [
        "# Sources of the bundled catalog",
        "",
        "Generated by `tools/build_catalog.py` (do not edit by hand; edit `tools/catalog/region_facts.csv` or the",
        "script and rebuild with `.venv/bin/python tools/build_catalog.py --shared ../shared/data`).",
        "",
        f"- `regions.csv`: {len(regions)} public regions ({per_provider}).",
        f"- `countries.csv`: {len(inp.countries)} country annual averages.",
        f"- `zones.csv`: {len(inp.zones)} sub-national zones (Nordic bidding zones, US states, Canadian"
        " provinces, Australian states).",
        "",
        "Every value row carries `source` (a short label, below) and `year` (the year the value describes).",
        "All values are location-based annual grid averages in gCO2e/kWh: the grid's mix, not a provider's",
        "renewable purchases, and never a marginal signal.",
        "",
        "## Attribution",
        "",
    ]
    out += [f"- {s.attribution}" for s in SOURCES]
    out += [
        "",
        "## Source tables",
        "",
        "| folder | what it gives here | licence | repository @ commit (date) |",
        "|---|---|---|---|",
    ]
    for s in SOURCES:
        commit, date = _source_commit(shared, s.folder)
        out.append(f"| {s.folder} | {s.used_for} | {s.licence} | {s.repo} @ {commit[:12]} ({date}) |")
    out += [
        "| tools/catalog/region_facts.csv | hand-curated facts for regions the tables lack (location, country,"
        " coordinates, zone with a justification), each citing the provider's public region list | this"
        " project | - |",
        "",
        "Read at build time only to map codes, never bundled: carbontracker and eco2AI tables (ISO 3166 codes).",
        'Deliberately not used: gsf-real-time-cloud ("All rights reserved"; the tests read it as a cross-check',
        "only), lets-wait-awhile (no licence), mlco2's Electricity Maps yearly averages (Electricity Maps'",
        "terms forbid republishing).",
        "",
        "## Value sources in regions.csv",
        "",
        "| source label | regions | year means |",
        "|---|---|---|",
    ]
    meaning = {
        "Google": "the year of Google's published grid intensity for the region (latest year available)",
        "CCF: EPA": f"EPA eGRID{CCF_EGRID_YEAR} NERC-region factor, as embedded in CCF",
        "CCF: EEA": f"EEA CO2 intensity as embedded in CCF; CCF does not state the year, {CCF_EEA_YEAR} is the "
        "latest EEA year at CCF's last refresh (2021)",
        "CCF: carbonfootprint.com": "carbonfootprint.com 'emissions factors for 2021 electricity' (2022-03), as embedded in CCF",
        "country average": "the year of the country value in countries.csv (used for regions no table covers)",
    }
    for label in sorted(labels):
        why = next((v for k, v in meaning.items() if label.startswith(k)), "")
        out.append(f"| {label} | {labels[label]} | {why} |")
    out += [
        "",
        "Country values: `OWID/Ember via CodeCarbon` is Our World in Data's carbon intensity of electricity",
        "generation (based on Ember and the Energy Institute), as extracted in CodeCarbon's",
        "`global_energy_mix.json`; `Ember 2021` only fills a country CodeCarbon lacks.",
        "Zone values: `CodeCarbon nordic_emissions (ENTSO-E)` (Nordic bidding zones) and",
        "`Green Algorithms (carbonfootprint.com)` (sub-national factors compiled by carbonfootprint.com from",
        "national inventories and eGRID; US states use ISO 3166-2 ids such as US-TX, which are not",
        "Electricity Maps zones).",
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
