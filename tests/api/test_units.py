"""The API's and the client's small pure parts: address and token checks, 422 locations, the
Prometheus rendering, the client's URL rules and error mapping, the CLI's units."""

from __future__ import annotations

import pytest

from carbonshift.api.metrics import render_metrics
from carbonshift.api.security import bearer_token, browser_risk, is_loopback, tokens_match
from carbonshift.api.specs import UnsupportedMediaType, body_format, field_loc, problems_detail
from carbonshift.cli.jobs import co2, render_job, render_job_list
from carbonshift.client import Client, _field_of, _problems, check_server_url, sends_token_in_clear
from carbonshift.config.jobspec import JobSpecError
from carbonshift.errors import UserInputError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("myhost", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_bearer_token_parsing() -> None:
    assert bearer_token([(b"authorization", b"Bearer abc")]) == "abc"
    assert bearer_token([(b"Authorization", b"bearer  abc ")]) == "abc"
    assert bearer_token([(b"authorization", b"Basic abc")]) is None
    assert bearer_token([(b"authorization", b"Bearer")]) is None
    assert bearer_token([(b"x-token", b"abc")]) is None
    assert bearer_token([]) is None


def test_an_open_api_refuses_what_a_browser_could_be_tricked_into_sending() -> None:
    ok = [
        [(b"host", b"127.0.0.1:8765")],
        [(b"host", b"localhost:8765"), (b"origin", b"http://localhost:3000")],
        [(b"host", b"[::1]:8765")],
        [],
    ]
    for headers in ok:
        assert browser_risk(headers) is None, headers
    refused = [
        [(b"host", b"attacker.example:8765")],  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        [(b"host", b"127.0.0.1:8765"), (b"origin", b"https://attacker.example")],
        [(b"host", b"127.0.0.1:8765"), (b"origin", b"null")],  # sandboxed frames, file:// pages
    ]
    for headers in refused:
        assert browser_risk(headers) is not None, headers


def test_tokens_match() -> None:
    assert tokens_match("secret-value", "secret-value")
    assert not tokens_match("secret-valu", "secret-value")
    assert not tokens_match("", "secret-value")
    assert tokens_match("ünïcödé", "ünïcödé")


def test_body_format() -> None:
    for missing in (None, ""):  # a page can send a body without a type: no guessing
        with pytest.raises(UnsupportedMediaType, match="no Content-Type"):
            body_format(missing)
    assert body_format("application/json; charset=utf-8") == "json"
    assert body_format("application/vnd.api+json") == "json"
    assert body_format("application/yaml") == "yaml"
    assert body_format("TEXT/YAML") == "yaml"
    assert body_format("application/x-yaml") == "yaml"
    with pytest.raises(UnsupportedMediaType):
        body_format("multipart/form-data; boundary=x")


def test_problem_locations() -> None:
    assert field_loc("window.deadline") == ["body", "window", "deadline"]
    assert field_loc("command[0]") == ["body", "command", 0]
    assert field_loc("placement.regions[2]") == ["body", "placement", "regions", 2]
    assert field_loc("") == ["body"]
    detail = problems_detail(JobSpecError("body", [("name", "bad"), ("", "whole document")]))
    assert detail == [
        {"loc": ["body", "name"], "msg": "bad", "type": "value_error"},
        {"loc": ["body"], "msg": "whole document", "type": "value_error"},
    ]
    assert problems_detail(UserInputError("baseline", "unknown region"))[0]["loc"] == ["body", "baseline"]


def test_client_reads_the_servers_problems_back() -> None:
    assert _field_of(["body", "window", "deadline"]) == "window.deadline"
    assert _field_of(["body", "command", 0]) == "command[0]"
    assert _field_of(["query", "top"]) == "query.top"
    assert _field_of(["body"]) == ""
    assert _problems([{"loc": ["body", "name"], "msg": "bad"}]) == [("name", "bad")]
    assert _problems("plain text") == [("", "plain text")]


def test_render_metrics() -> None:
    text = render_metrics(
        {
            "role": "active",
            "runs_by_status": {"succeeded": 3, "waiting": 1},
            "planned_kg_co2e": 1.5,
            "reports_rejected": 2,
            "saving_pct": None,
            "ignored": "text",
            "flag": True,
            "new_figure": 7,
            'label "odd"': {"a\nb": 2},
        }
    )
    lines = text.splitlines()
    assert "# TYPE carbonshift_runs gauge" in lines
    assert 'carbonshift_runs{status="succeeded"} 3' in lines
    assert 'carbonshift_runs{status="waiting"} 1' in lines
    assert "carbonshift_planned_kg_co2e 1.5" in lines
    # refused reports only ever add up: a Prometheus counter
    assert "# TYPE carbonshift_reports_rejected_total counter" in lines
    assert "carbonshift_reports_rejected_total 2" in lines
    assert 'carbonshift_daemon_role{role="active"} 1' in lines
    assert 'carbonshift_daemon_role{role="standby"} 0' in lines
    assert "carbonshift_new_figure 7" in lines  # a key without a name yet is still shown
    assert not any("saving" in line or "ignored" in line or "flag" in line for line in lines)
    assert 'carbonshift_label__odd{key="a\\nb"} 2' in lines
    assert text.endswith("\n")


def test_server_urls() -> None:
    assert check_server_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert check_server_url(" https://sched.example.com ") == "https://sched.example.com"
    for bad in ("127.0.0.1:8765", "ftp://x", "http://", "http://user:pw@host"):
        with pytest.raises(UserInputError):
            check_server_url(bad)
    assert sends_token_in_clear("http://sched.example.com", "t")
    assert not sends_token_in_clear("https://sched.example.com", "t")
    assert not sends_token_in_clear("http://127.0.0.1:8765", "t")
    assert not sends_token_in_clear("http://sched.example.com", None)


def test_client_repr_hides_the_token() -> None:
    client = Client("http://127.0.0.1:1", "very-secret-token")
    assert "very-secret-token" not in repr(client)
    client.close()


def test_units_in_tables() -> None:
    assert co2(0.0123) == "12.3 g"
    assert co2(2.5) == "2.5 kg"
    assert co2(12_345) == "12.3 t"
    assert co2(5e-05) == "50 mg"
    assert co2(3.78e-08) == "37.8 µg"
    assert co2(0) == "0 g"
    assert co2(None) == "-"
    assert render_job_list([]) == "no jobs"
    job = {
        "id": "abc",
        "name": "n",
        "status": "waiting",
        "spec": {"command": ["python", "x.py"], "duration": "1h"},
        "plans": [{"generated_at": "2026-11-24T18:00:00Z", "kind": "initial", "adopted": True,
                   "option": {"provider": "local", "region": "lab", "start": "2026-11-24T18:00:00Z",
                              "end": "2026-11-24T19:00:00Z", "kg_co2e": 0.5, "mean_g_per_kwh": 100.0}}],
        "runs": [{"id": "r1", "status": "waiting", "provider": "local", "region": "lab",
                  "planned_start": "2026-11-24T18:00:00Z", "planned": {"kg_co2e": 0.5}, "actual": None}],
    }  # fmt: skip
    text = render_job(job)
    assert "local:lab" in text and "500 g" in text and "100 g/kWh" in text and "2026-11-24 18:00Z" in text
    listing = render_job_list([job])
    assert listing.splitlines()[2].startswith("abc")


def test_job_view_shows_each_runs_instance_and_console_link() -> None:
    from carbonshift.cli.jobs import render_job

    job = {
        "id": "job-1",
        "name": "train",
        "status": "running",
        "spec": {"name": "train", "command": ["x"], "duration": "1h"},
        "plans": [],
        "runs": [
            {
                "id": "run-1",
                "status": "running",
                "provider": "aws",
                "region": "eu-west-1",
                "instance_id": "i-0abc",
                "console_url": "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#InstanceDetails:instanceId=i-0abc",
            }
        ],
    }
    text = render_job(job)
    assert "run run-1: instance i-0abc  https://eu-west-1.console.aws.amazon.com/" in text
