"""`carbonshift plan`: where and when should this job run? A dry run: nothing is stored or launched."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carbonshift import runtime
from carbonshift.advisor import advise, advise_many
from carbonshift.cli import context
from carbonshift.cli.options import parse_signal_option, parse_time_option
from carbonshift.cli.parallel_lines import gc_paused, usable_cpus, write_lines
from carbonshift.cli.parallel_map import map_in_children
from carbonshift.cli.plan_slices import load_or_problem as _load
from carbonshift.cli.plan_slices import plan_in_slices
from carbonshift.cli.plan_view import render_plan
from carbonshift.cli.render import OutputFormat, emit_json, warn
from carbonshift.clock import FixedClock, SystemClock
from carbonshift.config.jobspec import JobSpec, jobspec_json_schema
from carbonshift.errors import CarbonshiftError, UserInputError

if TYPE_CHECKING:
    from datetime import datetime

    from carbonshift.config import Settings
    from carbonshift.intensity.types import Signal

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _spec_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SPEC_SUFFIXES and f.is_file())
            if not found:
                raise UserInputError(str(p), "directory holds no job spec (*.yaml, *.yml, *.json)")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise UserInputError(str(p), "no such file or directory")
    return files


def _warn_failed_sources(notices: list[str], warned: set[str]) -> None:
    """A source that failed is also a `warning:` line on stderr (once per command), so a script that
    reads only stdout's plan, or a person who reads only the table, still sees it."""
    for notice in notices:
        if " unavailable for " in notice and notice not in warned:
            warned.add(notice)
            warn(notice)


def plan_command(
    specs: Annotated[
        list[Path], typer.Argument(help="Job spec files (YAML or JSON), or directories of them.")
    ],
    now: Annotated[
        str | None,
        typer.Option("--now", help="Plan as if it were this time (reproducible and what-if plans)."),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show the N best options.")] = None,
    output: Annotated[
        OutputFormat | None,
        typer.Option("--format", help="table (one spec) or json; several specs print JSON lines."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of the candidates' intensity over the window.")
    ] = None,
    signal: Annotated[
        str | None, typer.Option("--signal", help="average or marginal (default: settings).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="List every region left out, with the rule that left it out.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes that parse a batch's specs and write its JSON lines (from 1,000 specs; default: the usable CPUs).",
        ),
    ] = None,
) -> None:
    """Plan the lowest-carbon region and start time for job specs, ranked, with savings."""
    settings = context.settings()
    at = parse_time_option("--now", now, SystemClock().now()) or SystemClock().now()
    sig = parse_signal_option(signal) if signal else settings.signal
    files = _spec_files(specs)
    # one spec too: a cold `plan` is start-up's ~50,000 tracked objects and a plan's few thousand, and a
    # full collection that fell during it (as allocation counts happen to fall) walked them all, ~20 ms
    with gc_paused():
        _plan_files(files, at, sig, settings, top, output, plot, explain, workers)


def _plan_files(
    files: list[Path],
    at: datetime,
    sig: Signal,
    settings: Settings,
    top: int | None,
    output: OutputFormat | None,
    plot: Path | None,
    explain: bool,
    workers: int | None,
) -> None:
    # a large batch parsed, planned and rendered on every CPU, written as bytes
    if plot is None and len(files) > 1:
        sliced = plan_in_slices(
            files,
            at=at,
            signal=sig,
            settings=settings,
            top=top,
            workers=workers or usable_cpus(),
            stream=sys.stdout,
        )
        if sliced is not None:
            _fail_on_problems(sliced.problems)
            return
    loaded: list[JobSpec] = []
    problems: list[str] = []
    # validate every spec before planning any (a bad batch plans nothing); a large batch on every CPU
    for spec, problem in map_in_children(files, partial(_load, at=at), workers or usable_cpus()):
        if spec is not None:
            loaded.append(spec)
        else:
            problems.append(problem)
    _fail_on_problems(problems)
    batch = len(loaded) > 1
    if plot is not None and batch:
        raise UserInputError("--plot", "plots one spec at a time")
    catalog = runtime.build_catalog(settings)
    service = runtime.build_service(settings, clock=FixedClock(at))
    fmt = output or (OutputFormat.JSON if batch else OutputFormat.TABLE)
    if batch:  # planned together (plan_batch), printed as JSON lines
        try:
            advices = advise_many(loaded, catalog=catalog, service=service, now=at, signal=sig)
        except CarbonshiftError:
            pass  # spec by spec below: the plans before the failing spec print, then its error
        else:
            write_lines(advices, lambda a: a.to_json_line(top=top), workers or usable_cpus(), sys.stdout)
            sys.stdout.flush()
            _warn_failed_sources(service.notices, set())
            return
    warned: set[str] = set()
    for path, spec in zip(files, loaded, strict=True):
        try:
            advice = advise(spec, catalog=catalog, service=service, now=at, signal=sig)
        except UserInputError as exc:  # a field of this file (baseline, placement, hardware): name the file
            raise UserInputError(f"{path}: {exc.where}" if exc.where else str(path), exc.problem) from None
        _warn_failed_sources(advice.notices, warned)
        if batch:
            typer.echo(advice.to_json_line(top=top))
        elif fmt is OutputFormat.JSON:
            emit_json(advice.to_dict(top=top))
        else:
            typer.echo(render_plan(advice.plan, top or 10, advice.notices, advice.excluded, explain))
        if plot is not None:
            from carbonshift.cli.plan_plot import write_plot

            write_plot(advice, plot, top or 8, now=at)
            warn(f"plot written to {plot}") if fmt is OutputFormat.JSON else typer.echo(f"plot: {plot}")


def _fail_on_problems(problems: list[str]) -> None:
    """Every invalid spec of a batch (and exit 2: nothing was planned), if any."""
    if problems:
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        raise typer.Exit(context.EXIT_USER_ERROR)


def schema_command() -> None:
    """Print the job spec's JSON Schema (for editors and CI validation)."""
    emit_json(jobspec_json_schema())


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("schema")(schema_command)
