"""`carbonshift submit` and `carbonshift jobs list|show|cancel|logs`: clients of a running
`carbonshift serve`, over its HTTP API.

The server is the authority: a spec is sent as written and validated there, so client and daemon
never disagree about what is valid. Tables are for people (aligned, units on every figure);
`--format json` prints the server's JSON unchanged, for scripts. Exit codes: 2 for input the user
must fix (a spec the server rejected, an unknown job, a missing or wrong token), 1 when the server
cannot be reached or fails.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carbonshift.cli import context
from carbonshift.cli.render import OutputFormat, emit_json, table, warn

if TYPE_CHECKING:
    from carbonshift.client import Client

DEFAULT_LIST_LIMIT = 100  # `jobs list` without --all: the newest this many (one request)
SERVER_HELP = "API address (default: $CARBONSHIFT_SERVER, else http://127.0.0.1:8765)."
ServerOption = Annotated[str | None, typer.Option("--server", help=SERVER_HELP, show_default=False)]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]

jobs_app = typer.Typer(
    name="jobs",
    help="Jobs on a carbonshift server: list, show, cancel, logs.",
    no_args_is_help=True,
    add_completion=False,
)


# ---- connection and errors ----------------------------------------------------------------------


@contextmanager
def _client(server: str | None) -> Iterator[Client]:
    """A client for --server (else the setting), with the token from the settings; every API error
    becomes one `error:` line and an exit code."""
    from carbonshift.client import (
        ApiError,
        Client,
        NotFound,
        SpecRejected,
        Unauthorized,
        sends_token_in_clear,
    )

    settings = context.settings()
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    client = Client(server or settings.server, token or None)
    if sends_token_in_clear(client.server, token):
        warn(
            f"{client.server} is plain http on another machine: the API token crosses the network unencrypted"
        )
    try:
        yield client
    except SpecRejected as exc:
        for field, problem in exc.problems:
            typer.echo(f"error: {field}: {problem}" if field else f"error: {problem}", err=True)
        raise typer.Exit(context.EXIT_USER_ERROR) from None
    except (NotFound, Unauthorized) as exc:
        raise context.fail(str(exc), context.EXIT_USER_ERROR) from None
    except ApiError as exc:
        raise context.fail(str(exc), context.EXIT_FAILURE) from None
    finally:
        client.close()


def _resolve_job(client: Client, job_id: str) -> dict[str, Any]:
    """The job with this id, or with the only id that starts with it (ids are long to type)."""
    from carbonshift.client import NotFound

    try:
        return client.get_job(job_id)
    except NotFound:
        matches = [j for j in client.list_jobs() if str(j.get("id", "")).startswith(job_id)]
        if len(matches) == 1:
            return client.get_job(str(matches[0]["id"]))
        if len(matches) > 1:
            ids = ", ".join(str(j["id"]) for j in matches[:5])
            raise context.fail(f"job id {job_id!r} is ambiguous: {ids}") from None
        raise context.fail(f"no job {job_id!r} on {client.server}; see `carbonshift jobs list`") from None


# ---- formatting ---------------------------------------------------------------------------------


def co2(kg: Any) -> str:
    """Emissions in a unit people read at a glance (t, kg, g, mg, µg), three significant digits."""
    if not isinstance(kg, int | float) or isinstance(kg, bool):
        return "-"
    value = float(kg)
    for unit, size in (("t", 1000.0), ("kg", 1.0), ("g", 1e-3), ("mg", 1e-6)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return "0 g" if value == 0 else f"{value / 1e-9:.3g} µg"


def _pct(value: Any) -> str:
    return f"{float(value):.1f} %" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _intensity(value: Any) -> str:
    return (
        f"{float(value):.0f} g/kWh" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
    )


def _time(value: Any) -> str:
    """'2026-11-24T18:00:00Z' -> '2026-11-24 18:00Z' (UTC, as every time in the API)."""
    if not isinstance(value, str) or not value:
        return "-"
    text = value.replace("T", " ")
    if text.endswith(":00Z") and text.count(":") == 2:
        text = text[:-4] + "Z"
    return text


def _where(item: dict[str, Any]) -> str:
    provider, region = item.get("provider"), item.get("region")
    return f"{provider}:{region}" if provider and region else str(region or provider or "-")


def _best(plan: Any) -> dict[str, Any]:
    """A stored plan's chosen option (`option`; else its best-ranked one), with the plan's own keys."""
    if not isinstance(plan, dict):
        return {}
    chosen = plan.get("option")
    if isinstance(chosen, dict):
        return {**plan, **chosen}
    options = plan.get("options")
    if isinstance(options, list) and options and isinstance(options[0], dict):
        return {**plan, **options[0]}
    return plan


def _schedule_text(job: dict[str, Any]) -> str:
    sched = job.get("schedule") or (job.get("spec") or {}).get("schedule")
    if not isinstance(sched, dict):
        return "once"
    text = f"{sched.get('cron', '?')} {sched.get('timezone', 'UTC')}"
    flex = sched.get("flex")
    return f"{text} +{flex}" if flex and flex != "0s" else text


def _planned_kg(run: dict[str, Any]) -> Any:
    planned = run.get("planned")
    return planned.get("kg_co2e") if isinstance(planned, dict) else None


def _actual_kg(run: dict[str, Any]) -> Any:
    actual = run.get("actual")
    return actual.get("kg_co2e") if isinstance(actual, dict) else None


def _runs(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in job.get("runs") or [] if isinstance(r, dict)]


def render_job_list(jobs: list[dict[str, Any]]) -> str:
    rows = []
    for job in jobs:
        runs = _runs(job)
        last = runs[-1] if runs else {}
        plan = _best(job.get("plan") or (job.get("plans") or [None])[-1])
        rows.append(
            (
                job.get("id", "?"),
                job.get("name", ""),
                job.get("status", ""),
                _schedule_text(job),
                len(runs),
                last.get("status", "-"),
                _where(last) if last else _where(plan),
                _time(last.get("planned_start") if last else plan.get("start")),
                co2(_planned_kg(last) if last else plan.get("kg_co2e")),
                co2(_actual_kg(last)),
            )
        )
    if not rows:
        return "no jobs"
    return table(
        (
            "id",
            "name",
            "status",
            "schedule",
            "runs",
            "last run",
            "where",
            "start (UTC)",
            "planned CO2e",
            "actual CO2e",
        ),
        rows,
        "llllrlllrr",
    )


def render_submitted(job: dict[str, Any]) -> str:
    lines = [f"submitted job {job.get('id')} ({job.get('name', '')}): {job.get('status', '')}"]
    plan = _best(job.get("plan"))
    if plan:
        saving = plan.get("savings_pct")
        lines.append(
            f"plan: {_where(plan)}, {_time(plan.get('start'))} .. {_time(plan.get('end'))}, "
            f"{co2(plan.get('kg_co2e'))} CO2e at {_intensity(plan.get('mean_g_per_kwh'))}"
            + (f", saving {_pct(saving)}" if saving is not None else "")
        )
    if job.get("schedule"):
        lines.append(f"schedule: {_schedule_text(job)}")
    lines.append(f"follow it with: carbonshift jobs show {job.get('id')}")
    return "\n".join(lines)


def render_job(job: dict[str, Any]) -> str:
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    command = spec.get("command")
    command_text = shlex.join(command) if isinstance(command, list) else str(command or "-")
    out = [
        f"job {job.get('id')} ({job.get('name', '')}): {job.get('status', '')}",
        f"  command:  {command_text}",
        f"  duration: {spec.get('duration', '-')}",
        f"  schedule: {_schedule_text(job)}",
        f"  created:  {_time(job.get('created_at'))}",
    ]
    plans = [p for p in job.get("plans") or [] if isinstance(p, dict)]
    out.append("")
    out.append(f"plans ({len(plans)}; * = adopted, the last adopted one is in force):")
    if plans:
        rows: list[tuple[object, ...]] = []
        for i, raw in enumerate(plans, 1):
            p = _best(raw)
            rows.append(
                (
                    f"{i}{'*' if raw.get('adopted', True) else ''}",
                    _time(raw.get("generated_at") or raw.get("created_at")),
                    raw.get("kind", ""),
                    _where(p),
                    _time(p.get("start")),
                    _time(p.get("end")),
                    _intensity(p.get("mean_g_per_kwh")),
                    co2(p.get("kg_co2e")),
                    _pct(p.get("savings_pct")),
                    raw.get("reason") or "",
                )
            )
        out.append(
            table(
                (
                    "#",
                    "planned at (UTC)",
                    "kind",
                    "where",
                    "start (UTC)",
                    "end (UTC)",
                    "intensity",
                    "CO2e",
                    "saving",
                    "why",
                ),
                rows,
                "rlllllrrrl",
            )
        )
    runs = _runs(job)
    out.append("")
    out.append(f"runs ({len(runs)}):")
    if runs:
        rows = []
        for r in runs:
            planned, actual = _planned_kg(r), _actual_kg(r)
            ratio = (
                f"x{float(actual) / float(planned):.3g}"
                if isinstance(actual, int | float) and isinstance(planned, int | float) and planned
                else "-"
            )
            rows.append(
                (
                    r.get("id", "?"),
                    str(r.get("status", ""))
                    + (f" (chunk {r['chunk']['index']}/{r['chunk']['count']})" if r.get("chunk") else ""),
                    _where(r),
                    _time(r.get("planned_start")),
                    _time(r.get("planned_end")),
                    co2(planned),
                    co2(actual),
                    ratio,
                    r.get("error") or r.get("note") or "",
                )
            )
        out.append(
            table(
                (
                    "run",
                    "status",
                    "where",
                    "start (UTC)",
                    "end (UTC)",
                    "planned CO2e",
                    "actual CO2e",
                    "actual/planned",
                    "note",
                ),
                rows,
                "lllllrrrl",
            )
        )
        for r in runs:  # where a run lives at its provider, and where to look at it
            planned = r.get("planned")
            hardware = planned.get("hardware") if isinstance(planned, dict) else None
            if isinstance(hardware, dict):  # the alternative its plan chose (a spec's hardware_options)
                itype = f", {hardware['instance_type']}" if hardware.get("instance_type") else ""
                out.append(
                    f"run {r.get('id', '?')}: hardware {hardware.get('label', '?')} "
                    f"({hardware.get('field', '?')}{itype})"
                )
            if r.get("instance_id"):
                link = f"  {r['console_url']}" if r.get("console_url") else ""
                out.append(f"run {r.get('id', '?')}: instance {r['instance_id']}{link}")
            release = r.get("release")
            if isinstance(release, dict) and release.get("state") == "pending":
                out.append(
                    f"run {r.get('id', '?')}: release pending: instance not confirmed gone after "
                    f"{release.get('attempts', 0)} attempt(s) ({release.get('error') or 'waiting'}); "
                    f"next try {release.get('next_at') or 'soon'}"
                )
    return "\n".join(out)


# ---- commands -----------------------------------------------------------------------------------


def _read_spec(spec: str) -> tuple[str, str]:
    """(text, 'yaml' or 'json'); '-' reads standard input (YAML, which also reads JSON)."""
    if spec == "-":
        return sys.stdin.read(), "yaml"
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise context.fail(f"{spec}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise context.fail(
            f"{spec}: cannot read the job spec ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    return text, "json" if path.suffix.lower() == ".json" else "yaml"


def submit_command(
    spec: Annotated[
        str, typer.Argument(metavar="SPEC", help="Job spec file (YAML or JSON), or - for stdin.")
    ],
    server: ServerOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Submit a job to a carbonshift server: it is planned, stored, and run at the greenest time."""
    text, fmt = _read_spec(spec)
    from carbonshift.client import SpecRejected

    with _client(server) as client:
        try:
            job = client.submit(text, fmt)
        except SpecRejected as exc:
            for field, problem in exc.problems:
                where = f"{spec}: {field}" if field else spec
                typer.echo(f"error: {where}: {problem}", err=True)
            raise typer.Exit(context.EXIT_USER_ERROR) from None
    if output is OutputFormat.JSON:
        emit_json(job)
    else:
        typer.echo(render_submitted(job))


