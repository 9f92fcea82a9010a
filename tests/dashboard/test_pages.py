"""The dashboard over HTTP against a real server: login and its cookie, pages with and without it,
cross-site form posts, no external URL in any page, and the CSV exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
import requests

from tests.api.helpers import TOKEN, ApiServer, cloud_spec, start_server

PAGES = ["/", "/runs", "/regions", "/plan", "/export"]


def _browser(server: ApiServer) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _login(server: ApiServer) -> requests.Session:
    session = _browser(server)
    response = session.post(
        server.url + "/login", data={"token": TOKEN}, headers={"Origin": server.url}, allow_redirects=False
    )
    assert response.status_code == 303, response.text
    return session


def test_login_sets_an_httponly_samesite_strict_cookie(dash: ApiServer) -> None:
    response = _browser(dash).post(
        dash.url + "/login", data={"token": TOKEN}, headers={"Origin": dash.url}, allow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("carbonshift_token=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain http on loopback; https sets it
    assert TOKEN not in response.headers.get("location", "")


def test_wrong_token_is_refused(dash: ApiServer) -> None:
    response = _browser(dash).post(
        dash.url + "/login", data={"token": "nope"}, headers={"Origin": dash.url}, allow_redirects=False
    )
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "not the API token" in response.text


def test_login_from_another_origin_is_refused(dash: ApiServer) -> None:
    for headers in ({"Origin": "http://evil.example"}, {}):
        response = _browser(dash).post(
            dash.url + "/login", data={"token": TOKEN}, headers=headers, allow_redirects=False
        )
        assert response.status_code == 403
        assert "set-cookie" not in response.headers


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_the_cookie(dash: ApiServer, path: str) -> None:
    anonymous = _browser(dash).get(dash.url + path, headers={"Accept": "text/html"}, allow_redirects=False)
    back = "/login" if path == "/" else f"/login?next={path}"
    assert anonymous.status_code == 303 and anonymous.headers["location"] == back
    assert _browser(dash).get(dash.url + path, allow_redirects=False).status_code == 401  # not a browser
    page = _login(dash).get(dash.url + path, allow_redirects=False)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")


def test_the_cookie_works_for_the_api_but_a_cross_site_post_does_not(dash: ApiServer) -> None:
    session = _login(dash)
    assert session.get(dash.url + "/api/v1/jobs").status_code == 200
    assert _browser(dash).get(dash.url + "/api/v1/jobs").status_code == 401
    forged = session.post(
        dash.url + "/api/v1/plan", json=cloud_spec(), headers={"Origin": "http://evil.example"}
    )
    assert forged.status_code == 403
    same = session.post(dash.url + "/api/v1/plan", json=cloud_spec(), headers={"Origin": dash.url})
    assert same.status_code == 200, same.text


def test_no_page_references_an_external_url(dash: ApiServer) -> None:
    session = _login(dash)
    run_id = session.get(dash.url + "/api/v1/jobs").json()["jobs"][0]["runs"][0]["id"]
    login_page = _browser(dash).get(dash.url + "/login").text
    pages = [login_page] + [
        session.get(dash.url + p).text for p in [*PAGES, f"/runs/{run_id}", "/regions?sel=gcp:europe-west1"]
    ]
    for html in pages:
        for url in re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']+)""", html, flags=re.I):
            assert not re.match(r"^(https?:)?//", url), url
    for asset in ("/static/app.js", "/static/app.css", "/static/vendor/uplot/uPlot.iife.min.js"):
        response = _browser(dash).get(dash.url + asset)
        assert response.status_code == 200
        assert "sourceMappingURL=http" not in response.text


def test_overview_shows_the_ledger_total_and_the_teams(dash: ApiServer) -> None:
    html = _login(dash).get(dash.url + "/").text
    assert "ml" in html and "data" in html and "Top teams" in html
    assert 'id="month-kg"' in html
    # both parts of the footprint, as the ledger sums them for this month
    month = dash.get("/api/v1/totals", params={"from": _month_start()}).json()["total"]
    embodied = re.search(r'id="month-embodied" data-kg="([^"]*)"', html)
    total = re.search(r'id="month-total" data-kg="([^"]*)"', html)
    assert embodied is not None and total is not None
    assert float(embodied.group(1)) == pytest.approx(month["embodied_kg_co2e"])
    assert float(total.group(1)) == pytest.approx(month["kg_co2e"] + month["embodied_kg_co2e"])
    assert '<th class="num">Embodied</th>' in html


def _month_start() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y-%m}-01T00:00:00Z"


def test_runs_filter_by_team(dash: ApiServer) -> None:
    html = _login(dash).get(dash.url + "/runs?team=ml").text
    assert "ml-job-0" in html and "data-job-0" not in html
    assert "2 of " in html and "nightly-eval" not in html


def test_run_detail_has_planned_vs_actual_and_a_chart(dash: ApiServer) -> None:
    session = _login(dash)
    job = session.get(dash.url + "/api/v1/jobs").json()["jobs"][0]
    html = session.get(dash.url + f"/runs/{job['runs'][0]['id']}").text
    assert 'id="planned-vs-actual"' in html and "data as of now" in html and "g/kWh" in html
    assert session.get(dash.url + "/runs/run-nope").status_code == 404


