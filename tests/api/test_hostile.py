"""Hostile input through the real HTTP server (SQLite and PostgreSQL): every answer is JSON, nothing
is a 5xx, nothing is stored that cannot be served back, and the job list is still served after each.

The named cases are the ones issue 15 found (a lone surrogate, deep nesting, huge integers, far-future
times, huge durations, cron steps APScheduler refuses); the fuzz test draws job specs from the spec's
fields, mixing valid values with hostile ones. Specs that may be stored always run on `local`, in a
window days away, with harmless commands (`echo` as an argv list), so nothing drawn is ever launched.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from carbonshift.api.app import encode_json
from carbonshift.config.jobspec import JobSpec, JobSpecError, parse_jobspec
from tests.api.helpers import ApiServer, local_spec

JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
# the counts the fuzz test reached, for docs/benchmarks.md ("Reliability")
TRIED: dict[str, int] = {"requests": 0, "5xx": 0}


def _later(name: str = "hostile", **changes: Any) -> dict[str, Any]:
    """A valid local spec days away, with `changes` applied."""
    return {**local_spec(name, ["true"], start_in=timedelta(days=2)), **changes}


def _raw(spec: dict[str, Any]) -> bytes:
    return json.dumps(spec).encode()


def _with_tail(spec: dict[str, Any], tail: bytes) -> bytes:
    """The spec's JSON with `tail` spliced in as one more key (text json.dumps cannot write)."""
    return _raw(spec)[:-1] + b", " + tail + b"}"