TeamOption = Annotated[str | None, typer.Option("--team", help="Only this team's.", show_default=False)]
ProjectOption = Annotated[
    str | None, typer.Option("--project", help="Only this project's.", show_default=False)
]
OrganisationOption = Annotated[
    str | None, typer.Option("--organisation", help="Only this organisation's.", show_default=False)
]


@jobs_app.command("list")
def list_command(
    server: ServerOption = None,
    output: FormatOption = OutputFormat.TABLE,
    team: TeamOption = None,
    project: ProjectOption = None,
    organisation: OrganisationOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="Show the newest N jobs.")
    ] = DEFAULT_LIST_LIMIT,
    every: Annotated[bool, typer.Option("--all", help="Every job (fetched a page at a time).")] = False,
) -> None:
    """Jobs on the server, newest first, with their last run, planned and actual emissions."""
    labels = {"organisation": organisation, "team": team, "project": project}
    with _client(server) as client:
        if every:
            jobs, more = client.list_jobs(**labels), None
        else:
            jobs, more = client.list_jobs_page(limit, None, **labels)
    if output is OutputFormat.JSON:
        emit_json(jobs)
    else:
        typer.echo(render_job_list(jobs))
    if more is not None:
        warn(f"showing the newest {len(jobs)} jobs; --all lists every job, --limit N the newest N")


