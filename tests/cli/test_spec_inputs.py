"""Spec inputs a user writes by hand: a relative window (`now`, `+6h`) made absolute once, from the
planning or submission time; a spec file over the API's 1 MB limit refused by the CLI too."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonshift.config.jobspec import JobSpecError, parse_jobspec
from tests.cli.helpers import run_cli, run_json

NOW = "2026-11-24T05:00Z"


def test_plan_reads_a_relative_window_from_its_now(tmp_path: Path) -> None:
    spec = tmp_path / "rel.yaml"
    spec.write_text("name: rel\ncommand: [x]\nduration: 1h\nwindow: {earliest: +1h, deadline: now+6h}\n")
    plan = run_json("plan", str(spec), "--now", NOW, "--format", "json", tmp=tmp_path)
    assert plan["window"]["earliest"] == "2026-11-24T06:00:00Z"
    assert plan["window"]["deadline"] == "2026-11-24T11:00:00Z"


def test_now_is_the_given_time_and_a_bad_relative_time_names_the_field() -> None:
    at = datetime(2026, 11, 24, 5, tzinfo=UTC)
    spec = parse_jobspec(
        {"name": "n", "command": ["x"], "duration": "1h", "window": {"earliest": "now"}}, now=at
    )
    assert spec.window.earliest == at
    with pytest.raises(JobSpecError, match=r"window.deadline: not a time: '\+soon'"):
        parse_jobspec(
            {"name": "n", "command": ["x"], "duration": "1h", "window": {"deadline": "+soon"}}, now=at
        )
    with pytest.raises(JobSpecError, match=r"window\.earliest.*relative"):
        parse_jobspec({"name": "n", "command": ["x"], "duration": "1h", "window": {"earliest": "now"}})


def test_a_spec_over_one_megabyte_is_refused_naming_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\ncommand: [x]\nduration: 1h\n# " + "x" * 1_100_000 + "\n")
    result = run_cli("plan", str(spec), "--now", NOW, tmp=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert str(spec) in result.stderr and "1,048,576 bytes" in result.stderr
