"""Helpers the per-API fakes share: the documented example bodies and time formatting."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "api"


@cache
def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture(name: str) -> Any:
    """A fresh copy of a documented example body from tests/fixtures/api."""
    return copy.deepcopy(_load(name))


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def iso(t: int, fmt: str = "%Y-%m-%dT%H:%M:%S+00:00") -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime(fmt)


def parse(text: str | None) -> int | None:
    if not text:
        return None
    raw = text.strip().replace("Z", "+00:00")
    dt = datetime.fromisoformat(raw)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


class Clocked:
    """A fake API's idea of now: fixed when a test sets it, else the real time."""

    now: datetime | None = None

    def now_s(self) -> int:
        return epoch(self.now) if self.now is not None else int(datetime.now(UTC).timestamp())
