"""Where each number came from, as the README promises: the table's data column names the source and
a table value's year and marks stale values; plan JSON sources carry fetched_at; a bad baseline names
the bad value."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from carbonshift.cli.plan_view import source_label
from carbonshift.intensity.types import Kind
from carbonshift.planner.plan import SourceShare
from tests.cli.helpers import run_cli, run_json

NOW = "2026-11-24T05:00Z"


def test_the_table_names_source_and_year(tmp_path: Path) -> None:
    result = run_cli("plan", "examples/resnet-finetune.yaml", "--now", NOW, "--top", "3", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line[:2] in {"1 ", "2 ", "3 "}]
    assert len(rows) == 3
    assert all("static Green Algorithms 2020" in row for row in rows), rows


def test_json_sources_carry_when_they_were_fetched(tmp_path: Path) -> None:
    plan = run_json("plan", "examples/resnet-finetune.yaml", "--now", NOW, "--format", "json", tmp=tmp_path)
    for option in plan["options"]:
        for source in option["sources"]:
            assert source["fetched_at"].endswith("Z")
            assert source["stale"] is False
    assert plan["baseline"]["sources"][0]["fetched_at"].endswith("Z")


def test_a_stale_cached_value_is_marked() -> None:
    share = SourceShare(
        "electricitymaps",
        Kind.FORECAST,
        1.0,
        "stale cache (3 h old); live fetch failed: timeout",
        fetched_at=datetime(2026, 11, 24, 2, tzinfo=UTC),
    )
    assert share.stale and source_label(share) == "forecast electricitymaps STALE"
    assert share.to_dict()["fetched_at"] == "2026-11-24T02:00:00Z"


def test_an_unknown_baseline_names_the_bad_value(tmp_path: Path) -> None:
    spec = tmp_path / "b.yaml"
    spec.write_text("name: b\ncommand: [x]\nduration: 1h\nbaseline: aws:us-east-9\n")
    result = run_cli("plan", str(spec), "--now", NOW, tmp=tmp_path)
    assert result.returncode == 2
    assert f"{spec}: baseline: 'aws:us-east-9'" in result.stderr and "us-east-1" in result.stderr
