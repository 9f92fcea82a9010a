"""The HTTP API through a real server: submit (JSON and YAML), list, show, cancel, dry-run plans, bad
specs, unknown jobs, body limits, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import yaml

from tests.api.helpers import ApiServer, cloud_spec, local_spec


def _later(name: str) -> dict[str, Any]:
    """A local job that waits an hour: it stays pending for the whole test."""
    return local_spec(name, ["true"], start_in=timedelta(hours=1))


def test_healthz(api: ApiServer) -> None:
    response = api.get("/healthz", token="")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_submit_json_answers_201_with_the_job_and_its_plan(api: ApiServer) -> None:
    response = api.post("/api/v1/jobs", json=_later("submit-json"))
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert {"id", "name", "status", "spec", "plans", "runs", "plan", "created_at"} <= set(job)
    assert job["name"] == "submit-json"
    assert job["plan"] is not None and job["plan"] == job["plans"][-1]
    assert job["spec"]["command"] == ["true"]
    (run,) = job["runs"]
    assert run["status"] in {"planned", "waiting"}
    assert run["provider"] == "local"


def test_submit_yaml_as_written(api: ApiServer) -> None:
    text = yaml.safe_dump(_later("submit-yaml"))
    for content_type in ("application/yaml", "text/yaml; charset=utf-8"):
        response = api.post("/api/v1/jobs", data=text.encode(), headers={"Content-Type": content_type})
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "submit-yaml"


def test_list_and_show(api: ApiServer) -> None:
    job = api.submit(_later("list-show"))
    listed = api.get("/api/v1/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    summary = next(j for j in listed if j["id"] == job["id"])
    assert "plans" not in summary and "options" not in summary["plan"]  # the history stays out of lists
    assert summary["plan"]["option"] == job["plan"]["option"]
    assert summary["runs"][0]["status"] == job["runs"][0]["status"] and "events" not in summary["runs"][0]
    full = api.get("/api/v1/jobs?full=true").json()["jobs"]
    assert next(j for j in full if j["id"] == job["id"])["plans"] == job["plans"]
    shown = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert shown["id"] == job["id"] and shown["spec"]["name"] == "list-show"
    assert len(shown["plans"]) >= 1
    run = shown["runs"][0]
    assert run["planned"] is not None and run["actual"] is None
    assert run["planned_start"] and run["planned_end"]


def test_unknown_job_is_404(api: ApiServer) -> None:
    for method, path in [
        ("GET", "/api/v1/jobs/no-such-job"),
        ("DELETE", "/api/v1/jobs/no-such-job"),
        ("GET", "/api/v1/jobs/no-such-job/runs/no-such-run/log"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert isinstance(response.json()["detail"], str)


def test_cancel_a_waiting_job(api: ApiServer) -> None:
    job = api.submit(_later("cancel-me"))
    response = api.request("DELETE", f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    shown = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert [r["status"] for r in shown["runs"]] == ["cancelled"]


def test_plan_is_a_dry_run_that_stores_nothing(api: ApiServer) -> None:
    before = api.get("/api/v1/jobs").json()["jobs"]
    response = api.post("/api/v1/plan", json=cloud_spec())
    assert response.status_code == 200, response.text
    advice = response.json()
    assert advice["job"] == "api-plan"
    assert advice["options"] and all(o["provider"] == "gcp" for o in advice["options"])
    assert advice["baseline"]["region"] == "us-central1"
    top = api.post(
        "/api/v1/plan?top=2", data=yaml.safe_dump(cloud_spec()), headers={"Content-Type": "application/yaml"}
    )
    assert top.status_code == 200 and len(top.json()["options"]) == 2
    assert api.get("/api/v1/jobs").json()["jobs"] == before


def test_bad_specs_are_422_naming_each_field(api: ApiServer) -> None:
    bad = {"name": "Bad Name", "command": [], "duration": 5, "hardware": {"gpu": "Z9000"}, "colour": "red"}
    for endpoint in ("/api/v1/jobs", "/api/v1/plan"):
        response = api.post(endpoint, json=bad)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        fields = {tuple(d["loc"]) for d in detail}
        assert {
            ("body", "name"),
            ("body", "command"),
            ("body", "duration"),
            ("body", "hardware", "gpu"),
            ("body", "colour"),
        } <= fields
        messages = " ".join(d["msg"] for d in detail)
        assert "has no unit" in messages and "unknown GPU model" in messages and "unknown key" in messages


def test_cross_field_and_document_errors_are_422(api: ApiServer) -> None:
    spec = local_spec("deadline", ["true"])
    spec["window"]["deadline"] = spec["window"]["earliest"]
    response = api.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["body", "window", "deadline"]]
    for body, content_type in [
        (b"{not json", "application/json"),
        (b"name: [unclosed", "application/yaml"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
    ]:
        response = api.post("/api/v1/jobs", data=body, headers={"Content-Type": content_type})
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"][0]["loc"] == ["body"]


def test_a_placement_problem_found_when_planning_is_422(api: ApiServer) -> None:
    spec = cloud_spec("no-region")
    spec["placement"] = {"regions": ["gcp:mars-north1"]}
    response = api.post("/api/v1/plan", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_other_content_types_are_415(api: ApiServer) -> None:
    response = api.post(
        "/api/v1/jobs", data=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert "application/yaml" in response.json()["detail"]


def test_bodies_over_the_limit_are_413(api: ApiServer) -> None:
    limit = api.settings.max_body_bytes
    big = b'{"name": "' + b"a" * (limit + 10) + b'"}'
    response = api.post("/api/v1/jobs", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit still holds for a streamed body
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = api.post("/api/v1/plan", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    # far over the limit: answered without reading it all (the connection may close under the upload)
    assert api.get("/healthz").status_code == 200


def test_metrics_in_prometheus_text_format(api: ApiServer) -> None:
    api.submit(_later("metrics"))
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert text.endswith("\n")
    sample = re.compile(
        r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? \S+$'
    )
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert sample.match(line), line
        float(line.rsplit(" ", 1)[1])
        names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in names:
        assert f"# TYPE {name} " in text and f"# HELP {name} " in text
    assert re.search(r'^carbonshift_runs\{status="(planned|waiting)"\} [1-9]', text, re.M), text
    assert "carbonshift_planned_kg_co2e" in text


def test_openapi_documents_every_route_and_the_spec(api: ApiServer) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/runs/{run_id}/log",
        "/api/v1/plan",
        "/api/v1/runs/{run_id}/report",
        "/healthz",
        "/metrics",
    ):
        assert path in paths, path
    body = paths["/api/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(body)
    assert "JobSpec" in doc["components"]["schemas"]
    assert "duration" in doc["components"]["schemas"]["JobSpec"]["properties"]
    assert doc["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    assert paths["/healthz"]["get"]["security"] == []
    json.dumps(doc)


def test_a_relative_window_is_stored_as_the_times_it_meant_at_submission(api: ApiServer) -> None:
    from datetime import UTC, datetime

    spec = local_spec("relative-window", ["true"])
    spec["window"] = {"earliest": "+1h", "deadline": "now+3h"}
    before = datetime.now(UTC).replace(microsecond=0)
    job = api.submit(spec)
    after = datetime.now(UTC)
    stored = job["spec"]["window"]
    earliest = datetime.fromisoformat(stored["earliest"].replace("Z", "+00:00"))
    deadline = datetime.fromisoformat(stored["deadline"].replace("Z", "+00:00"))
    assert before + timedelta(hours=1) <= earliest <= after + timedelta(hours=1)
    assert deadline - earliest == timedelta(hours=2)
