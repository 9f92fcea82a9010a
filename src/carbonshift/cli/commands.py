"""The list of command modules. Each has `register(app)`; adding a command is one line here.

A run of one command imports only that command's module: `carbonshift plan` must not pay for uvicorn
(`serve`), the provider adapters (`launch`, `providers`) or SQLAlchemy (`jobs`, `report`). Typer needs a
command registered to run it, so `register_for` reads the command's name from the command line and
registers just its module; `--help`, no command or an unknown name register everything, so the
listing and the "no such command" hint stay complete.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "regions",
    "intensity",
    "plan",
    "track",
    "run",
    "serve",
    "jobs",
    "report",
    "launch",
    "providers",
)

# command name -> its module, for the commands whose module registers more than one name
MODULE_OF: dict[str, str] = {
    **{name: name for name in COMMAND_MODULES},
    "schema": "plan",
    "submit": "jobs",
}

# the root callback's options that take a value (see cli/app.py): their value is not a command name
_VALUE_OPTIONS = frozenset({"--config"})


def register(app: typer.Typer) -> None:
    """Every command (for --help, and for callers that run more than one)."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"carbonshift.cli.{name}").register(app)


def command_name(argv: Sequence[str]) -> str | None:
    """The command a command line asks for (the first word that is neither an option nor an option's
    value), or None when it names none."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def register_for(app: typer.Typer, argv: Sequence[str]) -> None:
    """Only the module of the command `argv` runs; none for `--version` alone; every module when it
    names no command we know (the help lists them all)."""
    name = command_name(argv)
    if name is None and "--version" in argv and "--help" not in argv:
        return
    module = MODULE_OF.get(name or "")
    if module is None:
        register(app)
    else:
        importlib.import_module(f"carbonshift.cli.{module}").register(app)
