"""Job spec validation: good specs load, bad ones are refused with the field named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonshift.config.jobspec import (
    JobSpec,
    JobSpecError,
    jobspec_json_schema,
    load_jobspec,
    loads_jobspec,
    parse_jobspec,
)
from carbonshift.errors import UserInputError

FULL = """
name: resnet-finetune
command: ["python", "train.py"]
duration: 4h
hardware:
  gpu: A100
  gpus: 8
  vcpus: 32
  memory_gb: 256
window:
  earliest: 2026-11-24T18:00Z
  deadline: 2026-11-25T08:00Z
interruptible: false
placement:
  providers: [aws, gcp, azure]
  regions: []
  exclude: []
  countries: [EU]
baseline: gcp:us-central1
"""

MINIMAL = {"name": "job-1", "command": "make all", "duration": "30m"}


def problems(text: str) -> dict[str, str]:
    with pytest.raises(JobSpecError) as info:
        loads_jobspec(text, source="spec.yaml")
    assert str(info.value).startswith("spec.yaml: ")
    return dict(info.value.problems)


def test_the_issue_example_loads() -> None:
    spec = loads_jobspec(FULL)
    assert spec.name == "resnet-finetune"
    assert spec.command == ["python", "train.py"]
    assert spec.duration == timedelta(hours=4)
    assert spec.hardware.gpu == "A100" and spec.hardware.gpus == 8
    assert spec.window.earliest == datetime(2026, 11, 24, 18, tzinfo=UTC)
    assert spec.window.deadline == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert spec.placement.countries == ["EU"]
    assert spec.baseline == "gcp:us-central1"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("4h", 14400), ("1h30m", 5400), ("PT4H", 14400), ("PT1H30M", 5400), ("2d", 172800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_jobspec({**MINIMAL, "duration": text}).duration_s == seconds


def test_defaults() -> None:
    spec = parse_jobspec(MINIMAL)
    assert spec.command == "make all"
    assert spec.window.earliest is None and spec.window.deadline is None
    assert spec.hardware.gpus == 0 and spec.hardware.vcpus == 4
    assert spec.interruptible is False and spec.min_chunk_s == 0  # contiguous jobs are never split
    assert parse_jobspec({**MINIMAL, "interruptible": True}).min_chunk_s == 1800
    assert parse_jobspec({**MINIMAL, "hardware": {"gpu": "l4"}}).hardware.gpus == 1


def test_json_is_accepted_and_dump_round_trips(tmp_path: Path) -> None:
    spec = loads_jobspec(FULL)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.model_dump(mode="json")))
    assert load_jobspec(path) == spec
    assert spec.model_dump(mode="json")["duration"] == "4h"


def test_unknown_key_names_the_field_and_suggests() -> None:
    found = problems("name: a\ncommand: x\nduration: 1h\ndurration: 2h\nhardware: {vcpu: 3}")
    assert "did you mean 'duration'" in found["durration"]
    assert found["hardware.vcpu"].startswith("unknown key (did you mean 'vcpus'?")


def test_wrong_types_name_the_field() -> None:
    found = problems(
        "name: a\ncommand: [python, 3]\nduration: 4\nhardware: {gpus: eight}\ninterruptible: maybe"
    )
    assert set(found) == {"command", "duration", "hardware.gpus", "interruptible"}
    assert "no unit" in found["duration"]
    assert "argument 1" in found["command"]


def test_deadline_before_earliest_plus_duration() -> None:
    found = problems(
        "name: a\ncommand: x\nduration: 4h\nwindow: {earliest: 2026-11-24T18:00Z, deadline: 2026-11-24T21:00Z}"
    )
    assert found == {
        "window.deadline": "must be at least earliest + duration (2026-11-24T18:00:00Z + 4h = "
        "2026-11-24T22:00:00Z), got 2026-11-24T21:00:00Z"
    }


def test_bad_name() -> None:
    for bad in ["Resnet", "has space", "x" * 64, "", "under_score"]:
        found = problems(f"name: '{bad}'\ncommand: x\nduration: 1h")
        assert "name" in found, bad


def test_unknown_gpu_lists_the_known_ones() -> None:
    found = problems("name: a\ncommand: x\nduration: 1h\nhardware: {gpu: B9000}")
    assert "unknown GPU model 'B9000'" in found["hardware.gpu"]
    for model in ("H100", "H200", "A100", "L4", "A10G", "T4", "V100", "L40S"):
        assert model in found["hardware.gpu"]


@pytest.mark.parametrize("name", ["nvidia tesla v100", "Tesla T4", "H100 SXM", "a100-sxm4", "L40S", "h200"])
def test_gpu_names_are_canonicalised(name: str) -> None:
    spec = parse_jobspec({**MINIMAL, "hardware": {"gpu": name}})
    assert spec.hardware.gpu in {"V100", "T4", "H100", "A100", "L40S", "H200"}


def test_naive_times_are_refused() -> None:
    found = problems("name: a\ncommand: x\nduration: 1h\nwindow: {earliest: '2026-11-24T18:00:00'}")
    assert "no timezone" in found["window.earliest"]
    # unquoted in YAML too: the loader does not turn it into a naive datetime
    found = problems("name: a\ncommand: x\nduration: 1h\nwindow: {earliest: 2026-11-24 18:00:00}")
    assert "no timezone" in found["window.earliest"]


def test_placement_values_are_checked_and_normalised() -> None:
    spec = parse_jobspec(
        {
            **MINIMAL,
            "placement": {"providers": ["AWS"], "regions": ["GCP:europe-west4"], "countries": ["de", "eu"]},
        }
    )
    assert spec.placement.providers == ["aws"]
    assert spec.placement.regions == ["gcp:europe-west4"]
    assert spec.placement.countries == ["DE", "EU"]
    found = problems(
        "name: a\ncommand: x\nduration: 1h\nplacement: {regions: [europe-west4], countries: [Germany]}"
    )
    assert "provider:region" in found["placement.regions[0]"]
    assert "country code" in found["placement.countries[0]"]


def test_empty_commands_are_refused() -> None:
    assert "command" in problems("name: a\ncommand: []\nduration: 1h")
    assert "command" in problems("name: a\ncommand: '  '\nduration: 1h")
    assert "duration" in problems("name: a\ncommand: x\nduration: 0s")


def test_schedule_is_accepted_and_checked() -> None:
    spec = parse_jobspec(
        {**MINIMAL, "schedule": {"cron": "0 22 * * mon-fri", "timezone": "Europe/Berlin", "flex": "8h"}}
    )
    assert spec.schedule is not None and spec.schedule.flex == timedelta(hours=8)
    found = problems(
        "name: a\ncommand: x\nduration: 1h\nschedule: {cron: '61 * * *', timezone: Mars/Olympus}"
    )
    assert "five fields" in found["schedule.cron"]
    assert "unknown time zone" in found["schedule.timezone"]
    assert (
        "hour field"
        in problems("name: a\ncommand: x\nduration: 1h\nschedule: {cron: '0 24 * * *'}")["schedule.cron"]
    )
    found = problems(
        "name: a\ncommand: x\nduration: 1h\nschedule: {cron: '0 1 * * *'}\nwindow: {earliest: 2026-11-24T18:00Z}"
    )
    assert "not used with schedule" in found["window"]


def test_times_with_offsets_across_a_dst_change_normalise_to_utc() -> None:
    # Europe/Berlin springs forward at 02:00 on 2026-03-29: 00:30+01:00 to 05:00+02:00 is 3.5 h, not 4.5 h
    spring = "name: a\ncommand: x\nduration: {d}\nwindow: {{earliest: 2026-03-29T00:30+01:00, deadline: 2026-03-29T05:00+02:00}}"
    spec = loads_jobspec(spring.format(d="3h30m"))
    assert spec.window.earliest == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    assert spec.window.deadline == datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    assert "window.deadline" in problems(spring.format(d="4h"))
    # and falls back at 03:00 on 2026-10-25: 01:30+02:00 to 02:30+01:00 is 2 h, though the clock says 1 h
    autumn = loads_jobspec(
        "name: a\ncommand: x\nduration: 2h\nwindow: {earliest: 2026-10-25T01:30+02:00, deadline: 2026-10-25T02:30+01:00}"
    )
    assert autumn.window.deadline - autumn.window.earliest == timedelta(hours=2)  # type: ignore[operator]


def test_resolve_window_uses_now_for_the_defaults() -> None:
    now = datetime(2026, 11, 24, 18, 3, 27, 500_000, tzinfo=UTC)
    spec = parse_jobspec(MINIMAL)
    earliest, deadline = spec.resolve_window(now)
    assert earliest == datetime(2026, 11, 24, 18, 3, 28, tzinfo=UTC)  # whole seconds, never before now
    assert deadline == datetime(2026, 11, 25, 18, 3, 27, tzinfo=UTC)
    # an earliest in the past becomes now; a deadline that cannot be met any more is an error
    past = loads_jobspec(
        "name: a\ncommand: x\nduration: 4h\nwindow: {earliest: 2026-11-24T12:00Z, deadline: 2026-11-24T20:00Z}"
    )
    with pytest.raises(UserInputError) as info:
        past.resolve_window(now)
    assert info.value.where == "window.deadline"
    assert "now + duration" in info.value.problem


def test_load_jobspec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: a\ncommand: x\nduration: 4h\nwindow: {deadline: 2026-11-24T20:00Z}\n")
    assert load_jobspec(path).duration_s == 14400
    with pytest.raises(JobSpecError) as info:
        load_jobspec(path, now=datetime(2026, 11, 24, 18, tzinfo=UTC))
    assert str(info.value).startswith(f"{path}: window.deadline: must be at least now + duration")
    with pytest.raises(UserInputError, match="cannot read"):
        load_jobspec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(JobSpecError, match="not valid YAML"):
        load_jobspec(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(JobSpecError, match="mapping"):
        load_jobspec(listed)


def test_json_schema_describes_the_spec() -> None:
    schema = jobspec_json_schema()
    assert schema["title"] == "carbonshift job spec"
    assert set(schema["required"]) == {"name", "command", "duration"}
    assert schema["additionalProperties"] is False
    assert schema["properties"]["duration"]["type"] == "string"
    assert schema["properties"]["name"]["pattern"] == "^[a-z0-9-]{1,63}$"
    assert "Schedule" in schema["$defs"]
    json.dumps(schema)  # serialisable as is


def test_the_model_is_immutable() -> None:
    spec = parse_jobspec(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]
    assert isinstance(spec, JobSpec)


def test_env_is_a_mapping_of_names_to_strings() -> None:
    spec = loads_jobspec(
        "name: a\ncommand: x\nduration: 1h\nenv: {MODEL_DIR: /data, _flag: '1', EMPTY: '', MSG: \"a 'b' $c\\nd\"}"
    )
    assert spec.env == {"MODEL_DIR": "/data", "_flag": "1", "EMPTY": "", "MSG": "a 'b' $c\nd"}
    assert parse_jobspec(MINIMAL).env == {}
    assert parse_jobspec(spec.model_dump(mode="json")) == spec  # stored and loaded again as is
    assert jobspec_json_schema()["properties"]["env"]["type"] == "object"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ("{1ABC: x}", "not a variable name"),
        ("{'A-B': x}", "not a variable name"),
        ("{'A B': x}", "not a variable name"),
        ("{'A=B': x}", "not a variable name"),
        ("{'': x}", "not a variable name"),
        ("{CARBONSHIFT_RUN_ID: x}", "CARBONSHIFT_"),
        ("{carbonshift_api_token: x}", "CARBONSHIFT_"),
        ("{DEBUG: 1}", "not a string"),
        ("{DEBUG: true}", "not a string"),
        ("{DEBUG: null}", "not a string"),
        ('{A: "x\\0y"}', "NUL"),
        ("[A=1]", "a mapping"),
        ("{A: '" + "x" * 9000 + "'}", "8192"),
    ],
)
def test_bad_env_is_refused_naming_the_field(env: str, says: str) -> None:
    found = problems(f"name: a\ncommand: x\nduration: 1h\nenv: {env}")
    assert list(found) == ["env"], found
    assert says in found["env"]


# ---- the YAML reader: libyaml when present, the pure-Python loader as the reference --------------

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize(
    "text",
    [
        FULL,
        *(p.read_text() for p in EXAMPLES),
        "a: 2026-11-24T18:00:00\nb: 2026-11-24\nc: 0x1F\nd: 1_000\ne: 0o17\nf: .inf\ng: ~\nh: yes\n",
        "n: " + "9" * 5000 + "\nm: -" + "7" * 70 + "\n",
        "x: &a [1, 2]\ny: *a\nz: !!str 3\nw: 'it''s'\nv: |\n  two\n  lines\n",
        # built by PyYAML's own constructor (config/plain_yaml.py refuses them): tags, merge keys,
        # a `=` key, collection keys, a recursive alias
        "a: !!binary aGk=\nb: !!set {x, y}\nc: !!omap [{k: 1}]\nd: !!float 1\ne: !!timestamp 2026-01-01\n",
        "base: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\n",
        "a: {=: 1}\n",
        "a: &r [1, *r]\n",
        "a: {1: one, 2.5: two, true: three, ~: four, 0x10: five}\nb: [.nan, -.inf, 1e3, null, yes, Off]\n",
        "a: [[[[1]]], {b: {c: [d]}}]\nkeys: &k key\n*k : 2\n",
    ],
)
def test_fast_yaml_reads_what_the_python_loader_reads(text: str) -> None:
    """The libyaml-backed loader (a batch reads 10,000 specs) has the same resolvers and constructors:
    no implicit timestamps, big integers as HugeNumber, everything else as PyYAML's SafeLoader; plain
    documents are built without PyYAML's generic constructor, other ones by it."""
    import yaml

    from carbonshift.config.jobspec import _FastNoTimestampLoader, _NoTimestampLoader

    fast = yaml.load(text, Loader=_FastNoTimestampLoader)
    slow = yaml.load(text, Loader=_NoTimestampLoader)
    assert repr(fast) == repr(slow)  # repr: HugeNumber has no ==, and .nan != .nan
    assert not any(isinstance(v, datetime) for v in fast.values() if not isinstance(slow, dict))


