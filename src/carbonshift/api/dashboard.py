"""The web dashboard served by `carbonshift serve` at `/`: overview, runs, regions, plan and export.

Server-rendered with Jinja2; charts are drawn in the browser by uPlot, vendored under static/vendor
(no build step, no CDN: the pages work offline). Every number comes from the same Python API the HTTP
API uses: `Scheduler.totals` (the ledger) for sums, `list_jobs` for runs, `dry_run` for plans, the
catalog and the intensity service for regions and curves.

Auth is the API token: the login form puts it in an HttpOnly, SameSite=Strict cookie that the
BearerAuth middleware accepts like the bearer header (see security.py). Forms POST, and a POST is
refused unless its Origin (or Referer) is this server.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from carbonshift import __version__
from carbonshift.api.port import SchedulerPort
from carbonshift.api.security import COOKIE_NAME, SAFE_NEXT, same_origin, tokens_match
from carbonshift.api.specs import problems_detail, read_spec
from carbonshift.config import Settings
from carbonshift.equivalents import CAR_SOURCE, km_by_car
from carbonshift.errors import CarbonshiftError, UserInputError
from carbonshift.intensity.types import IntensitySeries, TimeSpan
from carbonshift.ledger_figures import FIGURES
from carbonshift.scheduler.states import RunState

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LABELS = ("organisation", "team", "project")
RUNS_PAGE_JOBS = 500  # the runs page shows the runs of the newest jobs; the CSV export has every one
TOTAL_KEYS = ("runs", *FIGURES)
# CodeCarbon's emissions.csv names where they apply; carbonshift's own columns after them
RUN_COLUMNS = (
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
    "job_id",
    "job_name",
    "status",
    "organisation",
    "team",
    "planned_emissions",
    "baseline_emissions",
    "mean_g_per_kwh",
)


# ---- data --------------------------------------------------------------------------------------------
def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _labels(job: dict[str, Any], run: dict[str, Any]) -> dict[str, str | None]:
    merged: dict[str, Any] = {}
    for source in (job.get("spec", {}).get("labels"), job.get("labels"), run.get("labels")):
        if isinstance(source, dict):
            merged.update({k: v for k, v in source.items() if v})
    return {k: (str(merged[k]) if merged.get(k) else None) for k in LABELS}


def run_rows(jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run, newest first: what the runs page lists and the CSV exports."""
    rows: list[dict[str, Any]] = []
    for job in jobs:
        for run in job.get("runs") or []:
            planned = run.get("planned") or {}
            actual = run.get("actual") or {}
            start = (
                _parse(actual.get("start"))
                or _parse(run.get("launched_at"))
                or _parse(run.get("planned_start"))
            )
            rows.append(
                {
                    "job_id": job["id"],
                    "job_name": job.get("name"),
                    "run_id": run["id"],
                    "status": run.get("status"),
                    "provider": run.get("provider"),
                    "region": run.get("region"),
                    "zone": run.get("zone"),
                    **_labels(job, run),
                    "planned_kg": _num(planned.get("kg_co2e")),
                    "planned_g": _num(planned.get("mean_g_per_kwh")),
                    "planned_start": _parse(run.get("planned_start")),
                    "planned_end": _parse(run.get("planned_end")),
                    "baseline_kg": _num(planned.get("baseline_kg_co2e")),
                    "actual_kg": _num(actual.get("kg_co2e")),
                    "embodied_kg": _num(actual.get("embodied_kg_co2e")),
                    "actual_g": _num(actual.get("mean_g_per_kwh")),
                    "actual_start": _parse(actual.get("start")),
                    "actual_end": _parse(actual.get("end")),
                    "duration_s": _num(actual.get("duration_s")),
                    "energy_kwh": _num(actual.get("energy_kwh")),
                    "launched": run.get("launched_at") is not None,
                    "when": start or _parse(run.get("created_at")),
                    "window_earliest": _parse((run.get("window") or {}).get("earliest")),
                    "deadline": _parse((run.get("window") or {}).get("deadline")),
                }
            )
    rows.sort(key=lambda r: r["when"] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return rows


def fallback_totals(
    rows: Sequence[dict[str, Any]],
    group_by: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    **filters: str,
) -> dict[str, Any]:
    """The ledger's answer computed from the runs, for a scheduler without `totals` (a test stand-in):
    the runs that ended with a measurement, in the month they ended."""
    groups: dict[tuple[str | None, ...], dict[str, Any]] = {}
    total = dict.fromkeys(TOTAL_KEYS, 0.0)
    total["runs"] = 0
    for row in rows:
        # as the ledger counts: a run that ended with a measurement, in the month it ended
        when = row["actual_end"]
        if row["actual_kg"] is None or when is None:
            continue
        if (start is not None and when < start) or (end is not None and when >= end):
            continue
        if any(row.get(k) != v for k, v in filters.items() if v):
            continue
        key = tuple(when.strftime("%Y-%m") if g == "month" else row.get(g) for g in group_by)
        bucket = groups.setdefault(key, {**dict.fromkeys(TOTAL_KEYS, 0.0), "runs": 0})
        planned = row["planned_kg"] or 0.0
        baseline = row["baseline_kg"] if row["baseline_kg"] is not None else planned
        kg = row["actual_kg"] if row["actual_kg"] is not None else planned
        for target in (bucket, total):
            target["runs"] += 1
            target["energy_kwh"] += row["energy_kwh"] or 0.0
            target["kg_co2e"] += kg
            target["embodied_kg_co2e"] += row["embodied_kg"] or 0.0
            target["total_kg_co2e"] += kg + (row["embodied_kg"] or 0.0)
            target["planned_kg_co2e"] += planned
            target["baseline_kg_co2e"] += baseline
            target["saved_kg_co2e"] += baseline - kg
    return {
        "group_by": list(group_by),
        "from": None if start is None else start.isoformat(),
        "to": None if end is None else end.isoformat(),
        "groups": [
            {"key": dict(zip(group_by, key, strict=True)), **values}
            for key, values in sorted(groups.items(), key=lambda kv: [str(k) for k in kv[0]])
        ],
        "total": total,
    }


def totals(
    scheduler: SchedulerPort,
    group_by: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
    **filters: str,
) -> dict[str, Any]:
    """The scheduler's ledger (`Scheduler.totals`), or the same shape computed from its runs."""
    ledger: Callable[..., dict[str, Any]] | None = getattr(scheduler, "totals", None)
    if callable(ledger):
        return ledger(list(group_by), start, end, **filters)
    jobs = [v.to_dict() for v in scheduler.list_jobs()]
    return fallback_totals(run_rows(jobs), group_by, start, end, **filters)


def month_start(now: datetime, back: int = 0) -> datetime:
    year, month = now.year, now.month - back
    while month < 1:
        month += 12
        year -= 1
    return datetime(year, month, 1, tzinfo=UTC)


def series_points(series: IntensitySeries) -> tuple[list[int], list[float | None]]:
    """A step series as uPlot points: each value at its interval's start, repeated at the last edge."""
    xs = [int(x) for x in series.edges_s]
    ys: list[float | None] = [None if math.isnan(v) else round(float(v), 2) for v in series.values]
    return xs, [*ys, ys[-1] if ys else None]


# ---- formatting --------------------------------------------------------------------------------------
def fmt_kg(value: Any) -> str:
    kg = _num(value)
    if kg is None:
        return "–"
    if abs(kg) >= 1000:
        return f"{kg / 1000:,.2f} t CO2e"
    if abs(kg) >= 1:
        return f"{kg:,.2f} kg CO2e"
    if abs(kg) >= 0.001:
        return f"{kg * 1000:,.1f} g CO2e"
    return f"{kg * 1000:.3g} g CO2e" if kg else "0 kg CO2e"


def fmt_kwh(value: Any) -> str:
    kwh = _num(value)
    if kwh is None:
        return "–"
    return f"{kwh:,.2f} kWh" if abs(kwh) >= 1 else f"{kwh * 1000:.3g} Wh" if kwh else "0 kWh"


def fmt_g(value: Any) -> str:
    g = _num(value)
    return "–" if g is None else f"{g:,.0f} g/kWh"


def fmt_time(value: Any) -> str:
    when = value if isinstance(value, datetime) else _parse(value)
    return "–" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _next_page(given: str | None) -> str:
    """Where to go after logging in: the page that sent the browser here, if it is a plain local path."""
    if given and SAFE_NEXT.match(given) is not None:
        return given
    return "/"


def printable(value: Any) -> Any:
    """A string that cannot be encoded as UTF-8 (a lone surrogate in data stored before validation
    refused it) shown with an escape instead of failing the page with a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


# ---- the routes --------------------------------------------------------------------------------------
def install(app: FastAPI, scheduler: SchedulerPort, settings: Settings, token: str | None) -> None:
    """Add the dashboard's pages, its static files and the login form to `app`."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(kg=fmt_kg, kwh=fmt_kwh, g=fmt_g, time=fmt_time)
    env.finalize = printable  # text stored before validation refused it still renders (escaped)
    env.globals.update(version=__version__, auth=token is not None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def catalog() -> Any:
        cat = getattr(scheduler, "catalog", None)
        if cat is None:
            from carbonshift import runtime

            cat = runtime.build_catalog(settings)
        return cat

    def service() -> Any:
        from carbonshift import runtime

        return runtime.build_service(settings)

    def jobs(
        limit: int | None = None, team: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` jobs (None: every one, for the export), as the job list summarises them:
        runs with their plans and reports, without the history of events and ranked options."""
        return [v.to_dict() for v in scheduler.list_jobs_page(limit, None, team=team, project=project).jobs]

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def forged(request: Request) -> Response | None:
        if same_origin(list(request.scope.get("headers", []))):
            return None
        return HTMLResponse("cross-site form posts are refused (Origin is not this server)", status_code=403)

    # ---- login -----------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if token is None:
            return RedirectResponse("/", status_code=303)
        return page(
            request,
            "login.html",
            title="Log in",
            error=None,
            next=_next_page(request.query_params.get("next")),
        )

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        refused = forged(request)
        if refused is not None:
            return refused
        if token is None:
            return RedirectResponse("/", status_code=303)
        fields = await form(request)
        given = fields.get("token", "").strip()
        back = _next_page(fields.get("next"))
        if not given or not tokens_match(given, token):
            return page(
                request, "login.html", 401, title="Log in", error="That is not the API token.", next=back
            )
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            given,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        refused = forged(request)
        if refused is not None:
            return refused
        response = RedirectResponse("/login" if token is not None else "/", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    # ---- overview --------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def overview(request: Request) -> Response:
        def work() -> dict[str, Any]:
            now = datetime.now(UTC)
            this_month = month_start(now)
            year_ago = month_start(now, 11)
            month = totals(scheduler, [], this_month, None)["total"]
            by_month = totals(scheduler, ["month"], year_ago, None)["groups"]
            teams = totals(scheduler, ["team"], year_ago, None)["groups"]
            projects = totals(scheduler, ["project"], year_ago, None)["groups"]

            def top(groups: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
                ranked = sorted(groups, key=lambda g: -(g.get("kg_co2e") or 0.0))[:5]
                return [{**g, "name": g["key"].get(label) or f"(no {label})"} for g in ranked]

            months = sorted(by_month, key=lambda g: str(g["key"].get("month")))
            chart = {
                "x": list(range(len(months))),
                "labels": [_month_label(str(g["key"]["month"])) for g in months],
                "series": [
                    {"label": "kg CO2e", "values": [g.get("kg_co2e") or 0.0 for g in months]},
                    {
                        "label": "embodied kg CO2e",
                        "values": [g.get("embodied_kg_co2e") or 0.0 for g in months],
                    },
                    {
                        "label": "baseline kg CO2e",
                        "values": [g.get("baseline_kg_co2e") or 0.0 for g in months],
                    },
                ],
                "y": "kg CO2e",
                "bars": True,
            }
            saved = float(month.get("saved_kg_co2e") or 0.0)
            return {
                "month_label": this_month.strftime("%B %Y"),
                "month": month,
                "km": km_by_car(saved),
                "km_emitted": km_by_car(float(month.get("kg_co2e") or 0.0)),
                "car_source": CAR_SOURCE,
                "chart": chart if months else None,
                "teams": top(teams, "team"),
                "projects": top(projects, "project"),
                "ledger": callable(getattr(scheduler, "totals", None)),
            }

        return page(
            request, "overview.html", title="Overview", nav="overview", **await run_in_threadpool(work)
        )

    # ---- runs ------------------------------------------------------------------------------------
    @app.get("/runs", include_in_schema=False)
    async def runs(request: Request, team: str = "", project: str = "", state: str = "") -> Response:
        def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            # the newest RUNS_PAGE_JOBS jobs with the labels chosen (filtered by the database), and the
            # labels the ledger knows for the choices: never a read of every job
            chosen = run_rows(jobs(RUNS_PAGE_JOBS, team=team or None, project=project or None))
            labelled = totals(scheduler, ["team", "project"], None, None)["groups"]
            return chosen, labelled

        rows, labelled = await run_in_threadpool(work)
        teams = sorted(
            {r["team"] for r in rows if r["team"]} | {g["key"]["team"] for g in labelled if g["key"]["team"]}
        )
        projects = sorted(
            {r["project"] for r in rows if r["project"]}
            | {g["key"]["project"] for g in labelled if g["key"]["project"]}
        )
        shown = [
            r
            for r in rows
            if (not team or r["team"] == team)
            and (not project or r["project"] == project)
            and (not state or r["status"] == state)
        ]
        return page(
            request,
            "runs.html",
            title="Jobs and runs",
            nav="runs",
            rows=shown,
            total=len(rows),
            newest=RUNS_PAGE_JOBS,
            teams=teams,
            projects=projects,
            states=[s.value for s in RunState],
            chosen={"team": team, "project": project, "state": state},
        )

    @app.get("/runs/{run_id}", include_in_schema=False)
    async def run_detail(request: Request, run_id: str) -> Response:
        def work() -> dict[str, Any] | None:
            try:  # the run and its job alone, not a search of every job
                job = scheduler.get_job(str(scheduler.get_run(run_id).to_dict()["job_id"])).to_dict()
            except LookupError:
                return None
            row = next(r for r in run_rows([job]) if r["run_id"] == run_id)
            run = next(r for r in job["runs"] if r["id"] == run_id)
            chart, note = _run_chart(row)
            return {"row": row, "job": job, "run": run, "chart": chart, "chart_note": note}

        def _run_chart(row: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
            # the scheduler stores each plan's numbers, not the series it planned on: fetch the curve
            # again for the run's zone and window ("data as of now")
            times = [
                t
                for t in (
                    row["window_earliest"],
                    row["deadline"],
                    row["planned_start"],
                    row["planned_end"],
                    row["actual_start"],
                    row["actual_end"],
                )
                if t is not None
            ]
            if not times or not row["provider"] or not row["region"]:
                return None, "no region or window for this run yet"
            start, end = min(times), max(times)
            if end <= start:
                end = start + timedelta(hours=1)
            try:
                region = catalog().region(row["provider"], row["region"])
                series = service().series(region.grid_zone(), TimeSpan(start, end), settings.signal)
            except CarbonshiftError as exc:
                return None, f"no intensity curve: {exc}"
            xs, ys = series_points(series)
            bands = []
            if row["planned_start"] and row["planned_end"]:
                bands.append(
                    {
                        "label": "planned",
                        "from": row["planned_start"].timestamp(),
                        "to": row["planned_end"].timestamp(),
                        "color": "rgba(40,120,220,0.18)",
                    }
                )
            if row["actual_start"] and row["actual_end"]:
                a_end = max(row["actual_end"], row["actual_start"] + timedelta(minutes=1))
                bands.append(
                    {
                        "label": "actual",
                        "from": row["actual_start"].timestamp(),
                        "to": a_end.timestamp(),
                        "color": "rgba(220,110,30,0.30)",
                    }
                )
            chart = {
                "x": xs,
                "series": [{"label": f"{row['zone']} g/kWh", "values": ys}],
                "y": "g/kWh",
                "bands": bands,
            }
            return chart, "intensity curve: data as of now (re-fetched for the run's zone and window)"

        data = await run_in_threadpool(work)
        if data is None:
            return page(request, "missing.html", 404, title="No such run", what=f"run {run_id}")
        return page(request, "run.html", title=f"Run {run_id}", nav="runs", **data)

    # ---- regions ---------------------------------------------------------------------------------
    @app.get("/regions", include_in_schema=False)
    async def regions(request: Request) -> Response:
        provider = request.query_params.get("provider", "")
        selected = request.query_params.getlist("sel")

        def work() -> dict[str, Any]:
            cat = catalog()
            listed = [r for r in cat.regions() if not provider or r.provider == provider]
            chart = None
            notices: list[str] = []
            if selected:
                now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                span = TimeSpan(now, now + timedelta(hours=48))
                picked = []
                for ref in selected[:8]:
                    p, _, name = ref.partition(":")
                    try:
                        picked.append(cat.region(p, name))
                    except UserInputError as exc:
                        notices.append(str(exc))
                svc = service()
                try:
                    by_zone = svc.series_many([r.grid_zone() for r in picked], span, settings.signal)
                except CarbonshiftError as exc:  # no source answered: say so on the page
                    notices.append(f"no intensity curve: {exc}")
                    picked = []
                notices += list(svc.notices)
                grid = list(range(int(span.start.timestamp()), int(span.end.timestamp()) + 1, 3600))
                lines = []
                for r in picked:
                    xs, ys = series_points(by_zone[r.grid_zone()])
                    lines.append({"label": r.key, "values": _resample(xs, ys, grid)})
                chart = {"x": grid, "series": lines, "y": "g/kWh"} if lines else None
            return {
                "regions": listed,
                "providers": cat.providers(),
                "provider": provider,
                "selected": selected,
                "chart": chart,
                "notices": notices,
            }

        return page(request, "regions.html", title="Regions", nav="regions", **await run_in_threadpool(work))

    # ---- plan ------------------------------------------------------------------------------------
    @app.get("/plan", include_in_schema=False)
    async def plan_form(request: Request) -> Response:
        return page(
            request, "plan.html", title="Plan a job", nav="plan", spec_text="", advice=None, errors=[]
        )

    @app.post("/plan", include_in_schema=False)
    async def plan_spec(request: Request) -> Response:
        refused = forged(request)
        if refused is not None:
            return refused
        spec_text = (await form(request)).get("spec", "")

        def work() -> dict[str, Any]:
            try:
                spec = read_spec(spec_text.encode(), "application/yaml")  # YAML is a superset of JSON
                advice = scheduler.dry_run(spec)
            except UserInputError as exc:
                return {"advice": None, "errors": _problems(exc)}
            except CarbonshiftError as exc:
                return {"advice": None, "errors": [str(exc)]}
            answer = advice.to_dict(top=10)
            raw: Any = answer.get("options") or []
            options = [{**o, "ref": f"{o['provider']}:{o['region']}"} for o in raw]
            chart = None
            refs = [o["ref"] for o in options[:5] if o.get("ref") in advice.series]
            if refs:
                first = advice.series[refs[0]]
                grid = [int(x) for x in first.edges_s]
                lines = []
                for ref in refs:
                    xs, ys = series_points(advice.series[ref])
                    lines.append({"label": ref, "values": _resample(xs, ys, grid)})
                bands = []
                s, e = _parse(options[0].get("start")), _parse(options[0].get("end"))
                if s and e:
                    bands.append(
                        {
                            "label": "best",
                            "from": s.timestamp(),
                            "to": e.timestamp(),
                            "color": "rgba(40,160,80,0.18)",
                        }
                    )
                chart = {"x": grid, "series": lines, "y": "g/kWh", "bands": bands}
            best_saved = _num(options[0].get("savings_kg")) if options else None
            return {
                "advice": answer,
                "options": options,
                "chart": chart,
                "errors": [],
                "km": None if best_saved is None else km_by_car(best_saved),
                "car_source": CAR_SOURCE,
            }

        data = await run_in_threadpool(work)
        status = 422 if data["errors"] else 200
        return page(request, "plan.html", status, title="Plan a job", nav="plan", spec_text=spec_text, **data)

    # ---- export ----------------------------------------------------------------------------------
    @app.get("/export", include_in_schema=False)
    async def export(request: Request) -> Response:
        return page(request, "export.html", title="Export", nav="export", columns=RUN_COLUMNS)

    @app.get("/export/runs.csv", include_in_schema=False)
    async def runs_csv() -> Response:
        def work() -> str:
            rows = run_rows(jobs())
            cat = catalog()
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(RUN_COLUMNS)
            for r in rows:
                country = ""
                if r["provider"] and r["region"]:
                    try:
                        country = cat.region(r["provider"], r["region"]).country or ""
                    except CarbonshiftError:
                        country = ""
                cloud = r["provider"] not in (None, "local")
                writer.writerow(
                    [
                        fmt_iso(r["when"]),
                        r["project"] or "",
                        r["run_id"],
                        "" if r["duration_s"] is None else r["duration_s"],
                        _csv_num(r["actual_kg"]),
                        _csv_num(r["energy_kwh"]),
                        country,
                        r["zone"] or "",
                        r["provider"] if cloud else "",
                        r["region"] if cloud else "",
                        r["job_id"],
                        r["job_name"] or "",
                        r["status"] or "",
                        r["organisation"] or "",
                        r["team"] or "",
                        _csv_num(r["planned_kg"]),
                        _csv_num(r["baseline_kg"]),
                        _csv_num(r["actual_g"] if r["actual_g"] is not None else r["planned_g"]),
                    ]
                )
            return out.getvalue()

        return _csv(await run_in_threadpool(work), "carbonshift-runs.csv")

    @app.get("/export/totals.csv", include_in_schema=False)
    async def totals_csv(group_by: str = "month,team,project") -> Response:
        keys = [k for k in (part.strip() for part in group_by.split(",")) if k in {"month", *LABELS}]

        def work() -> str:
            answer = totals(scheduler, keys, None, None)
            out = io.StringIO()
            writer = csv.writer(out)
            names = [k if k != "project" else "project_name" for k in keys]
            writer.writerow(
                [
                    *names,
                    "runs",
                    "energy_consumed",
                    "emissions",
                    "embodied_emissions",
                    "total_emissions",
                    "planned_emissions",
                    "baseline_emissions",
                    "saved_emissions",
                ]
            )
            for g in answer["groups"]:
                writer.writerow(
                    [
                        *(g["key"].get(k) or "" for k in keys),
                        g.get("runs", 0),
                        *(_csv_num(g.get(k)) for k in TOTAL_KEYS[1:]),
                    ]
                )
            return out.getvalue()

        return _csv(await run_in_threadpool(work), "carbonshift-totals.csv")

    # links kept stable for the templates
    env.globals["qs"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v})


def _problems(exc: UserInputError) -> list[str]:
    """A spec's problems as lines, each naming its field ('window.deadline: ...')."""
    out = []
    for problem in problems_detail(exc):
        loc = [str(part) for part in problem["loc"] if part != "body"]
        out.append(f"{'.'.join(loc)}: {problem['msg']}" if loc else str(problem["msg"]))
    return out


def _month_label(month: str) -> str:
    """'2026-11' -> 'Nov 2026'."""
    year, _, number = month.partition("-")
    return f"{datetime(int(year), int(number), 1, tzinfo=UTC):%b %Y}"


def _resample(xs: list[int], ys: list[float | None], grid: list[int]) -> list[float | None]:
    """A step series read at each grid time (the value of the interval holding it)."""
    out: list[float | None] = []
    i = 0
    for t in grid:
        while i + 1 < len(xs) and xs[i + 1] <= t:
            i += 1
        out.append(ys[i] if xs and xs[0] <= t <= xs[-1] else None)
    return out


def fmt_iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _csv_num(value: Any) -> str:
    number = _num(value)
    return "" if number is None else repr(round(number, 12))


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
