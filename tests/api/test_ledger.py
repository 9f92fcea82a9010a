"""Issue 11 over real HTTP and the real CLI: labels on submitted jobs and the job-list filters, a
local run to completion counted in the ledger, `carbonshift track --server` adding a run, the totals
API (JSON, 422 naming group_by) and `carbonshift report` as a table, JSON and CSV."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.api.helpers import PY, ApiServer, cli_env, local_spec, start_server
from tests.cli.helpers import run_cli
from tests.pg import pg_schema_url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ledger_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The API on SQLite, and on PostgreSQL in a fresh schema (skipped, saying why, without a server)."""
    with contextlib.ExitStack() as stack:
        extra: dict[str, object] = {"labels": {"organisation": "acme"}}
        if request.param == "postgres":
            extra["db_url"] = stack.enter_context(pg_schema_url("cs_ledger"))
        server = start_server(tmp_path_factory.mktemp("ledger"), **extra)
        try:
            yield server
        finally:
            server.stop()


def _tracked_report(
    run_id: str, kg: float, energy: float, end: str = "2026-11-20T11:00:00Z", embodied: float | None = None
) -> dict[str, object]:
    both = {} if embodied is None else {"embodied_kg_co2e": embodied, "total_kg_co2e": kg + embodied}
    return {
        **both,
        "run_id": run_id,
        "command": ["python", "eval.py"],
        "start": "2026-11-20T10:00:00Z",
        "end": end,
        "exit_code": 0,
        "energy_kwh": energy,
        "kg_co2e": kg,
        "zone": "DE",
        "location": {"region": "aws:eu-central-1", "zone": "DE"},
    }


def test_labels_filters_and_a_local_run_in_the_totals(ledger_api: ApiServer) -> None:
    api = ledger_api
    spec = local_spec("labelled", [PY, "-c", "print('ok')"], labels={"team": "ml-platform", "project": "llm"})
    job = api.submit(spec)
    assert job["labels"] == {"organisation": "acme", "team": "ml-platform", "project": "llm"}
    other = api.submit(local_spec("unlabelled", [PY, "-c", "pass"]))
    assert other["labels"]["team"] is None

    names = [j["name"] for j in api.get("/api/v1/jobs?team=ml-platform").json()["jobs"]]
    assert names == ["labelled"]
    both = api.get("/api/v1/jobs", params={"organisation": "acme", "project": "llm"}).json()["jobs"]
    assert [j["name"] for j in both] == ["labelled"]
    assert api.get("/api/v1/jobs?team=nobody").json()["jobs"] == []

    bad = api.post("/api/v1/jobs", json=local_spec("bad", ["true"], labels={"team": "ML Platform"}))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "labels", "team"]

    done = api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] in {"succeeded", "failed"})
    run = done["runs"][-1]
    assert run["status"] == "succeeded" and run["actual"]["kg_co2e"] is not None
    api.wait_for(other["id"], lambda j: j["runs"][-1]["status"] in {"succeeded", "failed"})

    data = api.get("/api/v1/totals", params={"group_by": "team,project", "team": "ml-platform"}).json()
    assert data["group_by"] == ["team", "project"]
    (group,) = data["groups"]
    assert group["key"] == {"team": "ml-platform", "project": "llm"} and group["runs"] == 1
    assert group["kg_co2e"] == pytest.approx(run["actual"]["kg_co2e"])
    assert group["energy_kwh"] == pytest.approx(run["actual"]["energy_kwh"])
    assert group["planned_kg_co2e"] == pytest.approx(run["planned"]["kg_co2e"])
    assert group["baseline_kg_co2e"] == pytest.approx(run["planned"]["baseline_kg_co2e"])
    assert group["saved_kg_co2e"] == pytest.approx(
        run["planned"]["baseline_kg_co2e"] - run["actual"]["kg_co2e"]
    )
    assert data["total"] == {k: v for k, v in group.items() if k != "key"}


def test_totals_api_errors_name_the_parameter(ledger_api: ApiServer) -> None:
    api = ledger_api
    bad = api.get("/api/v1/totals?group_by=team,colour")
    assert bad.status_code == 422
    assert (
        bad.json()["detail"][0]["loc"] == ["query", "group_by"] and "colour" in bad.json()["detail"][0]["msg"]
    )
    when = api.get("/api/v1/totals", params={"from": "last tuesday"})
    assert when.status_code == 422 and when.json()["detail"][0]["loc"] == ["query", "from"]
    assert api.get("/api/v1/totals", token="wrong-token").status_code == 401
    assert api.post("/api/v1/ledger/runs", json={"report": {}}, token="wrong-token").status_code == 401
    not_report = api.post("/api/v1/ledger/runs", json={"labels": {}})
    assert not_report.status_code == 422 and not_report.json()["detail"][0]["loc"] == ["body", "report"]
    bad_label = api.post(
        "/api/v1/ledger/runs", json={"report": _tracked_report("x", 1.0, 1.0), "labels": {"team": "A B"}}
    )
    assert bad_label.status_code == 422 and bad_label.json()["detail"][0]["loc"] == ["body", "labels", "team"]


