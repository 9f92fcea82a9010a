"""The static table's precedence, on hand-made inputs: most specific geography first (the zone, then
the sub-national area it is mapped to, then its country), then the most recent year, then the source
ranking; a tie the ranking cannot break fails the build rather than picking one silently."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_catalog", REPO / "tools" / "build_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_catalog"] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def _inputs(build: ModuleType, *values: tuple[str, float, str, int]) -> object:
    inp = build.Inputs()
    for geo, g, source, year in values:
        inp.offer(build.Candidate(geo, geo, geo[:2], g, source, year))
    return inp


OWID, GA, NORDIC, EGRID, EMBER = (
    "OWID/Ember via CodeCarbon",
    "Green Algorithms (carbonfootprint.com)",
    "CodeCarbon nordic_emissions (ENTSO-E)",
    "CCF: EPA eGRID2019",
    "Ember 2021",
)


def test_the_zone_itself_beats_a_newer_country_value(build: ModuleType) -> None:
    inp = _inputs(build, ("CA-QC", 1.5, GA, 2019), ("CA", 170.0, OWID, 2023))
    level, chosen = build.zone_value("CA-QC", inp)
    assert (level, chosen.g_per_kwh, chosen.year) == ("zone", 1.5, 2019)


def test_a_mapped_area_beats_the_country_and_an_unmapped_zone_takes_the_country(build: ModuleType) -> None:
    inp = _inputs(build, ("US-WA", 101.8, GA, 2020), ("US", 369.0, OWID, 2023))
    inp.zone_areas["US-NW-BPAT"] = ("US-WA", "BPA's generation lies mostly in Washington")
    assert build.zone_value("US-NW-BPAT", inp)[0:2][0] == "area"
    assert build.zone_value("US-NW-BPAT", inp)[1].g_per_kwh == 101.8
    level, chosen = build.zone_value("US-MIDA-PJM", inp)  # not mapped: its country
    assert (level, chosen.geo, chosen.g_per_kwh) == ("country", "US", 369.0)
    assert build.zone_value("XX-NOWHERE", inp) is None


def test_within_one_geography_the_newest_year_then_the_source_rank(build: ModuleType) -> None:
    newest = _inputs(build, ("FI", 95.0, OWID, 2023), ("FI", 72.0, NORDIC, 2025), ("FI", 150.0, EMBER, 2021))
    assert build.pick(newest.values["FI"]).g_per_kwh == 72.0  # type: ignore[attr-defined]
    same_year = _inputs(build, ("SE", 40.0, EMBER, 2023), ("SE", 35.0, OWID, 2023))
    assert build.pick(same_year.values["SE"]).source == OWID  # type: ignore[attr-defined]
    assert list(build.VALUE_SOURCES).index(OWID) < list(build.VALUE_SOURCES).index(EMBER)


def test_two_different_values_the_ranking_cannot_tell_apart_fail_the_build(build: ModuleType) -> None:
    clash = _inputs(build, ("US-NERC-RFC", 410.0, EGRID, 2019), ("US-NERC-RFC", 379.0, EGRID, 2019))
    with pytest.raises(SystemExit, match="different values"):
        build.pick(clash.values["US-NERC-RFC"])  # type: ignore[attr-defined]


def test_every_source_label_has_a_basis_and_a_method(build: ModuleType) -> None:
    for label, info in build.VALUE_SOURCES.items():
        assert info.basis in ("direct", "lifecycle") and info.method and info.why_basis, label
    inp = build.Inputs()
    with pytest.raises(SystemExit, match="not in VALUE_SOURCES"):
        inp.offer(build.Candidate("DE", "Germany", "DE", 380.0, "some table", 2023))


def test_sources_md_gives_licence_and_redistribution_for_every_table() -> None:
    text = (REPO / "src" / "carbonshift" / "catalog" / "data" / "SOURCES.md").read_text(encoding="utf-8")
    table = text.split("## Source tables, licences and what reaches the package", 1)[1].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| folder")]
    assert len(rows) >= 10
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        licence, redistribution = cells[2], cells[3]
        assert licence, row
        assert redistribution.startswith(("allowed", "not bundled", "bundled")), row
    assert "## One value per zone: the precedence" in text
    assert "gsf-real-time-cloud" in text and "All rights reserved" in text