def test_a_yaml_alias_is_one_object_and_an_alias_bomb_stays_small() -> None:
    """An alias is the object already built (as PyYAML builds it), so nine aliases over eight levels
    are 72 references, not 9**8 copies; the document check then counts what it walks."""
    import yaml

    from carbonshift.config.jobspec import _FastNoTimestampLoader

    data = yaml.load("x: &a [1, {b: 2}]\ny: *a\n", Loader=_FastNoTimestampLoader)
    assert data["x"] is data["y"]
    names = "abcdefgh"
    bomb = "".join(
        f"{n}: &{n} [{','.join(['*' + names[i - 1]] * 9) if i else '1'}]\n" for i, n in enumerate(names)
    )
    assert list(problems(bomb)) == [""]  # more than MAX_NODES values in one document, named as before


@pytest.mark.parametrize("text", ["a: !custom 1\n", "? [a, b]\n: 1\n", "a: !!python/name:os.system\n"])
def test_yaml_both_loaders_refuse_is_refused_alike(text: str) -> None:
    import yaml

    from carbonshift.config.jobspec import _FastNoTimestampLoader, _NoTimestampLoader

    errors = []
    for loader in (_FastNoTimestampLoader, _NoTimestampLoader):
        with pytest.raises(yaml.YAMLError) as info:
            yaml.load(text, Loader=loader)
        errors.append((type(info.value), getattr(info.value, "problem", None)))
    assert errors[0] == errors[1]


