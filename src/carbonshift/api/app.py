"""The scheduler's HTTP API: a thin FastAPI layer over the scheduler's Python API.

Routes parse and answer; every decision (planning, storing, launching, cancelling) is the
scheduler's. The scheduler is synchronous (SQLAlchemy, APScheduler), so each call runs in the
worker thread pool and never blocks the event loop. Auth and the body limit are ASGI middleware (see
security.py) so that no route can be forgotten. Error bodies are FastAPI's shape (`{"detail": ...}`)
and carry only messages carbonshift wrote for people: never a token, never a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from carbonshift import __version__
from carbonshift.api.lane import ComputeLane
from carbonshift.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from carbonshift.api.metrics import render_metrics
from carbonshift.api.paging import MAX_LIMIT, decode_cursor, page_json
from carbonshift.api.port import SchedulerPort
from carbonshift.api.security import TOKEN_ENV, BearerAuth, BodyLimit
from carbonshift.api.specs import UnsupportedMediaType, field_loc, problems_detail, read_spec
from carbonshift.config import Settings
from carbonshift.config.document import document_problem, parse_int
from carbonshift.config.jobspec import JobSpec, Labels
from carbonshift.errors import CarbonshiftError, NoDataError, UserInputError
from carbonshift.jsonwire import encode_json
from carbonshift.scheduler import NotFoundError

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_SPEC_BODY = {
    "requestBody": {
        "required": True,
        "description": "a job spec (see `carbonshift schema`), as JSON or as YAML",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
            "application/yaml": {"schema": {"type": "string"}},
            "text/yaml": {"schema": {"type": "string"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": f"no or wrong API token ({TOKEN_ENV})"},
    413: {"description": "request body over max_body_bytes"},
}
_SPEC_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    415: {"description": "body neither JSON nor YAML"},
    422: {"description": "invalid job spec: detail lists each field (loc) and its problem (msg)"},
}


class SafeJSONResponse(JSONResponse):
    """JSON that never fails on a float: NaN or infinity (a division by a zero baseline, say) becomes
    null instead of a 500."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def _json(body: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response from JSON already encoded in a worker thread: building and encoding a large answer
    (a listing of every job, a plan over 139 regions) never holds up the event loop."""
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


async def _spec_from(request: Request) -> JobSpec:
    # parsed in a worker thread: a pathological YAML document takes a second or two to refuse, and
    # the event loop (every other request, /healthz included) must not wait for it
    body = await request.body()
    return await run_in_threadpool(read_spec, body, request.headers.get("content-type"))


def _body_problem(loc: list[str | int], msg: str) -> Response:
    return SafeJSONResponse({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status_code=422)


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """A JSON object body (a run report, a tracked run), or the 422 naming what is wrong with it:
    not JSON, not an object, nested too deeply, a number too long, text that is not Unicode."""
    try:
        data = json.loads(await request.body(), parse_int=parse_int)
    except (ValueError, UnicodeDecodeError):
        data = None
    except RecursionError:
        return _body_problem(["body"], "nested too deeply")
    if not isinstance(data, dict):
        return _body_problem(["body"], "expected a JSON object")
    problem = document_problem(data)
    if problem is not None:
        return _body_problem(field_loc(problem[0]), problem[1])
    return data


def _job_created(job: dict[str, Any]) -> dict[str, Any]:
    """The submit answer: the job as `GET /jobs/{id}` shows it, which includes `plan`, the plan in
    force (added here from the last plan should a view ever leave it out)."""
    if "plan" in job:
        return job
    plans = job.get("plans") or []
    return {**job, "plan": plans[-1] if plans else None}


def _query_problem(exc: UserInputError) -> Response:
    """422 naming the query parameter (`group_by`, `from`, `to`, a filter)."""
    detail = [{"loc": ["query", exc.where], "msg": exc.problem, "type": "value_error"}]
    return SafeJSONResponse({"detail": detail}, status_code=422)


def _run_token(request: Request) -> str | Response:
    """A launched run's own bearer token (report, wheel download), or the 401 to send without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return SafeJSONResponse(
            {"detail": "missing run token: send 'Authorization: Bearer <the run's report token>'"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="carbonshift-run"'},
        )
    return token.strip()


