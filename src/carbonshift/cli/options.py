"""Parsing of option values shared by commands: times (ISO 8601, 'now', or '+6h' / '-1d' from now)."""

from __future__ import annotations

from datetime import datetime

from carbonshift.errors import UserInputError
from carbonshift.intensity.types import Signal
from carbonshift.timeutil import parse_datetime, parse_duration


def parse_time_option(option: str, value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    if text.lower() == "now":
        return now
    if text[:1] in "+-" and "T" not in text:
        try:
            delta = parse_duration(text[1:])
        except ValueError as exc:
            raise UserInputError(option, str(exc)) from None
        return now + delta if text[0] == "+" else now - delta
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise UserInputError(option, f"{exc}; or use 'now', '+6h', '-1d'") from None


def parse_signal_option(value: str) -> Signal:
    try:
        return Signal(value.lower())
    except ValueError:
        raise UserInputError("--signal", f"{value!r} is not a signal; allowed: average, marginal") from None
