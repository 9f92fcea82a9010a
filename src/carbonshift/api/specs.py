"""Reading a job spec from a request body, and turning spec problems into FastAPI-style 422 details.

A spec arrives as JSON (the default) or YAML (`application/yaml`, `text/yaml`), so a team can POST
the same file it keeps in its repository. Every problem becomes one `{"loc", "msg", "type"}` entry
whose `loc` is the field's path (`["body", "window", "deadline"]`), the shape FastAPI uses for its own
validation errors, so one client-side handler reads both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from carbonshift.config.document import shown as shown_value
from carbonshift.config.jobspec import JobSpec, JobSpecError, loads_jobspec
from carbonshift.errors import UserInputError

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
# No Content-Type is no spec: a web page can POST a body without one (a Blob) and no CORS preflight
# stops it, so guessing JSON would let any site a user visits submit a job to an open loopback API.
JSON_TYPES = frozenset({"application/json"})
_LOC_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class UnsupportedMediaType(Exception):
    """A body in a format the API does not read (415)."""


def body_format(content_type: str | None) -> Literal["json", "yaml"]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in YAML_TYPES:
        return "yaml"
    if media in JSON_TYPES or media.endswith("+json"):
        return "json"
    shown = f"content type {shown_value(media)}" if media else "no Content-Type header"
    raise UnsupportedMediaType(f"{shown}: send a job spec as application/json or application/yaml")


def read_spec(body: bytes, content_type: str | None) -> JobSpec:
    """Parse and validate; JobSpecError (422) for anything wrong with the document itself."""
    fmt = body_format(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JobSpecError("body", [("", "the body is not UTF-8 text")]) from None
    # a relative window (`now`, `+6h`) counts from when the server receives it, and is stored absolute
    return loads_jobspec(text, source="body", fmt=fmt, now=datetime.now(UTC))


def field_loc(field: str) -> list[str | int]:
    """'window.deadline' -> ['body', 'window', 'deadline']; 'command[0]' -> ['body', 'command', 0]."""
    loc: list[str | int] = ["body"]
    for name, index in _LOC_PART.findall(field):
        loc.append(int(index) if index else name)
    return loc


def problems_detail(exc: UserInputError) -> list[dict[str, Any]]:
    """The 422 `detail` list: one entry per field for a JobSpecError; one entry naming `where` for a
    problem found later (an unknown baseline region, 'local' without a location, a past deadline)."""
    problems = exc.problems if isinstance(exc, JobSpecError) else [(exc.where, exc.problem)]
    return [{"loc": field_loc(field), "msg": problem, "type": "value_error"} for field, problem in problems]
