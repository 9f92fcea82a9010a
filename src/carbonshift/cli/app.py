"""The `carbonshift` command. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import sys
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


def _register() -> None:
    from carbonshift.cli import commands

    commands.register_for(app, sys.argv[1:])


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