def test_a_yaml_escape_libyaml_refuses_is_still_named_by_field() -> None:
    """libyaml refuses a lone surrogate escape outright; the pure-Python loader reads it, and the
    document check names the field, as before."""
    found = problems('name: a\ncommand: "echo \\ud800"\nduration: 1h\n')
    assert found == {"command": "not valid Unicode text (a lone surrogate such as \\ud800)"}
    # a lone surrogate in the text itself (a str from Python, not a file) cannot reach libyaml at all
    assert list(problems("name: a\ncommand: echo \ud800\nduration: 1h\n")) == [""]


@pytest.mark.parametrize("value", ["!!int nope", "!!float nope", "!!bool nope", "!!timestamp nope"])
def test_a_value_not_of_its_explicit_tag_is_invalid_yaml_not_a_crash(value: str) -> None:
    found = problems(f"name: a\ncommand: x\nduration: 1h\npower_watts: {value}\n")
    assert found == {
        "": "not valid YAML: a value tagged !!int, !!float, !!bool or !!timestamp is not of that type"
    }


def test_the_document_check_applies_however_a_spec_is_made() -> None:
    """parse_jobspec walks the document once and tells the model so; a spec made in Python (no such
    context) is still walked by the model itself."""
    from pydantic import ValidationError

    data = {**MINIMAL, "command": "echo \ud800"}
    with pytest.raises(JobSpecError) as info:
        parse_jobspec(data)
    assert dict(info.value.problems) == {
        "command": "not valid Unicode text (a lone surrogate such as \\ud800)"
    }
    with pytest.raises(ValidationError, match="lone surrogate"):
        JobSpec.model_validate(data)
    with pytest.raises(ValidationError, match="lone surrogate"):
        JobSpec(**data)


