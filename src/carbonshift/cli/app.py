"""The `carbonshift` command. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from carbonshift.cli import context

app = typer.Typer(
    name="carbonshift",
    help="Run compute where and when the grid is cleanest: plan, launch, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from carbonshift import __version__

        typer.echo(f"carbonshift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML config file (default: $CARBONSHIFT_CONFIG)", show_default=False),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    context.set_config_path(config)


# Commands whose numpy work is elementwise: OpenBLAS's thread pool, started when numpy loads, costs
# them start-up time (threads created and spinning; ~30 ms CPU, up to ~100 ms wall on a busy machine
# with two CPUs) that no matrix product of theirs wins back.
ONE_BLAS_THREAD = frozenset({"plan"})
_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


@contextmanager
def _one_blas_thread(wanted: bool) -> Iterator[None]:
    """OpenBLAS reads its thread count once, when numpy loads it: one thread while the command's module
    (which imports numpy) loads, and the variable gone again after, so nothing the command starts
    inherits it. A thread count the user set is left alone."""
    if not wanted or "numpy" in sys.modules or any(v in os.environ for v in _BLAS_THREAD_VARIABLES):
        yield
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)


def _register() -> None:
    from carbonshift.cli import commands

    argv = sys.argv[1:]
    with _one_blas_thread(commands.command_name(argv) in ONE_BLAS_THREAD):
        commands.register_for(app, argv)


def _readable_output() -> None:
    """Text a server stored before it refused it (a lone surrogate) or a terminal's narrow encoding
    must not turn a listing into a traceback: what cannot be written is written as an escape."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main() -> None:
    """Entry point: user errors become one clear line on stderr and exit code 2, never a traceback."""
    _readable_output()
    _register()
    try:
        app()  # standalone: usage errors and --help are handled by typer, with exit code 2 / 0
    except SystemExit:
        raise
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling: no traceback
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the one place where every error becomes a message
        sys.exit(context.report_error(exc))
    finally:
        # the process ends here: the interpreter's last collection would walk every object start-up
        # made (~50,000 tracked after a plan: ~17 ms of a cold `plan`) only to free what leaving
        # frees anyway; files and connections are closed by their own `with` blocks and atexit
        # handlers, not by the collector
        gc.freeze()
