"""What every command shares: the config path given on the command line, loading settings, and
turning errors into messages and exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from carbonshift.errors import CarbonshiftError, NoDataError, UserInputError

if TYPE_CHECKING:
    from carbonshift.config.settings import Settings

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


class _State:
    config_path: Path | None = None


log = logging.getLogger("carbonshift")


def set_config_path(path: Path | None) -> None:
    _State.config_path = path


def settings() -> Settings:
    # imported here: the settings models (pydantic, numpy through the intensity types) load with the
    # command that needs them, not with `carbonshift --version` or `--help`
    from carbonshift.config.settings import load_settings

    return load_settings(_State.config_path)


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print an error line and give the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def report_error(exc: BaseException) -> int:
    """Map an exception that escaped a command to a message on stderr and an exit code."""
    if isinstance(exc, UserInputError):
        typer.echo(f"error: {exc}", err=True)
        return EXIT_USER_ERROR
    if isinstance(exc, NoDataError | CarbonshiftError):
        typer.echo(f"error: {exc}", err=True)
        return EXIT_FAILURE
    typer.echo(f"internal error: {type(exc).__name__}: {exc} (please report this)", err=True)
    if "--debug" in sys.argv:
        raise exc
    return EXIT_FAILURE
