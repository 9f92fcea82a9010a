"""The scheduler's HTTP API (FastAPI): `create_app(scheduler, settings)`; `carbonshift serve` runs it.

FastAPI loads only when `create_app` is used, so the CLI clients (which share `security.is_loopback`)
start as fast as the rest of the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from carbonshift.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