def _nested_env(levels: int) -> str:
    """A spec whose env nests `levels` mappings deep in block style (no brackets for the pre-check)."""
    lines, indent = ["name: a", "command: x", "duration: 1h", "env:"], "  "
    for i in range(levels):
        lines.append(f"{indent}k{i}:")
        indent += "  "
    return "\n".join([*lines, f"{indent}v"]) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        FULL,
        _nested_env(30),  # the deepest value at depth 32: allowed by the document check, refused later
        _nested_env(31),  # depth 33: the document check's own message
        "name: a\ncommand: x\nduration: 1h\npower_watts: " + "9" * 5000 + "\n",
        "name: a\ncommand: x\nduration: 1h\nenv: &e {A: b}\nlabels: *e\n",
        "name: a\ncommand: [x, '&']\nduration: 1h\nenv: {A: [" + ",".join(["1"] * 200_001) + "]}\n",
        "name: a\ncommand: x\nduration: 1h\n? " + "9" * 5000 + "\n: a huge number as a key\n",
    ],
)
def test_a_document_libyaml_read_is_checked_as_any_other(text: str) -> None:
    """The YAML reader skips the document check when building the document met nothing it looks for
    (config/plain_yaml.Walk); what it then gives is what the pure-Python loader and the full check give."""
    import yaml

    from carbonshift.config.jobspec import _NoTimestampLoader, parse_jobspec

    outcomes = []
    for read in (
        lambda: loads_jobspec(text, source="s"),
        lambda: parse_jobspec(yaml.load(text, Loader=_NoTimestampLoader), source="s"),
    ):
        try:
            outcomes.append(read().model_dump())
        except JobSpecError as exc:
            outcomes.append(exc.problems)
    assert outcomes[0] == outcomes[1]


