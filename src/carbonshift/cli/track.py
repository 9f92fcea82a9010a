"""`carbonshift track -- CMD [ARGS...]`: run a command and measure what it used and emitted.

The command's stdin, stdout and stderr are its own; carbonshift speaks only on stderr (warnings and a
one-line summary) and exits with the command's exit code, so it can wrap anything in a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carbonshift.cli import context
from carbonshift.cli.render import warn
from carbonshift.config import Settings
from carbonshift.config.jobspec import parse_functional_unit
from carbonshift.errors import UserInputError

if TYPE_CHECKING:
    from carbonshift.tracker.sendback import ReportTarget

TRACK_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}


def with_tracker_options(settings: Settings, **changes: Any) -> Settings:
    """Settings with `tracker.*` values from command-line options (None: keep the configured value)."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return settings
    return settings.model_copy(update={"tracker": settings.tracker.model_copy(update=given)})


def finish(outcome_report: Any, exit_code: int) -> typer.Exit:
    for line in outcome_report.warnings:
        warn(line)
    typer.echo(outcome_report.summary_line(), err=True)
    return typer.Exit(exit_code)


def track_command(
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="-- CMD [ARGS]...", help="The command to run, after --.", show_default=False),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Where it runs: provider:region (or a location of yours).")
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="Or the grid zone (DE, US-CAL-CISO, ...).")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the JSON report here.")] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", help="Reports and emissions.csv (default: tracker.output_dir or <data dir>/runs)."
        ),
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", min=0.01, help="Seconds between samples (default 1).")
    ] = None,
    prometheus_file: Annotated[
        Path | None, typer.Option("--prometheus-file", help="Write Prometheus text-format metrics here.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve /metrics on 127.0.0.1:PORT while it runs.")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Also add the run to this carbonshift server's ledger (token: CARBONSHIFT_API_TOKEN).",
            show_default=False,
        ),
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option(
            "--report-url",
            help="Also POST the report to this run's report URL on the scheduler (a launched job's "
            "way back; token: CARBONSHIFT_REPORT_TOKEN or --report-token-file).",
            show_default=False,
        ),
    ] = None,
    report_token_file: Annotated[
        Path | None,
        typer.Option(
            "--report-token-file",
            help="Read the run's report token from this file (instead of CARBONSHIFT_REPORT_TOKEN).",
            show_default=False,
        ),
    ] = None,
    team: Annotated[
        str | None, typer.Option("--team", help="Ledger label (default: labels.team).", show_default=False)
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="Ledger label (default: labels.project).", show_default=False),
    ] = None,
    organisation: Annotated[
        str | None,
        typer.Option(
            "--organisation", help="Ledger label (default: labels.organisation).", show_default=False
        ),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(
            "--instance-type",
            help="For embodied carbon: the instance type it runs on (p4d.24xlarge, or aws:p4d.24xlarge "
            "without --region); default: the cloud's instance metadata, else this host's hardware.",
            show_default=False,
        ),
    ] = None,
    functional_unit: Annotated[
        str | None,
        typer.Option(
            "--functional-unit",
            metavar="NAME=COUNT",
            help="What the run produces, e.g. epoch=90: the report adds the SCI score per unit.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a command, measure its energy and emissions; exit with its exit code."""
    from carbonshift.tracker.runner import CommandNotRunnable, run_tracked
    from carbonshift.tracker.tracker import Tracker

    if not command:
        raise UserInputError("CMD", "nothing to run: carbonshift track [OPTIONS] -- CMD [ARGS...]")
    labels = ledger_labels(organisation=organisation, team=team, project=project)
    unit = parse_functional_unit(functional_unit) if functional_unit is not None else None
    if server is not None:
        from carbonshift.client import check_server_url

        server = check_server_url(server)
    target = report_target(report_url, report_token_file)
    settings = with_tracker_options(
        context.settings(), prometheus_file=prometheus_file, prometheus_port=metrics_port
    )
    tracker = Tracker(
        settings,
        region=region,
        zone=zone,
        command=command,
        interval_s=interval,
        output_dir=output_dir,
        report_path=report,
        instance_type=instance_type,
        functional_unit=unit,
    )
    try:
        outcome = run_tracked(tracker, command)
    except CommandNotRunnable as exc:
        raise context.fail(str(exc), exc.exit_code) from None
    if server is not None:
        post_to_ledger(server, settings, outcome.report.to_dict(), labels, command)
    if target is not None:
        send_back(target, settings, outcome.report.to_dict())
    raise finish(outcome.report, outcome.exit_code)


def ledger_labels(**given: str | None) -> dict[str, str | None]:
    """--team/--project/--organisation, checked like a spec's labels (the config's fill the rest)."""
    from pydantic import ValidationError

    from carbonshift.config.jobspec import Labels

    try:
        labels = Labels(**given).merged(context.settings().labels)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise UserInputError(
            f"--{error['loc'][0]}", str(error["msg"]).removeprefix("Value error, ")
        ) from None
    return labels.model_dump()


def post_to_ledger(
    server: str, settings: Settings, report: dict[str, Any], labels: dict[str, str | None], command: list[str]
) -> None:
    """Send the report to the server's ledger. A failure is a warning: the command has run, its
    report is on disk, and the exit code stays the command's."""
    from carbonshift.client import ApiError, Client

    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    client = Client(server, token or None)
    try:
        run = client.post_tracked(report, labels, name=_name_of(command))
    except ApiError as exc:
        warn(f"the run was not added to the ledger at {server}: {exc}")
        return
    finally:
        client.close()
    typer.echo(f"carbonshift: added to the ledger at {server} as run {run.get('id')}", err=True)


def report_target(url: str | None, token_file: Path | None) -> ReportTarget | None:
    """--report-url and its token, checked before the command runs (the token is taken out of the
    environment the command inherits)."""
    import os

    from carbonshift.tracker.sendback import take_report_target

    if url is None:
        if token_file is not None:
            raise UserInputError("--report-token-file", "goes with --report-url")
        return None
    return take_report_target(url, token_file, os.environ)


def send_back(target: ReportTarget, settings: Settings, report: dict[str, Any]) -> None:
    """POST the report to the run's report URL. A failure is a warning: the report is on disk and the
    exit code stays the command's."""
    from carbonshift.tracker.sendback import send_report

    ts = settings.tracker
    problem = send_report(target, report, attempts=ts.report_attempts, retry_s=ts.report_retry_s)
    if problem is not None:
        warn(problem)
        return
    typer.echo(f"carbonshift: report sent to {target.url}", err=True)


def _name_of(command: list[str]) -> str:
    """A job name for the ledger from the program's name: [a-z0-9-], at most 63."""
    import re

    base = Path(command[0]).name.lower() if command else "tracked"
    name = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")[:63]
    return name or "tracked"


def register(app: typer.Typer) -> None:
    app.command("track", context_settings=TRACK_CONTEXT)(track_command)
