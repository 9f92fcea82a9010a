"""`carbonshift regions`: JSON for scripts, an aligned table for people, clear errors for bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from carbonshift.catalog import EU_COUNTRIES
from carbonshift.cli import context
from carbonshift.cli import regions as regions_cli

REQUIRED = {"provider", "region", "zone", "country", "g_per_kwh", "source", "year", "location", "lat", "lon"}
REQUIRED |= {"watttime_region", "pue"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CARBONSHIFT_"):
            monkeypatch.delenv(key)
    context.set_config_path(None)


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keeps `regions` a subcommand, as in the real app
        pass

    regions_cli.register(app)
    return app


def run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["regions", *args])


def rows(app: typer.Typer, *args: str) -> list[dict[str, Any]]:
    result = run(app, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def test_json_lists_every_region_with_the_documented_fields(app: typer.Typer) -> None:
    data = rows(app)
    assert len(data) >= 130
    for row in data:
        assert set(row) >= REQUIRED, row
        assert isinstance(row["g_per_kwh"], float) and isinstance(row["year"], int)
    assert {r["provider"] for r in data} == {"aws", "azure", "gcp"}


def test_filters_by_provider_and_country(app: typer.Typer) -> None:
    data = rows(app, "--provider", "gcp", "--country", "fi")
    assert [(r["region"], r["g_per_kwh"], r["source"], r["year"], r["basis"]) for r in data] == [
        ("europe-north1", 72.0, "CodeCarbon nordic_emissions (ENTSO-E)", 2025, "lifecycle")
    ]
    assert (data[0]["provider_reported_g_per_kwh"], data[0]["provider_reported_source"]) == (
        39.32,
        "Google region-carbon-info 2024",
    )
    assert all(r["provider"] == "aws" for r in rows(app, "--provider", "AWS"))


def test_country_eu_means_the_27_members(app: typer.Typer) -> None:
    data = rows(app, "--country", "EU")
    assert len(data) >= 25
    assert all(r["country"] in EU_COUNTRIES for r in data)


def test_a_known_country_without_regions_gives_an_empty_list(app: typer.Typer) -> None:
    assert rows(app, "--country", "IS") == []
    result = run(app, "--country", "IS")
    assert result.exit_code == 0 and "no regions match" in result.stderr


def test_sort_by_intensity_is_cleanest_first(app: typer.Typer) -> None:
    data = rows(app, "--sort", "intensity")
    values = [r["g_per_kwh"] for r in data]
    assert values == sorted(values)
    assert data[0]["g_per_kwh"] < 10  # some hydro/nuclear-powered region leads
    by_region = rows(app)
    assert [(r["provider"], r["region"]) for r in by_region] == sorted(
        (r["provider"], r["region"]) for r in data
    )


def test_table_has_units_and_aligned_columns(app: typer.Typer) -> None:
    result = run(app, "--provider", "aws", "--sort", "intensity")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header, rule, body, footer = lines[0], lines[1], lines[2:-1], lines[-1]
    assert "gCO2e/kWh" in header and "PUE" in header and "source" in header
    assert set(rule) <= {"-", " "}
    # the intensity column is right-aligned: every value ends where its header ends
    end = header.index("gCO2e/kWh") + len("gCO2e/kWh")
    assert all(line[end - 1].isdigit() and line[end] == " " for line in body)
    assert body[0].split()[1] == "ca-central-1"  # the cleanest AWS region (Québec hydro) leads
    assert footer.startswith(f"{len(body)} regions")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--provider", "ibm"), "--provider 'ibm' is not one of: aws, azure, gcp"),
        (("--country", "XX"), "--country 'XX' is not an ISO 3166-1 alpha-2"),
        (("--country", "Germany"), "--country 'Germany'"),
    ],
)
def test_bad_options_exit_2_with_a_message_naming_the_option(
    app: typer.Typer, args: tuple[str, str], needle: str
) -> None:
    result = run(app, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert result.stdout == ""


def test_country_error_lists_what_is_allowed(app: typer.Typer) -> None:
    result = run(app, "--country", "XX")
    assert "DE" in result.stderr and "US" in result.stderr and "EU" in result.stderr


def test_bad_sort_is_a_usage_error(app: typer.Typer) -> None:
    result = run(app, "--sort", "cheapest")
    assert result.exit_code == 2 and "--sort" in result.output


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("carbonshift")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, check=False, env={**clean, **(env or {})}
    )


def test_the_installed_command_lists_user_locations_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "locations:\n  - provider: local\n    region: madrid-lab\n    zone: ES\n    location: Madrid lab\n"
    )
    result = _cli("--config", str(cfg), "regions", "--provider", "local", "--format", "json")
    assert result.returncode == 0, result.stderr
    (lab,) = json.loads(result.stdout)
    assert (lab["region"], lab["zone"], lab["country"], lab["location"]) == (
        "madrid-lab",
        "ES",
        "ES",
        "Madrid lab",
    )
    assert lab["g_per_kwh"] > 0 and lab["source"].startswith("zone ES: ")


def test_the_installed_command_reports_bad_input_with_exit_2() -> None:
    result = _cli("regions", "--provider", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --provider 'nope' is not one of: aws, azure, gcp"