def test_posted_runs_and_the_report_command(ledger_api: ApiServer, tmp_path: Path) -> None:
    api = ledger_api
    for i, (team, kg, energy, embodied) in enumerate(
        [("research", 0.5, 2.0, 0.0625), ("research", 0.25, 1.0, None), ("infra", 0.125, 0.5, 0.03125)]
    ):
        body = {
            "report": _tracked_report(f"tracked-{i}", kg, energy, embodied=embodied),
            "labels": {"team": team},
            "name": "eval",
        }
        posted = api.post("/api/v1/ledger/runs", json=body)
        assert posted.status_code == 201, posted.text
    again = api.post("/api/v1/ledger/runs", json={"report": _tracked_report("tracked-0", 0.5, 2.0)})
    assert again.status_code == 201  # the same report again: stored once

    env = cli_env(api)
    args = ("report", "--group-by", "team,region", "--month", "2026-11")
    as_json = run_cli(*args, "--format", "json", env=env, tmp=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["from"] == "2026-11-01T00:00:00Z" and data["to"] == "2026-12-01T00:00:00Z"
    assert [g["key"] for g in data["groups"]] == [
        {"team": "infra", "region": "aws:eu-central-1"},
        {"team": "research", "region": "aws:eu-central-1"},
    ]
    assert [g["runs"] for g in data["groups"]] == [1, 2]
    assert data["groups"][1]["kg_co2e"] == pytest.approx(0.75) and data["groups"][1][
        "energy_kwh"
    ] == pytest.approx(3.0)
    assert data["total"]["kg_co2e"] == pytest.approx(0.875) and data["total"][
        "saved_kg_co2e"
    ] == pytest.approx(0.0)
    # both parts: operational (kg_co2e) and embodied, summed apart and together
    assert data["groups"][1]["embodied_kg_co2e"] == pytest.approx(0.0625)
    assert data["total"]["embodied_kg_co2e"] == pytest.approx(0.09375)
    assert data["total"]["total_kg_co2e"] == pytest.approx(0.875 + 0.09375)

    as_csv = run_cli(*args, "--format", "csv", env=env, tmp=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["team"] for r in rows] == ["infra", "research"]
    assert float(rows[1]["kg_co2e"]) == pytest.approx(0.75) and rows[1]["planned_kg_co2e"] == ""
    assert float(rows[1]["total_kg_co2e"]) == pytest.approx(0.8125)
    assert list(rows[0]) == [
        "team", "region", "runs", "energy_kwh", "kg_co2e", "embodied_kg_co2e", "total_kg_co2e",
        "planned_kg_co2e", "baseline_kg_co2e", "saved_kg_co2e"
    ]  # fmt: skip

    as_table = run_cli(*args, env=env, tmp=tmp_path)
    assert as_table.returncode == 0, as_table.stderr
    lines = as_table.stdout.splitlines()
    assert lines[0].startswith("ledger, runs that ended 2026-11-01T00:00:00Z")
    assert lines[1].split()[:3] == ["team", "region", "runs"]
    assert "operational CO2e" in lines[1] and "embodied" in lines[1] and "total CO2e" in lines[1]
    assert any(line.startswith("research") and "750 g" in line and "812 g" in line for line in lines)
    assert lines[-1].startswith("total") and "875 g" in lines[-1] and "93.8 g" in lines[-1]

    bad = run_cli("report", "--group-by", "colour", env=env, tmp=tmp_path)
    assert bad.returncode == 2 and "group_by" in bad.stderr and "colour" in bad.stderr
    both = run_cli("report", "--month", "2026-11", "--from", "-1d", env=env, tmp=tmp_path)
    assert both.returncode == 2 and "--month" in both.stderr


def test_track_server_posts_the_run_to_the_ledger(ledger_api: ApiServer, tmp_path: Path) -> None:
    api = ledger_api
    env = cli_env(api, CARBONSHIFT_TRACKER__INTERVAL_S="0.05", CARBONSHIFT_TRACKER__DETECT_CLOUD="false")
    env.update(CARBONSHIFT_TRACKER__GPU="false", CARBONSHIFT_TRACKER__RAPL="false")
    result = run_cli(
        "track", "--zone", "DE", "--server", api.url, "--team", "tracking", "--project", "cli",
        "--output-dir", str(tmp_path / "runs"), "--", PY, "-c", "import time; time.sleep(0.3)",
        env=env, tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "added to the ledger" in result.stderr
    report = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    month = datetime.now(UTC).strftime("%Y-%m")
    data = api.get(
        "/api/v1/totals", params={"group_by": "organisation,project,month", "team": "tracking"}
    ).json()
    (group,) = data["groups"]
    assert group["key"] == {"organisation": "acme", "project": "cli", "month": month}
    assert group["runs"] == 1 and group["kg_co2e"] == pytest.approx(report["kg_co2e"])
    jobs = api.get("/api/v1/jobs?team=tracking").json()["jobs"]
    assert [j["kind"] for j in jobs] == ["tracked"] and jobs[0]["name"] == "python"

    bad = run_cli("track", "--team", "Not OK", "--", "true", env=env, tmp=tmp_path)
    assert bad.returncode == 2 and "--team" in bad.stderr
    down = run_cli(
        "track", "--zone", "DE", "--server", "http://127.0.0.1:9", "--output-dir", str(tmp_path / "r2"),
        "--", PY, "-c", "raise SystemExit(3)", env=env, tmp=tmp_path,
    )  # fmt: skip
    assert down.returncode == 3 and "not added to the ledger" in down.stderr


def test_report_month_bounds() -> None:
    from carbonshift.cli.report import month_span
    from carbonshift.errors import UserInputError

    assert month_span("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert month_span("2026-02")[1] == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in ("2026-13", "26-1", "november"):
        with pytest.raises(UserInputError, match="--month"):
            month_span(bad)