def test_plan_form_answers_like_the_api(dash: ApiServer) -> None:
    import json

    session = _login(dash)
    spec = cloud_spec()
    html = session.post(
        dash.url + "/plan", data={"spec": json.dumps(spec)}, headers={"Origin": dash.url}
    ).text
    best = dash.post("/api/v1/plan", json=spec).json()["options"][0]
    assert f"{best['provider']}:{best['region']}" in html and 'id="plan-options"' in html
    bad = session.post(dash.url + "/plan", data={"spec": "name: x"}, headers={"Origin": dash.url})
    assert bad.status_code == 422 and "command" in bad.text


def test_regions_page_lists_the_catalog_with_provenance(dash: ApiServer) -> None:
    html = _login(dash).get(dash.url + "/regions?provider=gcp&sel=gcp:europe-west1").text
    assert "europe-west1" in html and "source: " in html and 'id="regions-chart"' in html


def test_csv_export_columns(dash: ApiServer) -> None:
    session = _login(dash)
    response = session.get(dash.url + "/export/runs.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    codecarbon = [
        "timestamp",
        "project_name",
        "run_id",
        "duration",
        "emissions",
        "energy_consumed",
        "country_iso_code",
        "region",
        "cloud_provider",
        "cloud_region",
    ]
    assert list(rows[0])[: len(codecarbon)] == codecarbon
    assert {r["project_name"] for r in rows} == {"vision", "etl", "llm-eval"}
    assert all(float(r["emissions"]) >= 0 and r["country_iso_code"] == "DE" for r in rows)
    tracked = [r for r in rows if r["project_name"] == "llm-eval"]
    assert {(r["cloud_provider"], r["cloud_region"]) for r in tracked} == {("gcp", "europe-west3")}
    assert float(tracked[0]["energy_consumed"]) == 4.0 and float(tracked[0]["duration"]) == 3 * 3600
    totals = list(
        csv.DictReader(io.StringIO(session.get(dash.url + "/export/totals.csv?group_by=team").text))
    )
    api = dash.get("/api/v1/totals?group_by=team").json()
    assert {r["team"]: int(r["runs"]) for r in totals} == {g["key"]["team"]: g["runs"] for g in api["groups"]}
    assert list(totals[0]) == [
        "team",
        "runs",
        "energy_consumed",
        "emissions",
        "embodied_emissions",
        "total_emissions",
        "planned_emissions",
        "baseline_emissions",
        "saved_emissions",
    ]


def test_no_token_means_open_on_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(tmp_path, token=None)
    try:
        session = _browser(server)
        assert session.get(server.url + "/", allow_redirects=False).status_code == 200
        assert session.get(server.url + "/login", allow_redirects=False).status_code == 303
    finally:
        server.stop()


def test_the_fallback_totals_agree_with_the_ledger(dash: ApiServer) -> None:
    from carbonshift.api.dashboard import fallback_totals, run_rows

    jobs = dash.get("/api/v1/jobs").json()["jobs"]
    mine = fallback_totals(run_rows(jobs), ["team"], None, None)
    ledger = dash.get("/api/v1/totals?group_by=team").json()
    assert [(g["key"], g["runs"]) for g in mine["groups"]] == [
        (g["key"], g["runs"]) for g in ledger["groups"]
    ]
    assert mine["total"]["kg_co2e"] == pytest.approx(ledger["total"]["kg_co2e"], rel=1e-6)
    for key in ("embodied_kg_co2e", "total_kg_co2e"):
        assert mine["total"][key] == pytest.approx(ledger["total"][key], rel=1e-6), key


def test_the_cookie_is_secure_over_https(dash: ApiServer) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS proxy in front): the scheme is then https
    response = _browser(dash).post(
        dash.url + "/login",
        data={"token": TOKEN},
        headers={"Origin": dash.url.replace("http://", "https://"), "X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"] and "HttpOnly" in response.headers["set-cookie"]


def test_api_docs_are_served_from_the_package_and_use_the_login_cookie(dash: ApiServer) -> None:
    anonymous = _browser(dash).get(dash.url + "/docs", headers={"Accept": "text/html"}, allow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/docs"
    # logging in from there comes back to the docs
    session = _browser(dash)
    back = session.post(
        dash.url + "/login",
        data={"token": TOKEN, "next": "/docs"},
        headers={"Origin": dash.url},
        allow_redirects=False,
    )
    assert back.status_code == 303 and back.headers["location"] == "/docs"
    page = session.get(dash.url + "/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in (
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
    ):
        assert asset in page.text
        served = _browser(dash).get(dash.url + asset)  # public files: no login needed
        assert served.status_code == 200 and len(served.content) > 10_000
    assert session.get(dash.url + "/openapi.json").json()["info"]["title"] == "carbonshift"


@pytest.mark.parametrize("bad", ["//evil.example/x", "https://evil.example", "/\\evil.example", "/a?b=c"])
def test_login_never_sends_a_browser_to_another_site(dash: ApiServer, bad: str) -> None:
    response = _browser(dash).post(
        dash.url + "/login",
        data={"token": TOKEN, "next": bad},
        headers={"Origin": dash.url},
        allow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_text_stored_before_validation_renders_escaped_not_as_a_500() -> None:
    from jinja2 import Environment

    from carbonshift.api.dashboard import printable

    env = Environment(autoescape=True)
    env.finalize = printable
    html = env.from_string("<td>{{ name }}</td><td>{{ n }}</td>").render(name="legacy\ud800<b>", n=3)
    assert html == "<td>legacy\\ud800&lt;b&gt;</td><td>3</td>"
    html.encode("utf-8")  # what the response does: no UnicodeEncodeError
