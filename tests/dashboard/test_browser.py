"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real server with
seeded runs. Log in, check the overview's total against the API's, filter runs by team, open a run's
chart, plan a spec from the form, download the CSV; every request must stay on the server.

Chromium is the system's (/usr/bin/chromium; installed with apt-get when missing and we are root),
never Playwright's own download. Screenshots of each page go under the test's tmp dir, and the
overview's is copied to docs/screenshots/overview.png for the README when
CARBONSHIFT_UPDATE_SCREENSHOTS is set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carbonshift.api.dashboard import RUN_COLUMNS, fmt_kg, month_start
from tests.api.helpers import TOKEN, ApiServer, cloud_spec

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _ensure_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing and cannot be installed (needs root and apt-get)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: `apt-get install -y chromium` did not provide {CHROMIUM}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="BROWSER TESTS SKIPPED: pip install playwright"
    )
    _ensure_chromium()
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _server_only(browser: Any, dash: ApiServer, **options: Any) -> tuple[Any, list[str]]:
    """A browser context that may fetch only from the server (and data: URLs): anything else, a CDN
    included, is refused and listed, so a page that needs the internet fails its test."""
    outside: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 860}, **options)

    def gate(route: Any) -> None:
        if route.request.url.startswith(dash.url + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    return context, outside


def test_the_dashboard_in_a_browser(browser: Any, dash: ApiServer, tmp_path: Path) -> None:
    context, outside = _server_only(browser, dash, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # log in: the form, then the overview
    page.goto(dash.url + "/")
    assert page.url == dash.url + "/login"
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    assert "not the API token" in page.content()
    page.fill("#token", TOKEN)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(dash.url + "/")
    cookie = next(c for c in context.cookies() if c["name"] == "carbonshift_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # the overview's total is the API's (the ledger's) for this month
    start = month_start(datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    api_total = dash.get("/api/v1/totals", params={"from": start}).json()["total"]
    assert page.inner_text("#month-kg") == fmt_kg(api_total["kg_co2e"])
    assert api_total["runs"] >= 4
    page.wait_for_selector("#months[data-drawn=true]")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    if os.environ.get("CARBONSHIFT_UPDATE_SCREENSHOTS"):  # refresh the README's picture on request only
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots / "overview.png", DOCS / "overview.png")

    # a phone's width: nothing wider than the screen (tables scroll inside their wrapper)
    page.set_viewport_size({"width": 390, "height": 844})
    # (the chart follows the window's resize event, so wait for it to settle)
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth + 1", timeout=5000)
    page.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    # runs, filtered by team
    page.click("nav >> text=Jobs & runs")
    page.select_option("select[name=team]", "ml")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/runs?team=ml**")
    teams = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.team)")
    assert teams == ["ml", "ml"]
    page.screenshot(path=str(shots / "runs.png"), full_page=True)

    # one run: planned vs actual and its intensity chart
    page.click("#runs tbody tr >> nth=0 >> a")
    page.wait_for_selector("#run-chart[data-drawn=true] canvas")
    assert "data as of now" in page.inner_text("figure.chart figcaption")
    assert "Planned" in page.inner_text("#planned-vs-actual")
    page.screenshot(path=str(shots / "run.png"), full_page=True)

    # regions: sort by intensity, compare two
    page.goto(dash.url + "/regions?provider=gcp&sel=gcp:europe-west1&sel=gcp:us-central1")
    page.wait_for_selector("#regions-chart[data-drawn=true]")
    page.click("#regions th >> text=Static intensity")
    values = page.eval_on_selector_all(
        "#regions tbody td:nth-child(6)", "cells => cells.map(c => c.dataset.value).filter(v => v !== '')"
    )
    assert [float(v) for v in values] == sorted(float(v) for v in values)
    page.screenshot(path=str(shots / "regions.png"), full_page=True)

    # plan a spec from the form: the same best option as the API's dry run
    spec = cloud_spec("from-the-form")
    page.click("nav >> text=Plan a job")
    page.fill("#spec", json.dumps(spec, indent=2))
    page.click("#plan-form button[type=submit]")
    page.wait_for_selector("#plan-options")
    page.wait_for_selector("#plan-chart[data-drawn=true]")
    best = dash.post("/api/v1/plan", json=spec).json()["options"][0]
    assert f"{best['provider']}:{best['region']}" in page.inner_text("#plan-best")
    page.screenshot(path=str(shots / "plan.png"), full_page=True)

    # export: the runs CSV, downloaded
    page.click("nav >> text=Export")
    with page.expect_download() as info:
        page.click("#runs-csv")
    text = Path(info.value.path()).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == RUN_COLUMNS and len(rows) > 5
    page.screenshot(path=str(shots / "export.png"), full_page=True)

    context.close()
    assert outside == [], f"requests left the server: {outside}"
    assert errors == [], f"script errors: {errors}"
    assert sorted(p.name for p in shots.iterdir()) == [
        "export.png",
        "login.png",
        "overview-phone.png",
        "overview.png",
        "plan.png",
        "regions.png",
        "run.png",
        "runs.png",
    ]


def test_the_api_docs_work_offline_after_logging_in(browser: Any, dash: ApiServer) -> None:
    """Swagger UI from the package (no CDN reachable: every outside request is refused), the login
    form sends the browser back to /docs, and "Try it out" calls the API with the login cookie."""
    context, outside = _server_only(browser, dash)
    page = context.new_page()
    page.goto(dash.url + "/docs")
    assert page.url == dash.url + "/login?next=/docs"
    page.fill("#token", TOKEN)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(dash.url + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/jobs']", timeout=15_000)
    block = page.locator(
        ".opblock-get", has=page.locator(".opblock-summary-path[data-path='/api/v1/totals']")
    )
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=15_000)
    assert status.inner_text().strip().startswith("200")
    assert outside == []
    context.close()