def test_a_spec_file_reads_the_same_with_any_line_ends(tmp_path: Path) -> None:
    """Line ends are translated as a text file's universal newlines translate them (a block scalar
    keeps '\\n' whether the file was written with '\\n', '\\r\\n' or '\\r')."""
    text = "name: a\ncommand: |\n  echo one\n  echo two\nduration: 1h\n"
    specs = []
    for i, end in enumerate(("\n", "\r\n", "\r")):
        path = tmp_path / f"spec{i}.yaml"
        path.write_bytes(text.replace("\n", end).encode("utf-8"))
        specs.append(load_jobspec(path))
    assert specs[0].command == "echo one\necho two\n"
    assert specs[1] == specs[0] and specs[2] == specs[0]


@pytest.mark.parametrize(
    "text",
    [
        "name: a\ncommand: [run]\nduration: 1h\nhardware: {vcpus: 4}\n",  # no anchor: built as a tree
        "name: a\ncommand: &c [run]\nduration: 1h\nhardware: {vcpus: 4}\nlabels: {team: t}\n",  # an anchor
    ],
)
def test_reading_a_spec_leaves_no_garbage_cycle(text: str) -> None:
    """`plan DIR` pauses the collector while it reads 10,000 specs: a cycle left by each (the
    document builder's recursive closure held libyaml's parser) was all freed in one collection at
    the end, 0.3-0.7 s of the command's wall time. Reading a spec must leave nothing for it."""
    import gc

    from carbonshift.config.jobspec import loads_jobspec

    loads_jobspec(text, source="spec.yaml")  # anything created once (caches) is created here
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):
            loads_jobspec(text, source="spec.yaml")
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
