"""No region vanishes without a word: every plan lists the regions it left out with the rule that left
each out (table: one summary line, `--explain` for all; JSON: `excluded`), a baseline that lacks the
hardware is flagged, and `providers instances --gpu` with no match names where the GPU is offered."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import run_cli, run_json

NOW = "2026-11-24T05:00Z"
NIGHTLY = "examples/nightly-retrain.yaml"  # allows 4 regions; two have no L4


def test_the_table_says_which_allowed_regions_lack_the_hardware(tmp_path: Path) -> None:
    result = run_cli("plan", NIGHTLY, "--now", NOW, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("left out:")]
    assert "hardware 2 (azure:swedencentral, gcp:europe-north1)" in line and "--explain" in line
    explained = run_cli("plan", NIGHTLY, "--now", NOW, "--explain", tmp=tmp_path).stdout.splitlines()
    assert "left out: gcp:europe-north1: hardware: no instance type with 1x L4, 8 vCPUs, 32 GB" in explained
    assert any(x.startswith("left out: aws:us-east-1: placement.regions:") for x in explained)


def test_json_lists_every_exclusion_with_its_rule(tmp_path: Path) -> None:
    plan = run_json("plan", NIGHTLY, "--now", NOW, "--format", "json", tmp=tmp_path)
    by_region = {e["region"]: e for e in plan["excluded"]}
    assert by_region["azure:swedencentral"]["rule"] == "hardware"
    assert "L4" in by_region["azure:swedencentral"]["reason"]
    shown = {o["provider"] + ":" + o["region"] for o in plan["options"]}
    assert not shown & set(by_region)  # a region is either planned or explained
    # regions outside the spec's own allow-list are counted, not listed one by one
    assert all(e["rule"] not in {"placement.regions", "placement.providers"} for e in plan["excluded"])
    counts = plan["excluded_counts"]
    assert counts["hardware"] == 2
    assert len(shown) + sum(counts.values()) == len(run_json("regions", "--format", "json", tmp=tmp_path))


def test_residency_and_an_unfit_baseline_are_explained(tmp_path: Path) -> None:
    spec = tmp_path / "de.yaml"
    spec.write_text(
        "name: de\ncommand: [x]\nduration: 1h\nhardware: {gpu: L4, gpus: 1}\n"
        "placement: {countries: [DE]}\nbaseline: azure:swedencentral\n"
    )
    plan = run_json("plan", str(spec), "--now", NOW, "--format", "json", tmp=tmp_path)
    by_region = {e["region"]: e for e in plan["excluded"]}
    assert by_region["aws:us-east-1"]["rule"] == "placement.countries"
    assert "data residency" in by_region["aws:us-east-1"]["reason"]
    (notice,) = [n for n in plan["notices"] if n.startswith("baseline")]
    assert "azure:swedencentral" in notice and "could not run" in notice


def test_a_batch_explains_each_plan(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    for name in ("a", "b"):
        (tmp_path / "specs" / f"{name}.yaml").write_text(
            Path(NIGHTLY).read_text().replace("nightly-retrain", name)
        )
    result = run_cli("plan", str(tmp_path / "specs"), "--now", NOW, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    for doc in map(json.loads, result.stdout.splitlines()):
        assert {"azure:swedencentral", "gcp:europe-north1"} <= {e["region"] for e in doc["excluded"]}


def test_instances_with_no_match_say_where_the_gpu_is(tmp_path: Path) -> None:
    result = run_cli(
        "providers",
        "instances",
        "--provider",
        "gcp",
        "--region",
        "europe-north1",
        "--gpu",
        "L4",
        tmp=tmp_path,
    )
    assert result.returncode == 0 and result.stdout == ""
    assert "no instance type with L4 from gcp in europe-north1" in result.stderr
    assert "gcp:europe-west4" in result.stderr
