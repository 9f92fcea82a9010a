"""`carbonshift run SPEC`: plan the job for this machine, wait for the cleanest start, run it under the
tracker, and print planned against actual.

Waiting shows a countdown on stderr; Ctrl-C (or SIGTERM) while waiting cancels cleanly: nothing has
been started, nothing is left running, exit code 130. Once the command runs, signals go to it (see
`carbonshift track`) and carbonshift exits with its exit code.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from carbonshift.cli import context
from carbonshift.cli.options import parse_time_option
from carbonshift.cli.render import table, warn
from carbonshift.cli.track import finish, with_tracker_options
from carbonshift.clock import SystemClock
from carbonshift.config.jobspec import load_jobspec
from carbonshift.timeutil import isoformat_z

EXIT_CANCELLED = 130


class _Cancelled(Exception):
    pass


def _countdown_text(seconds: float) -> str:
    s = max(round(seconds), 0)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def wait_until(start: datetime, at: datetime, *, tty: bool) -> None:
    """Sleep until `start` (measured from `at`, the planning time), showing what is left. Raises
    _Cancelled on Ctrl-C or SIGTERM."""
    remaining = (start - at).total_seconds()
    if remaining <= 0:
        return
    deadline = time.monotonic() + remaining

    def cancel(_signum: int, _frame: FrameType | None) -> None:
        raise _Cancelled

    previous = signal.signal(signal.SIGTERM, cancel)
    last_line = -1e9
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            text = f"waiting for the planned start {isoformat_z(start)}: {_countdown_text(left)} left (Ctrl-C cancels)"
            if tty:
                sys.stderr.write(f"\r{text}\033[K")
                sys.stderr.flush()
            elif time.monotonic() - last_line >= 600 or last_line < 0:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
                last_line = time.monotonic()
            time.sleep(min(1.0, left))
        if tty:
            sys.stderr.write("\r\033[K")
    except KeyboardInterrupt:
        raise _Cancelled from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fmt(value: float | None, unit: str, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g} {unit}"


def comparison(report_dict: dict[str, object]) -> str:
    planned = report_dict["planned"]
    assert isinstance(planned, dict)
    actual = planned["actual"]
    diff = planned["difference"]
    rows = [
        ("start", planned["start"], actual["start"], f"{diff['start_delay_s']:+.0f} s"),
        (
            "duration",
            f"{planned['duration_s']:.0f} s",
            f"{actual['duration_s']:.1f} s",
            _ratio(diff["duration_ratio"]),
        ),
        (
            "energy",
            _fmt(planned["energy_kwh"] * 1000, "Wh"),
            _fmt(None if actual["energy_kwh"] is None else actual["energy_kwh"] * 1000, "Wh"),
            _ratio(diff["energy_ratio"]),
        ),
        ("intensity", _fmt(planned["mean_g_per_kwh"], "g/kWh"), _fmt(actual["mean_g_per_kwh"], "g/kWh"), ""),
        (
            "emissions",
            _fmt(planned["kg_co2e"] * 1000, "g CO2e"),
            _fmt(None if actual["kg_co2e"] is None else actual["kg_co2e"] * 1000, "g CO2e"),
            _ratio(diff["kg_co2e_ratio"]),
        ),
    ]
    return table(("", "planned", "actual", "actual/planned"), rows)


def _ratio(value: object) -> str:
    return f"x{value:.3g}" if isinstance(value, float) else ""


def run_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The job spec (YAML or JSON).")],
    now: Annotated[
        str | None, typer.Option("--now", help="Plan as if it were this time; the wait is measured from it.")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Run at once; still report the plan.")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the JSON report here.")] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Reports and emissions.csv (default: <data dir>/runs)."),
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", min=0.01, help="Seconds between samples (default 1).")
    ] = None,
) -> None:
    """Plan a job for this machine, wait for the cleanest start, run it tracked, compare with the plan."""
    from carbonshift.tracker.local_run import argv_of, plan_here
    from carbonshift.tracker.runner import CommandNotRunnable, check_runnable, run_tracked
    from carbonshift.tracker.tracker import Tracker

    settings = with_tracker_options(context.settings())
    real_now = SystemClock().now()
    at = parse_time_option("--now", now, real_now) or real_now
    spec = load_jobspec(spec_path, now=at)
    argv = argv_of(spec)
    try:
        check_runnable(argv)
    except CommandNotRunnable as exc:
        raise context.fail(f"command of {spec_path}: {exc}", exc.exit_code) from None
    local = plan_here(spec, settings, at)
    for note in local.notes:
        typer.echo(note, err=True)
    for notice in local.advice.notices:
        warn(notice)
    o = local.option
    saving = "" if o.savings_pct is None else f", {o.savings_pct:.1f}% less than starting at the earliest"
    typer.echo(
        f"plan: start {isoformat_z(o.start)}, end {isoformat_z(o.end)}, {o.mean_g_per_kwh:.1f} g/kWh, "
        f"{o.energy.kwh * 1000:.4g} Wh -> {o.kg_co2e * 1000:.4g} g CO2e{saving}",
        err=True,
    )
    if not no_wait:
        try:
            wait_until(o.start, at, tty=sys.stderr.isatty())
        except _Cancelled:
            typer.echo("\ncancelled before the start: nothing was run", err=True)
            raise typer.Exit(EXIT_CANCELLED) from None
    tracker = Tracker(
        settings,
        place=local.place,
        command=argv,
        interval_s=interval,
        planned=local.planned,
        output_dir=output_dir,
        report_path=report,
        functional_unit=spec.functional_unit,
    )
    try:
        outcome = run_tracked(tracker, argv)
    except CommandNotRunnable as exc:
        raise context.fail(str(exc), exc.exit_code) from None
    typer.echo(comparison(outcome.report.to_dict()), err=True)
    raise finish(outcome.report, outcome.exit_code)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