HOSTILE: list[tuple[str, bytes, dict[str, str], list[str | int]]] = [
    ("lone surrogate in command", _raw(_later(command="echo \ud800")), JSON, ["body", "command"]),
    ("lone surrogate in argv", _raw(_later(command=["echo", "\udfff"])), JSON, ["body", "command", 1]),
    ("lone surrogate in env", _raw(_later(env={"A": "\ud800x"})), JSON, ["body", "env", "A"]),
    (
        "lone surrogate in YAML",
        b'name: a\ncommand: "echo \\ud800"\nduration: 1h\n',
        YAML,
        ["body", "command"],
    ),
    ("deep JSON", b"[" * 50_000 + b"]" * 50_000, JSON, ["body"]),
    ("deep JSON object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, JSON, ["body"]),
    ("deep YAML", b"[" * 5_000 + b"]" * 5_000, YAML, ["body"]),
    (
        "YAML alias bomb",
        b"".join(
            b"%s: &%s [%s]\n" % (n, n, b",".join([b"*" + p] * 9) if p else b"1")
            for n, p in zip(
                [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"],
                [b"", b"a", b"b", b"c", b"d", b"e", b"f", b"g"],
                strict=True,
            )
        ),
        YAML,
        ["body"],
    ),
    (
        "huge integer",
        _with_tail(_later(), b'"hardware": {"gpus": ' + b"9" * 5000 + b"}"),
        JSON,
        ["body", "hardware", "gpus"],
    ),
    (
        "huge integer in YAML",
        b"name: a\ncommand: x\nduration: 1h\npower_watts: " + b"9" * 5000,
        YAML,
        ["body", "power_watts"],
    ),
    (
        "far-future window",
        _raw(_later(window={"earliest": "9999-12-31T23:00Z"})),
        JSON,
        ["body", "window", "earliest"],
    ),
    (
        "year-1 offset",
        _raw(_later(window={"earliest": "0001-01-01T00:00+01:00"})),
        JSON,
        ["body", "window", "earliest"],
    ),
    ("huge duration", _raw(_later(duration="99999999999d")), JSON, ["body", "duration"]),
    ("huge ISO duration", _raw(_later(duration="P" + "9" * 400 + "D")), JSON, ["body", "duration"]),
    (
        "huge flex",
        _raw({**_later(), "window": {}, "schedule": {"cron": "0 3 * * *", "flex": "999999999d"}}),
        JSON,
        ["body", "schedule", "flex"],
    ),
    (
        "cron step APScheduler refuses",
        _raw({**_later(), "window": {}, "schedule": {"cron": "*/100 * * * *"}}),
        JSON,
        ["body", "schedule", "cron"],
    ),
    (
        "cron that never fires",
        _raw({**_later(), "window": {}, "schedule": {"cron": "0 0 31 2 *"}}),
        JSON,
        ["body", "schedule", "cron"],
    ),
    ("long rejected value", _raw(_later(name="x" * 100_000)), JSON, ["body", "name"]),
]


def _check(response: requests.Response) -> None:
    """What every answer to hostile input must be: not a 5xx, and JSON with a detail if a 4xx."""
    TRIED["requests"] += 1
    if response.status_code >= 500:
        TRIED["5xx"] += 1
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]
        assert "detail" in response.json()


def _list_still_served(api: ApiServer) -> None:
    response = api.get("/api/v1/jobs")
    assert response.status_code == 200, response.text[:500]
    assert isinstance(response.json()["jobs"], list)


@pytest.mark.parametrize(("label", "body", "headers", "loc"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_spec_is_a_json_422_naming_the_field(
    api: ApiServer, label: str, body: bytes, headers: dict[str, str], loc: list[str | int]
) -> None:
    before = len(api.get("/api/v1/jobs").json()["jobs"])
    for path in ("/api/v1/jobs", "/api/v1/plan"):
        response = api.post(path, data=body, headers=headers)
        _check(response)
        assert response.status_code == 422, (label, response.text[:300])
        problem = response.json()["detail"][0]
        assert problem["loc"] == loc, (label, problem)
        assert len(problem["msg"]) < 300  # a rejected value is echoed in part (80 characters), never all
    _list_still_served(api)
    assert len(api.get("/api/v1/jobs").json()["jobs"]) == before  # nothing was stored


@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000, b'{"a":' + b"9" * 5000 + b"}", b'{"a": "\\ud800"}', b"[]", b"\xff"],
    ids=["deep", "huge-int", "surrogate", "not-an-object", "not-utf8"],
)
def test_run_report_and_ledger_bodies_are_json_422s(api: ApiServer, body: bytes) -> None:
    report = api.post("/api/v1/runs/no-such-run/report", data=body, headers={"Authorization": "Bearer x"})
    ledger = api.post("/api/v1/ledger/runs", data=body, headers=JSON)
    for response in (report, ledger):
        _check(response)
        assert response.status_code == 422, response.text[:300]


def test_a_rejected_value_is_echoed_at_most_80_characters(api: ApiServer) -> None:
    for body, headers in (
        (_raw(_later(name="x" * 100_000)), JSON),
        (_raw(_later(duration="9" * 5000 + "q")), JSON),
        (_raw(_later()), {"Content-Type": "text/" + "x" * 5000}),
    ):
        response = api.post("/api/v1/jobs", data=body, headers=headers)
        _check(response)
        text = json.dumps(response.json()["detail"])
        assert "x" * 81 not in text and "9" * 81 not in text, text[:300]


def test_encoder_never_fails_on_stored_text() -> None:
    """Data stored before validation refused it (a lone surrogate, NaN) is still served as JSON."""
    body = encode_json({"command": "echo \ud800", "kg": float("nan"), "name": "é"})
    assert json.loads(body) == {"command": "echo \ud800", "kg": None, "name": "é"}
    assert encode_json({"name": "é"}) == '{"name":"é"}'.encode()


# ---- fuzz ---------------------------------------------------------------------------------------------

_TEXT = st.text(max_size=40) | st.sampled_from(["\ud800", "a\udfffb", "\x00", "é" * 30, "x" * 500])
_NUMBER = st.integers() | st.floats() | st.sampled_from([-1, 2**63, 1e308, 10**400])
_DURATION = (
    st.sampled_from(
        ["1h", "30m", "0s", "-1h", "99999999999d", "P999999999D", "1.5s", "PT", "1h1h", "366d", "367d"]
    )
    | _TEXT
    | _NUMBER
)
_TIME = (
    st.sampled_from(
        [
            "9999-12-31T23:00Z",
            "0001-01-01T00:00+01:00",
            "2026-13-01T00:00Z",
            "2100-01-01T00:00Z",
            "1969-12-31T23:59Z",
        ]
    )
    | _TEXT
)
_CRON = st.sampled_from(
    [
        "0 22 * * *",
        "*/100 * * * *",
        "0 0 31 2 *",
        "0 0 * * 7/3",
        "60 * * * *",
        "* * * *",
        "0 0 29 2 *",
        "a b c d e",
    ]
) | st.builds(lambda a, b: f"*/{a} */{b} * * *", st.integers(0, 200), st.integers(0, 200))
_LEAF = _TEXT | _NUMBER | st.booleans() | st.none()
_ANY = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _field_values(future: datetime) -> dict[str, st.SearchStrategy[Any]]:
    later = future.isoformat().replace("+00:00", "Z")
    return {
        "name": _TEXT,
        "command": st.builds(lambda t: ["echo", t], _TEXT) | st.sampled_from(["echo \ud800", "", [], [1]]),
        "duration": _DURATION,
        "min_chunk": _DURATION,
        "interruptible": st.booleans() | _LEAF,
        "power_watts": _NUMBER | _TEXT,
        "hardware": st.fixed_dictionaries(
            {}, optional={"gpu": _TEXT, "gpus": _NUMBER, "vcpus": _NUMBER, "memory_gb": _NUMBER}
        )
        | _ANY,
        "window": st.fixed_dictionaries({"earliest": st.just(later)}, optional={"deadline": _TIME})
        | st.fixed_dictionaries({"earliest": _TIME.filter(lambda t: t.startswith(("9", "2100")))}),
        "schedule": st.fixed_dictionaries(
            {"cron": _CRON}, optional={"flex": _DURATION, "timezone": _TEXT, "overlap": _TEXT}
        ),
        "env": st.dictionaries(_TEXT, _TEXT | _NUMBER, max_size=3) | _ANY,
        "labels": st.dictionaries(st.sampled_from(["team", "project", "x"]), _TEXT | _NUMBER, max_size=2),
        "baseline": _TEXT,
        "extra-key": _ANY,
    }


# the fuzz test's time budget and example count per database: small so the suite stays fast; raise
# them (CARBONSHIFT_FUZZ_S=120 CARBONSHIFT_FUZZ_EXAMPLES=5000) for a long run
FUZZ_S = float(os.environ.get("CARBONSHIFT_FUZZ_S", "6"))
FUZZ_EXAMPLES = int(os.environ.get("CARBONSHIFT_FUZZ_EXAMPLES", "150"))


def test_fuzzed_specs_never_get_a_5xx_and_the_list_is_always_served(api: ApiServer) -> None:
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    fields = _field_values(future)
    started = time.monotonic()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.dictionaries(st.sampled_from(sorted(fields)), st.just(None), min_size=1, max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: fields[k] for k in keys})
        ),
        st.booleans(),
        st.booleans(),
    )
    def one(changes: dict[str, Any], as_yaml: bool, store: bool) -> None:
        if time.monotonic() - started > FUZZ_S:
            return
        spec = {**local_spec("fuzz", ["true"]), "window": {"earliest": future.isoformat()}, **changes}
        if "schedule" in changes:
            spec.pop("window", None)
        spec["placement"] = {"providers": ["local"]}  # nothing drawn goes to a cloud
        text = json.dumps(spec, ensure_ascii=True)  # the escapes carry surrogates the way attackers do
        headers = YAML if as_yaml else JSON  # JSON is YAML (with \u escapes read the same way)
        path = "/api/v1/jobs" if store else "/api/v1/plan"
        _check(api.post(path, data=text.encode(), headers=headers))
        _list_still_served(api)

    one()
    assert TRIED["5xx"] == 0
    print(f"fuzz: {TRIED['requests']} requests, {TRIED['5xx']} 5xx")  # figures for the benchmarks page


def test_a_spec_made_in_python_is_refused_the_same_way() -> None:
    """Nothing reaches the scheduler that it could not serve back, however the spec was made."""
    with pytest.raises(ValidationError, match=r"command: not valid Unicode text"):
        JobSpec(name="a", command="echo \ud800", duration="1h")  # type: ignore[arg-type]
    with pytest.raises(JobSpecError) as caught:
        parse_jobspec({"name": "a", "command": ["x"], "duration": "1h", "env": {"A": "\udfff"}})
    assert caught.value.problems == [("env.A", "not valid Unicode text (a lone surrogate such as \\ud800)")]
