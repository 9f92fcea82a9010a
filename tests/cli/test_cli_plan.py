import json
from datetime import UTC, datetime
from pathlib import Path

from .helpers import REPO, run_cli, run_json, run_python

NOW = "2026-11-24T05:00Z"
CONFIG = str(REPO / "examples" / "config" / "carbonshift.yaml")


def write_spec(tmp_path: Path, text: str, name: str = "job.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_demo_spec_offline_gives_a_region_choice_and_says_there_is_no_time_preference(tmp_path: Path) -> None:
    result = run_cli("plan", "examples/resnet-finetune.yaml", "--now", NOW, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no time preference: only flat static values" in out
    assert "baseline: aws:us-east-1" in out and "km by car" in out
    first_row = out.splitlines()[
        out.splitlines().index(next(line for line in out.splitlines() if line.startswith("--"))) + 1
    ]
    # the cleanest region that offers 8x A100 (planner and launcher share the instance catalog)
    assert first_row.split()[1] == "gcp:us-west1"


def test_json_has_the_stable_keys_and_options_sorted_by_emissions(tmp_path: Path) -> None:
    data = run_json("plan", "examples/resnet-finetune.yaml", "--now", NOW, "--format", "json", tmp=tmp_path)
    assert {"job", "signal", "energy_kwh", "baseline", "options"} <= set(data)
    assert {"provider", "region", "start", "end", "mean_g_per_kwh", "kg_co2e"} <= set(data["baseline"])
    option_keys = {
        "provider",
        "region",
        "zone",
        "start",
        "end",
        "mean_g_per_kwh",
        "kg_co2e",
        "savings_pct",
        "sources",
        "static_fallback",
    }
    assert all(option_keys <= set(o) for o in data["options"])
    kgs = [o["kg_co2e"] for o in data["options"]]
    assert kgs == sorted(kgs) and len(kgs) >= 3
    # only regions that offer an 8x A100 instance are proposed
    from carbonshift.catalog.instances import offers
    from carbonshift.config.jobspec import Hardware

    hardware = Hardware(gpu="A100", gpus=8, vcpus=96, memory_gb=1152)
    assert all(offers(o["provider"], o["region"], hardware) for o in data["options"])
    assert data["baseline"]["region"] == "us-east-1" and data["baseline"]["start"] == "2026-11-24T05:00:00Z"
    best = data["options"][0]
    # savings are against the baseline run: (baseline - option) / baseline
    expected = 100 * (data["baseline"]["kg_co2e"] - best["kg_co2e"]) / data["baseline"]["kg_co2e"]
    assert abs(best["savings_pct"] - expected) < 0.01
    assert best["static_fallback"] is True and best["sources"][0]["kind"] == "static"


def test_time_shifting_with_a_users_forecast_file_finds_the_exact_dip(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "name: lab\ncommand: [train]\nduration: 3h\nhardware: {vcpus: 8, memory_gb: 32}\n"
        "window: {earliest: 2026-11-24T06:00Z, deadline: 2026-11-24T23:00Z}\n"
        "placement: {providers: [local]}\n",
    )
    data = run_json("--config", CONFIG, "plan", spec, "--now", NOW, "--format", "json", tmp=tmp_path)
    (best,) = data["options"]
    # the scenario file is a solar day: 95.9 at 11:00, 90.0 at 12:00, 95.9 at 13:00 is the cheapest 3 h
    assert (best["region"], best["start"], best["end"]) == (
        "madrid-lab",
        "2026-11-24T11:00:00Z",
        "2026-11-24T14:00:00Z",
    )
    assert abs(best["mean_g_per_kwh"] - (95.9 + 90.0 + 95.9) / 3) < 0.01
    assert best["savings_pct"] > 50 and best["static_fallback"] is False
    assert data["no_time_preference"] is False


def test_live_forecast_moves_the_start(tmp_path: Path, fake_electricitymaps) -> None:  # type: ignore[no-untyped-def]
    fake_electricitymaps.now = datetime(2026, 11, 24, 5, tzinfo=UTC)
    # cheap between 14:00 and 16:00 UTC, dear otherwise
    fake_electricitymaps.value = lambda zone, t: 80.0 if 14 <= (t // 3600) % 24 < 16 else 400.0
    spec = write_spec(
        tmp_path,
        "name: shift\ncommand: [run]\nduration: 2h\nwindow: {earliest: 2026-11-24T06:00Z, deadline: 2026-11-25T04:00Z}\n"
        "placement: {regions: [gcp:europe-west3]}\n",
    )
    env = fake_electricitymaps.env() | {"CARBONSHIFT_UKCI_ENABLED": "false"}
    data = run_json("plan", spec, "--now", NOW, "--format", "json", env=env, tmp=tmp_path)
    best = data["options"][0]
    assert best["start"] == "2026-11-24T14:00:00Z" and best["mean_g_per_kwh"] == 80.0
    assert {s["source"] for s in best["sources"]} == {"electricitymaps"}
    assert best["savings_pct"] == 80.0  # against starting at 06:00 at 400 g/kWh in the same region


def test_batch_prints_one_json_document_per_spec(tmp_path: Path) -> None:
    result = run_cli("plan", "examples", "--now", NOW, "--top", "2", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["job"] for d in docs] == [
        "train-llm",  # choose-hardware.yaml
        "cloud-train",
        "eu-nightly-etl",
        "nightly-retrain",
        "resnet-finetune",
        "same-grid",
    ]
    assert all(len(d["options"]) <= 2 for d in docs)


def test_a_batchs_json_lines_read_as_each_specs_own_json(tmp_path: Path) -> None:
    """`plan DIR` writes compact lines (pydantic_core) and `plan FILE --format json` indented text (the
    standard library): a float may be spelled differently, but each line must read back as the spec's
    own document, key for key and in the same order. Offline, so no live source fails in one run and
    not the other (their notices would differ)."""
    offline = {"CARBONSHIFT_UKCI_ENABLED": "false"}
    result = run_cli("plan", "examples", "--now", NOW, "--top", "2", env=offline, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    files = sorted(p for p in (REPO / "examples").glob("*.yaml"))
    assert len(lines) == len(files)
    for path, line in zip(files, lines, strict=True):
        one = run_cli(
            "plan", str(path), "--now", NOW, "--top", "2", "--format", "json", env=offline, tmp=tmp_path
        )
        assert one.returncode == 0, one.stderr
        assert json.loads(line, object_pairs_hook=list) == json.loads(one.stdout, object_pairs_hook=list), (
            path
        )


def test_bad_specs_are_rejected_naming_the_field_and_nothing_is_planned(tmp_path: Path) -> None:
    good = write_spec(tmp_path, "name: ok\ncommand: [x]\nduration: 1h\n", "a.yaml")
    cases = {
        "unknown key": ("name: a\ncommand: [x]\nduration: 1h\ncolour: red\n", "colour"),
        "wrong type": ("name: a\ncommand: [x]\nduration: 1h\ninterruptible: maybe\n", "interruptible"),
        "deadline": (
            "name: a\ncommand: [x]\nduration: 4h\nwindow: {earliest: 2026-11-24T06:00Z, deadline: 2026-11-24T08:00Z}\n",
            "window.deadline",
        ),
        "gpu": ("name: a\ncommand: [x]\nduration: 1h\nhardware: {gpu: Z9000, gpus: 1}\n", "hardware.gpu"),
    }
    for label, (text, field) in cases.items():
        bad = write_spec(tmp_path, text, "b.yaml")
        result = run_cli("plan", good, bad, "--now", NOW, tmp=tmp_path)
        assert result.returncode == 2, label
        assert field in result.stderr and "b.yaml" in result.stderr, (label, result.stderr)
        assert result.stdout == "", label  # a bad batch plans nothing
        assert "Traceback" not in result.stderr


def test_placement_problems_name_the_field(tmp_path: Path) -> None:
    cases = [
        ("placement: {regions: [aws:eu-west-9]}\n", "placement.regions"),
        (
            "placement: {countries: [EU], providers: [aws], exclude: []}\nbaseline: gcp:us-centrall\n",
            "baseline",
        ),
        ("placement: {countries: [AQ]}\n", "placement: no candidate region is left"),
        ("placement: {providers: [local]}\n", "placement.providers"),
    ]
    for extra, message in cases:
        spec = write_spec(tmp_path, "name: a\ncommand: [x]\nduration: 1h\n" + extra)
        result = run_cli("plan", spec, "--now", NOW, tmp=tmp_path)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr, (extra, result.stderr)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "plan.png"
    spec = write_spec(tmp_path, "name: p\ncommand: [x]\nduration: 2h\nplacement: {providers: [local]}\n")
    result = run_cli("--config", CONFIG, "plan", spec, "--now", NOW, "--plot", str(out), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schema_is_a_json_schema_of_the_spec(tmp_path: Path) -> None:
    schema = run_json("schema", tmp=tmp_path)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"name", "command", "duration", "window", "placement", "baseline"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "command", "duration"}


def test_a_recurring_spec_is_planned_for_its_next_occurrence_across_dst(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "name: nightly\ncommand: [x]\nduration: 1h30m\nplacement: {regions: [gcp:europe-west3]}\n"
        "schedule: {cron: '0 22 * * *', timezone: Europe/Berlin, flex: 8h}\n",
    )
    winter = run_json("plan", spec, "--now", "2026-11-24T12:00Z", "--format", "json", tmp=tmp_path)
    # 22:00 in Berlin is 21:00Z in winter; the run may start 8 h late and must then finish
    assert winter["window"] == {"earliest": "2026-11-24T21:00:00Z", "deadline": "2026-11-25T06:30:00Z"}
    summer = run_json("plan", spec, "--now", "2026-03-29T12:00Z", "--format", "json", tmp=tmp_path)
    # the night DST began (2026-03-29), 22:00 in Berlin is 20:00Z
    assert summer["window"]["earliest"] == "2026-03-29T20:00:00Z"


GC_PROBE = """
import gc, sys
import carbonshift.cli.app as app
import carbonshift.cli.plan as plan_cli

planning = plan_cli._plan_files
seen = []

def observed(*args, **kwargs):  # the command's own work, observed: what the collector does meanwhile
    gc.set_threshold(1, 1, 1)  # were it on, every allocation would start a collection
    gc.callbacks.append(lambda phase, info: seen.append(info["generation"]) if phase == "start" else None)
    try:
        return planning(*args, **kwargs)
    finally:
        gc.callbacks.clear()
        print(f"collections while planning: {len(seen)}", file=sys.stderr)

plan_cli._plan_files = observed
sys.argv = ["carbonshift", "plan", "examples/resnet-finetune.yaml", "--now", "2026-11-24T05:00Z"]
try:
    app.main()
finally:
    print(f"left frozen: {gc.get_freeze_count() > 10_000}", file=sys.stderr)
"""


def test_one_spec_is_planned_with_the_collector_paused(tmp_path: Path) -> None:
    """A cold `carbonshift plan` is start-up's ~50,000 tracked objects and a plan's few: a full
    collection that fell during the plan (as allocation counts happened to fall) walked them all,
    ~20 ms of a command that has 500. The collector is paused while a command plans, one spec too;
    and the objects are left frozen when the command ends, out of the interpreter's last collection
    (another ~17 ms)."""
    done = run_python(["-c", GC_PROBE], env={"CARBONSHIFT_UKCI_ENABLED": "false"}, tmp=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gcp:us-west1" in done.stdout  # it planned
    assert "collections while planning: 0" in done.stderr
    assert "left frozen: True" in done.stderr
