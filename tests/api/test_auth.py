"""Auth: the API token on every route but /healthz (401 otherwise, never echoing a token), the per-run
token on a run's report (403 when wrong), and an open API when no token is configured."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.api.helpers import TOKEN, ApiServer, local_spec

PROTECTED = [
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/some-id"),
    ("DELETE", "/api/v1/jobs/some-id"),
    ("GET", "/api/v1/jobs/some-id/runs/some-run/log"),
    ("POST", "/api/v1/plan"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/no/such/route"),
]
WRONG = "wrong-token-that-must-never-be-echoed"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_needs_the_token(api: ApiServer, method: str, path: str) -> None:
    for token in ("", WRONG):
        response = api.session.request(
            method,
            api.url + path,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            data=b"{}",
            timeout=10,
        )
        assert response.status_code == 401, (method, path, token, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "CARBONSHIFT_API_TOKEN" in response.json()["detail"]
        assert WRONG not in response.text and TOKEN not in response.text


def test_other_schemes_and_malformed_headers_are_401(api: ApiServer) -> None:
    for header in (f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer  {TOKEN}x", f"bearer {TOKEN[:-1]}"):
        response = api.session.get(api.url + "/api/v1/jobs", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
    response = api.session.get(
        api.url + "/api/v1/jobs", headers={"Authorization": f"bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200  # the scheme is case-insensitive


def test_healthz_is_open(api: ApiServer) -> None:
    assert api.session.get(api.url + "/healthz", timeout=10).status_code == 200


def test_a_run_report_needs_the_runs_own_token(api: ApiServer) -> None:
    job = api.submit(local_spec("report-auth", ["true"], start_in=timedelta(hours=1)))
    run_id = job["runs"][0]["id"]
    path = f"/api/v1/runs/{run_id}/report"
    # no token at all
    response = api.session.post(api.url + path, json={"exit_code": 0}, timeout=10)
    assert response.status_code == 401
    # the API token is not a run's token
    for token in (TOKEN, WRONG):
        response = api.post(path, json={"exit_code": 0}, token=token)
        assert response.status_code == 403, response.text
        assert token not in response.text
    # a body that is not an object
    response = api.post(path, data=b"[1]", token=WRONG, headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_without_a_configured_token_the_api_is_open(open_api: ApiServer) -> None:
    assert open_api.get("/api/v1/jobs").status_code == 200
    assert open_api.get("/metrics").status_code == 200
    # a token sent anyway is ignored, not compared with nothing
    assert open_api.get("/api/v1/jobs", token="anything").status_code == 200


def test_an_open_api_refuses_browser_tricks(open_api: ApiServer) -> None:
    spec = json.dumps(local_spec("csrf", ["true"], start_in=timedelta(hours=1))).encode()
    # DNS rebinding: the attacker's name resolved to 127.0.0.1 arrives in the Host header
    rebound = open_api.post(
        "/api/v1/jobs",
        data=spec,
        headers={"Host": "attacker.example:8765", "Content-Type": "application/json"},
    )
    assert rebound.status_code == 403
    # a cross-site page (fetch with mode no-cors still sends Origin)
    cross = open_api.post(
        "/api/v1/jobs",
        data=spec,
        headers={"Origin": "https://attacker.example", "Content-Type": "application/json"},
    )
    assert cross.status_code == 403
    # a body without a Content-Type (a Blob) is not taken for JSON
    untyped = open_api.session.post(open_api.url + "/api/v1/jobs", data=spec, timeout=10)
    assert untyped.status_code == 415
    assert open_api.get("/api/v1/jobs").json()["jobs"] == []
