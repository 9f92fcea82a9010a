"""Checks on a parsed document (a job spec, a run report) before any model sees it.

Why a pass of its own: what JSON and YAML can carry is wider than what the rest of carbonshift can
store and serve back. A lone surrogate (`"\\ud800"`) parses and validates as a `str`, is stored, and
then breaks every answer that includes it, since it cannot be encoded as UTF-8; a document nested
ten thousand levels deep or a YAML alias bomb makes any recursive walk (pydantic's, ours) run out of
stack or time; an integer of more than 4,300 digits cannot even be parsed by Python's `int`. So the
parsers turn such an integer into a `HugeNumber` marker instead of failing, and `document_problem`
walks the result once, without recursion and with a bounded number of steps, naming the first
field that is none of these things.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32  # a job spec is four levels deep; a run report five or six
MAX_NODES = 200_000  # values in one document, shared ones (YAML aliases) counted each time seen
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
MAX_SHOWN_CHARS = 80  # the most of a rejected value a message repeats


class HugeNumber:
    """An integer literal too long for `int()`: kept as a marker so the field can be named."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def parse_int(text: str) -> int | HugeNumber:
    """`json.loads(parse_int=...)` and the YAML int constructor: a HugeNumber instead of ValueError."""
    if len(text.lstrip("+-")) > MAX_INT_DIGITS:
        return HugeNumber(len(text))
    return int(text)


def shown(value: Any) -> str:
    """`repr(value)` for a message, cut to MAX_SHOWN_CHARS: a rejected value is echoed, never
    all of a megabyte of it."""
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return text[: MAX_SHOWN_CHARS - 3] + "..."


def encodable(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def document_problem(data: Any) -> tuple[str, str] | None:
    """The first (field, problem) that makes `data` unstorable or unservable, or None.

    Fields are written as the loaders name them: `env.HOME`, `command[2]` ('' for the document)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    seen = 0
    while stack:
        value, field, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            return "", f"more than {MAX_NODES} values in one document"
        if depth > MAX_DEPTH:
            return field, f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, str):
            if not encodable(value):
                return field, "not valid Unicode text (a lone surrogate such as \\ud800)"
        elif isinstance(value, HugeNumber):
            return field, f"a number of {value.digits} digits; at most {MAX_INT_DIGITS}"
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and not encodable(key):
                    return field, "a key is not valid Unicode text (a lone surrogate such as \\ud800)"
                name = key if isinstance(key, str) else shown(key)
                stack.append((item, f"{field}.{name}" if field else name, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value))
    return None
