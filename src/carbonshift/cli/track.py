"""`carbonshift track -- CMD [ARGS...]`: run a command and measure what it used and emitted.

The command's stdin, stdout and stderr are its own; carbonshift speaks only on stderr (warnings and a
one-line summary) and exits with the command's exit code, so it can wrap anything in a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from carbonshift.cli import context
from carbonshift.cli.render import warn
from carbonshift.config import Settings
from carbonshift.errors import UserInputError

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
) -> None:
    """Run a command, measure its energy and emissions; exit with its exit code."""
    from carbonshift.tracker.runner import CommandNotRunnable, run_tracked
    from carbonshift.tracker.tracker import Tracker

    if not command:
        raise UserInputError("CMD", "nothing to run: carbonshift track [OPTIONS] -- CMD [ARGS...]")
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
    )
    try:
        outcome = run_tracked(tracker, command)
    except CommandNotRunnable as exc:
        raise context.fail(str(exc), exc.exit_code) from None
    raise finish(outcome.report, outcome.exit_code)


def register(app: typer.Typer) -> None:
    app.command("track", context_settings=TRACK_CONTEXT)(track_command)