def create_app(scheduler: SchedulerPort, settings: Settings) -> FastAPI:
    """The API over `scheduler`. Auth: the bearer token `settings.api_token` on every route but
    /healthz and a run's report; none configured means open (`serve` allows that on loopback only)."""
    lane = ComputeLane(settings.api_compute_slots)  # plans and listings in turn: see lane.py
    app = FastAPI(
        title="carbonshift",
        version=__version__,
        summary="Carbon-aware job scheduler: submit jobs, see their plans and runs, planned vs actual.",
        default_response_class=SafeJSONResponse,
        redoc_url=None,
        docs_url=None,  # served from the package by docs_ui, not from a CDN
    )
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None

    # ---- errors --------------------------------------------------------------------------------
    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> Response:
        return SafeJSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(UserInputError)
    async def _bad_input(_request: Request, exc: UserInputError) -> Response:
        return SafeJSONResponse({"detail": problems_detail(exc)}, status_code=422)

    @app.exception_handler(UnsupportedMediaType)
    async def _media(_request: Request, exc: UnsupportedMediaType) -> Response:
        return SafeJSONResponse({"detail": str(exc)}, status_code=415)

    @app.exception_handler(NoDataError)
    async def _no_data(_request: Request, exc: NoDataError) -> Response:
        return SafeJSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(CarbonshiftError)
    async def _failed(_request: Request, exc: CarbonshiftError) -> Response:
        log.warning("request failed: %s", exc)
        return SafeJSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, _exc: Exception) -> Response:
        # a bug: the README's JSON error body, never a traceback (uvicorn still logs it)
        return SafeJSONResponse({"detail": "internal error (please report this)"}, status_code=500)

    # ---- routes --------------------------------------------------------------------------------
    @app.get(
        "/healthz",
        tags=["service"],
        summary="Liveness and the daemon's role (no auth)",
        responses={503: {"description": "stale: the active daemon lost its lock or its tick stopped"}},
    )
    async def healthz() -> Response:
        # role tells a load balancer which instance is active: `active` only while the daemon holds the
        # lock and its tick is alive (last tick age in the body), else 503; nothing here is secret
        health = scheduler.health()
        code = 200 if health.get("status") == "ok" else 503
        return SafeJSONResponse({**health, "version": __version__}, status_code=code)

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics: runs by status, planned and actual kg CO2e, saving",
        response_class=PlainTextResponse,
        responses=_ERRORS,
    )
    async def metrics() -> Response:
        text = await run_in_threadpool(lambda: render_metrics(scheduler.metrics()))
        return Response(text, media_type=METRICS_CONTENT_TYPE)

    api = APIRouter(prefix=API_PREFIX)

    @api.post(
        "/jobs",
        status_code=201,
        tags=["jobs"],
        summary="Submit a job: it is planned and stored, and runs at its planned time",
        openapi_extra=_SPEC_BODY,
        responses=_SPEC_ERRORS,
    )
    async def submit(request: Request) -> Response:
        spec = await _spec_from(request)

        def work() -> tuple[str, bytes]:
            job = _job_created(scheduler.submit(spec).to_dict())
            return str(job["id"]), encode_json(job)

        job_id, body = await run_in_threadpool(work)
        return _json(body, 201, {"Location": f"{API_PREFIX}/jobs/{job_id}"})

    @api.get(
        "/jobs",
        tags=["jobs"],
        summary="Jobs, newest first: status, the plan in force and the runs; `limit` and `cursor` page",
        responses={
            **_ERRORS,
            422: {"description": "limit out of range, or a cursor this server did not give"},
        },
    )
    async def list_jobs(
        full: Annotated[
            bool, Query(description="each job exactly as GET /jobs/{id} shows it (every plan, run events)")
        ] = False,
        organisation: Annotated[
            str | None, Query(description="only jobs with this organisation label")
        ] = None,
        team: Annotated[str | None, Query(description="only jobs with this team label")] = None,
        project: Annotated[str | None, Query(description="only jobs with this project label")] = None,
        limit: Annotated[
            int | None,
            Query(ge=1, le=MAX_LIMIT, description="at most this many jobs; `next_cursor` fetches the rest"),
        ] = None,
        cursor: Annotated[
            str | None, Query(description="the `next_cursor` of the previous page, unchanged")
        ] = None,
    ) -> Response:
        labels = {"organisation": organisation, "team": team, "project": project}
        try:
            after = decode_cursor(cursor) if cursor is not None else None
        except UserInputError as exc:
            return _query_problem(exc)

        def work() -> bytes:
            # only the page is read (a range of the index on the list's order) and, without `full`,
            # without the history that was most of a long listing's time and size; a summary comes
            # with its JSON written from the stored rows
            found = scheduler.list_jobs_page(limit, after, full=full, **labels)
            return page_json(found.jobs, found.more, encode_json)

        return _json(await lane.run(work))

    @api.get(
        "/jobs/{job_id}",
        tags=["jobs"],
        summary="One job: spec, every plan, runs with status, planned vs actual",
        responses={**_ERRORS, 404: {"description": "no such job"}},
    )
    async def get_job(job_id: str) -> Response:
        return _json(await lane.run(lambda: encode_json(scheduler.get_job(job_id).to_dict())))

    @api.delete(
        "/jobs/{job_id}",
        tags=["jobs"],
        summary="Cancel a job: a waiting run never starts, a running one is stopped",
        responses={**_ERRORS, 404: {"description": "no such job"}},
    )
    async def cancel(job_id: str) -> Response:
        return _json(await run_in_threadpool(lambda: encode_json(scheduler.cancel(job_id).to_dict())))

    @api.get(
        "/jobs/{job_id}/runs/{run_id}/log",
        tags=["jobs"],
        summary="A run's captured output (text)",
        response_class=PlainTextResponse,
        responses={**_ERRORS, 404: {"description": "no such job or run"}},
    )
    async def run_log(job_id: str, run_id: str) -> Response:
        text = await run_in_threadpool(scheduler.run_log, job_id, run_id)
        return PlainTextResponse(text)

    @api.post(
        "/plan",
        tags=["plan"],
        summary="Dry run: the ranked plan for a spec; nothing is stored or launched",
        openapi_extra=_SPEC_BODY,
        responses=_SPEC_ERRORS,
    )
    async def dry_run(
        request: Request,
        top: Annotated[int | None, Query(ge=1, le=10_000, description="only the N best options")] = None,
    ) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")

        def work() -> bytes:
            # reading the spec (off the event loop, as `_spec_from` says why) and planning it in one
            # worker-thread hop: each hop is a hand-off between the loop and the pool, and a wait for
            # a free worker under load
            spec = read_spec(body, content_type)
            return encode_json(scheduler.dry_run(spec).to_dict(top=top))

        return _json(await lane.run(work))

    @api.post(
        "/runs/{run_id}/report",
        tags=["runs"],
        summary="A launched job's tracker reports back, with its per-run token (not the API token)",
        responses={
            401: {"description": "no bearer token"},
            403: {"description": "not this run's token"},
            404: {"description": "no such run"},
            413: {"description": "request body over max_body_bytes"},
            422: {"description": "the body is not a JSON object"},
        },
    )
    async def report(run_id: str, request: Request) -> Response:
        run_token = _run_token(request)
        if isinstance(run_token, Response):
            return run_token
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        try:
            view = await run_in_threadpool(scheduler.record_report, run_id, run_token, data)
        except PermissionError:
            return SafeJSONResponse({"detail": "this token is not the run's report token"}, status_code=403)
        return SafeJSONResponse(view.to_dict())

    @api.get(
        "/totals",
        tags=["ledger"],
        summary="Ledger totals of finished runs: energy, kg CO2e actual, planned, baseline and saved",
        responses={**_ERRORS, 422: {"description": "an unknown group_by key or a malformed time"}},
    )
    async def totals(
        group_by: Annotated[
            str | None,
            Query(description="comma-separated: organisation, team, project, provider, region, month"),
        ] = None,
        start: Annotated[str | None, Query(alias="from", description="runs that ended at or after")] = None,
        end: Annotated[str | None, Query(alias="to", description="runs that ended before")] = None,
        organisation: Annotated[str | None, Query()] = None,
        team: Annotated[str | None, Query()] = None,
        project: Annotated[str | None, Query()] = None,
        provider: Annotated[str | None, Query()] = None,
        region: Annotated[str | None, Query(description="provider:region")] = None,
    ) -> Response:
        filters = {
            k: v
            for k, v in {
                "organisation": organisation,
                "team": team,
                "project": project,
                "provider": provider,
                "region": region,
            }.items()
            if v
        }
        try:
            data = await run_in_threadpool(lambda: scheduler.totals(group_by, start, end, **filters))
        except UserInputError as exc:
            return _query_problem(exc)
        return SafeJSONResponse(data)

    @api.post(
        "/ledger/runs",
        status_code=201,
        tags=["ledger"],
        summary="Add a run measured by `carbonshift track` to the ledger (its report, with labels)",
        responses={**_ERRORS, 422: {"description": "not a tracker report, or a bad label"}},
    )
    async def ledger_run(request: Request) -> Response:
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        report = data.get("report")
        if not isinstance(report, dict):
            return _body_problem(
                ["body", "report"], 'expected {"report": <a carbonshift track report>, "labels": {...}}'
            )
        try:
            labels = Labels.model_validate(data.get("labels") or {})
        except ValidationError as exc:
            return SafeJSONResponse(
                {
                    "detail": [
                        {"loc": ["body", "labels", *e["loc"]], "msg": e["msg"], "type": "value_error"}
                        for e in exc.errors(include_url=False)
                    ]
                },
                status_code=422,
            )
        name = data.get("name") if isinstance(data.get("name"), str) else None
        view = await run_in_threadpool(lambda: scheduler.record_tracked(report, labels, name))
        return SafeJSONResponse(view.to_dict(), status_code=201)

    @api.get(
        "/runs/{run_id}/wheel/{filename}",
        tags=["runs"],
        summary="carbonshift's own wheel, for a launched run's bootstrap (with the run's token)",
        responses={
            401: {"description": "no bearer token"},
            403: {"description": "not this run's token"},
            404: {"description": "no such run, or not this daemon's wheel"},
        },
    )
    async def wheel(run_id: str, filename: str, request: Request) -> Response:
        from starlette.responses import FileResponse

        from carbonshift.providers.selfwheel import own_wheel

        run_token = _run_token(request)
        if isinstance(run_token, Response):
            return run_token
        if not await run_in_threadpool(scheduler.run_token_ok, run_id, run_token):
            return SafeJSONResponse({"detail": "this token is not the run's report token"}, status_code=403)
        own = await run_in_threadpool(own_wheel, settings.resolved_data_dir() / "wheels")
        if filename != own.filename:
            return SafeJSONResponse({"detail": f"this daemon serves {own.filename}"}, status_code=404)
        return FileResponse(own.path, media_type="application/octet-stream", filename=own.filename)

    app.include_router(api)
    from carbonshift.api import dashboard, docs_ui  # Jinja2 only for an app that serves pages

    dashboard.install(app, scheduler, settings, token)
    docs_ui.install(app, "carbonshift")
    _document(app)
    # the last middleware added runs first: auth before a byte of the body is read
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BearerAuth, token=token)
    return app


def _document(app: FastAPI) -> None:
    """OpenAPI with the job spec's schema and the bearer scheme (every route but /healthz needs it)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        spec_schema = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(spec_schema.pop("$defs", {}))
        spec_schema.pop("$schema", None)
        schemas["JobSpec"] = spec_schema
        components["securitySchemes"] = {
            "apiToken": {"type": "http", "scheme": "bearer", "description": f"the value of {TOKEN_ENV}"},
            "runToken": {"type": "http", "scheme": "bearer", "description": "a run's own report token"},
        }
        schema["security"] = [{"apiToken": []}]
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                if path == "/healthz":
                    operation["security"] = []
                elif path.endswith("/report"):
                    operation["security"] = [{"runToken": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
