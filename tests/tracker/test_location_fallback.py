"""Every tracked run has emissions: with no `--region`/`--zone`, no config `location` and no cloud
metadata, the place is the country of the machine's time zone, else the world average; the report's
`location.basis` names the fallback and a warning says how to give the place. The time zone comes from
TZ and the country from a zone.tab written here (found through PYTHONTZPATH, as zoneinfo finds it),
so nothing depends on the machine the tests run on."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import carbonshift
from carbonshift.runtime import build_catalog
from carbonshift.tracker import location
from carbonshift.tracker.sources.base import Component
from carbonshift.tracker.timezone import country_of_zone, find_zone_tab, local_zone_name, zone_tab_paths
from carbonshift.tracker.tracker import Tracker
from tests.cli.helpers import run_cli

from . import helpers
from .helpers import PY, ZONE, ConstantSource, config_file

ZONE_TAB = """\
# tzdb timezone descriptions (deprecated version)
#country-
#code\tcoordinates\tTZ\t\t\tcomments
CI\t+0519-00402\tAfrica/Abidjan
DE\t+5230+01322\tEurope/Berlin\tmost of Germany
GB\t+513030-0000731\tEurope/London
IS\t+6409-02151\tAtlantic/Reykjavik
US\t+404251-0740023\tAmerica/New_York\tEastern (most areas)
"""
ZONE1970_TAB = """\
#codes\tcoordinates\tTZ\tcomments
CI,BF,GH,IS\t+0519-00402\tAfrica/Abidjan
DE,DK,NO,SE,SJ\t+5230+01322\tEurope/Berlin\tmost of Germany
GB,GG,IM,JE\t+513030-0000731\tEurope/London
US\t+404251-0740023\tAmerica/New_York\tEastern (most areas)
"""
TZDATA_ZI = """\
# version test
L America/New_York US/Eastern
L US/Eastern EST5EDT-ALIAS
L Africa/Abidjan Iceland
L Europe/London GB
L Etc/UTC UTC
"""


def tz_dir(tmp: Path, *, zi: bool = True, zone1970: bool = True) -> Path:
    """A tz database directory with just the tables (no TZif files: none is needed)."""
    d = tmp / "zoneinfo"
    d.mkdir(exist_ok=True)
    (d / "zone.tab").write_text(ZONE_TAB)
    if zone1970:
        (d / "zone1970.tab").write_text(ZONE1970_TAB)
    if zi:
        (d / "tzdata.zi").write_text(TZDATA_ZI)
    return d


# ---- the time zone's country ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "country"),
    [
        ("Europe/Berlin", "DE"),
        ("America/New_York", "US"),
        ("Africa/Abidjan", "CI"),
        ("UTC", None),
        ("Etc/UTC", None),
        ("Etc/GMT-1", None),
        ("GMT", None),
        ("Nowhere/Atlantis", None),
        ("", None),
    ],
)
def test_a_time_zone_names_its_country_and_utc_names_none(
    tmp_path: Path, zone: str, country: str | None
) -> None:
    assert country_of_zone(zone, tz_dir(tmp_path) / "zone.tab") == country


def test_a_missing_or_unreadable_zone_tab_names_no_country(tmp_path: Path) -> None:
    assert country_of_zone("Europe/Berlin", tmp_path / "no-such" / "zone.tab") is None
    assert country_of_zone("Europe/Berlin", None) is None
    (tmp_path / "binary.tab").write_bytes(b"\xff\xfe\x00garbage")
    assert country_of_zone("Europe/Berlin", tmp_path / "binary.tab") is None


def test_links_are_followed_unless_the_zone_spans_several_countries(tmp_path: Path) -> None:
    tab = tz_dir(tmp_path) / "zone.tab"
    assert country_of_zone("US/Eastern", tab) == "US"
    assert country_of_zone("EST5EDT-ALIAS", tab) == "US"  # a link to a link
    # Iceland links to Africa/Abidjan, which zone1970.tab shares among four countries: claim none
    assert country_of_zone("Iceland", tab) is None
    assert country_of_zone("GB", tab) is None
    assert country_of_zone("UTC", tab) is None


def test_without_tzdata_zi_a_link_is_unknown(tmp_path: Path) -> None:
    assert country_of_zone("US/Eastern", tz_dir(tmp_path, zi=False) / "zone.tab") is None


def test_zone1970_tab_alone_gives_the_principal_country(tmp_path: Path) -> None:
    tab = tz_dir(tmp_path) / "zone1970.tab"
    assert country_of_zone("Europe/Berlin", tab) == "DE"
    assert country_of_zone("Africa/Abidjan", tab) == "CI"


def test_the_tz_variable_is_read_in_its_usual_forms(tmp_path: Path) -> None:
    assert local_zone_name({"TZ": "Europe/Berlin"}) == "Europe/Berlin"
    assert local_zone_name({"TZ": ":America/New_York"}) == "America/New_York"
    assert local_zone_name({"TZ": "UTC"}) == "UTC"
    tzfile = tmp_path / "usr" / "share" / "zoneinfo" / "posix" / "Asia" / "Tokyo"
    tzfile.parent.mkdir(parents=True)
    tzfile.write_bytes(b"TZif")
    assert local_zone_name({"TZ": str(tzfile)}) == "Asia/Tokyo"
    link = tmp_path / "localtime"
    link.symlink_to(tzfile)
    assert local_zone_name({"TZ": f":{link}"}) == "Asia/Tokyo"


def test_zone_tab_is_found_where_zoneinfo_looks(tmp_path: Path) -> None:
    d = tz_dir(tmp_path)
    env = {"PYTHONTZPATH": f"{tmp_path / 'empty'}:{d}"}
    assert zone_tab_paths(env)[:2] == [tmp_path / "empty" / "zone.tab", d / "zone.tab"]
    assert find_zone_tab(env) == d / "zone.tab"


# ---- the assumed place ---------------------------------------------------------------------------
def test_assumed_place_is_the_time_zones_country_else_the_world_average(tmp_path: Path) -> None:
    settings = helpers.settings(tmp_path).model_copy(update={"location": None})
    catalog = build_catalog(settings)
    tab = tz_dir(tmp_path) / "zone.tab"
    de = location.assumed_place(settings, catalog, tz_name="Europe/Berlin", zone_tab=tab)
    assert (de.zone.id, de.basis, de.region) == ("DE", "timezone", None)
    assert de.zone.static_g_per_kwh is not None and de.pue_source.startswith("assumed")
    assert de.warning is not None and "Europe/Berlin" in de.warning and "(DE)" in de.warning
    assert all(hint in de.warning for hint in ("--region", "--zone", "`location:`"))
    assert de.to_dict()["basis"] == "timezone" and de.to_dict()["how"] == "time zone Europe/Berlin"
    for tz in ("UTC", "Nowhere/Atlantis", ""):
        world = location.assumed_place(settings, catalog, tz_name=tz, zone_tab=tab)
        assert (world.zone.id, world.basis) == ("WORLD", "world-average")
        assert world.zone.static_g_per_kwh is not None
        assert world.warning is not None and "world average" in world.warning and "--zone" in world.warning
    # no zone.tab: the world average, not a crash
    lost = location.assumed_place(settings, catalog, tz_name="Europe/Berlin", zone_tab=tmp_path / "no.tab")
    assert lost.basis == "world-average" and lost.warning is not None


def test_tracker_without_a_place_charges_the_world_average(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    settings = helpers.settings(tmp_path, attribution="machine").model_copy(update={"location": None})
    tracker = Tracker(
        settings, pid=os.getpid(), sources=[ConstantSource(Component.CPU, 5.0)], write_outputs=False
    )
    tracker.start()
    time.sleep(0.05)
    report = tracker.stop(0)
    assert report.energy_kwh > 0 and report.kg_co2e is not None and report.kg_co2e > 0
    assert report.zone == "WORLD" and report.location is not None
    assert report.location["basis"] == "world-average"
    assert report.mean_g_per_kwh is not None
    assert report.kg_co2e == pytest.approx(report.energy_kwh * report.mean_g_per_kwh / 1000, rel=1e-9)
    assert any(w.startswith("no location given") and "world average" in w for w in report.warnings)


def test_python_api_without_a_place_uses_the_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    monkeypatch.setenv("PYTHONTZPATH", str(tz_dir(tmp_path)))
    settings = helpers.settings(tmp_path).model_copy(update={"location": None})
    with carbonshift.track(settings=settings, write_outputs=False) as run:
        t = time.process_time()
        while time.process_time() - t < 0.1:
            pass
    report = run.report
    assert report is not None and report.kg_co2e is not None and report.kg_co2e > 0
    assert report.zone == "US" and report.location is not None and report.location["basis"] == "timezone"


# ---- through the command line --------------------------------------------------------------------
def config_without_location(tmp: Path) -> Path:
    cfg = config_file(tmp)
    cfg.write_text(cfg.read_text().replace(f"location: {ZONE}\n", ""))
    return cfg


def track_here(tmp: Path, cfg: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--config", str(cfg), "track", "--report", str(tmp / "r.json"), *options, "--",
        PY, "-c", "import time; time.sleep(0.2)", env=env, tmp=tmp,
    )  # fmt: skip


def test_track_with_no_location_charges_the_time_zones_country(tmp_path: Path) -> None:
    env = {"TZ": "Europe/Berlin", "PYTHONTZPATH": str(tz_dir(tmp_path))}
    result = track_here(tmp_path, config_without_location(tmp_path), env)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["energy_kwh"] > 0 and report["kg_co2e"] is not None and report["kg_co2e"] > 0
    assert report["zone"] == "DE" and report["location"]["basis"] == "timezone"
    assert report["location"]["country"] == "DE"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: no location given")]
    assert len(warnings) == 1 and "Europe/Berlin" in warnings[0] and "--region" in warnings[0]
    assert "(DE, static)" in result.stderr.splitlines()[-1]


def test_track_with_no_location_and_utc_charges_the_world_average(tmp_path: Path) -> None:
    env = {"TZ": "UTC", "PYTHONTZPATH": str(tz_dir(tmp_path))}
    result = track_here(tmp_path, config_without_location(tmp_path), env)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kg_co2e"] is not None and report["kg_co2e"] > 0
    assert report["zone"] == "WORLD" and report["location"]["basis"] == "world-average"
    assert any(
        line.startswith("warning: no location given") and "world average" in line and "`location:`" in line
        for line in result.stderr.splitlines()
    )
    assert report["warnings"] and any("world average" in w for w in report["warnings"])


def test_given_and_config_places_say_so_and_warn_nothing(tmp_path: Path) -> None:
    env = {"TZ": "Europe/Berlin", "PYTHONTZPATH": str(tz_dir(tmp_path))}
    given = track_here(tmp_path, config_without_location(tmp_path), env, "--zone", ZONE)
    assert given.returncode == 0, given.stderr
    assert json.loads((tmp_path / "r.json").read_text())["location"]["basis"] == "given"
    configured = track_here(tmp_path, config_file(tmp_path), env)
    assert configured.returncode == 0, configured.stderr
    assert json.loads((tmp_path / "r.json").read_text())["location"]["basis"] == "config"
    assert "no location given" not in given.stderr + configured.stderr


def test_a_config_location_that_is_no_place_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"location: {ZONE}\n", "location: nowhere-atlantis-9\n"))
    marker = tmp_path / "ran"
    result = run_cli(
        "--config", str(cfg), "track", "--output-dir", str(tmp_path / "out"), "--",
        PY, "-c", f"open({str(marker)!r}, 'w')", tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: location: ") and "nowhere-atlantis-9" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
