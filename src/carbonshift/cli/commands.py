"""The list of command modules. Each has `register(app)`; adding a command is one line here."""

from __future__ import annotations

import importlib

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


def register(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"carbonshift.cli.{name}").register(app)