@jobs_app.command("show")
def show_command(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id (or a unique prefix).")],
    server: ServerOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """A job's spec, every plan (why it moved), and its runs: planned vs actual."""
    with _client(server) as client:
        job = _resolve_job(client, job_id)
    emit_json(job) if output is OutputFormat.JSON else typer.echo(render_job(job))


@jobs_app.command("cancel")
def cancel_command(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id (or a unique prefix).")],
    server: ServerOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Cancel a job: a waiting run never starts, a running one is stopped."""
    with _client(server) as client:
        job = client.cancel(str(_resolve_job(client, job_id)["id"]))
    if output is OutputFormat.JSON:
        emit_json(job)
    else:
        typer.echo(f"cancelled job {job.get('id')} ({job.get('name', '')}): {job.get('status', '')}")


@jobs_app.command("logs")
def logs_command(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id (or a unique prefix).")],
    run: Annotated[
        str | None, typer.Option("--run", help="Run id (default: the job's latest run).", show_default=False)
    ] = None,
    server: ServerOption = None,
) -> None:
    """A run's captured output (stdout and stderr), as the job wrote it."""
    with _client(server) as client:
        job = _resolve_job(client, job_id)
        runs = _runs(job)
        if run is None:
            if not runs:
                raise context.fail(
                    f"job {job.get('id')} has no runs yet (status: {job.get('status', '?')})",
                    context.EXIT_FAILURE,
                )
            run_id = str(runs[-1].get("id"))
        else:
            matches = [str(r.get("id")) for r in runs if str(r.get("id", "")).startswith(run)]
            run_id = matches[0] if len(matches) == 1 else run
        text = client.run_log(str(job["id"]), run_id)
    sys.stdout.write(text)
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command("submit")(submit_command)
    app.add_typer(jobs_app)
