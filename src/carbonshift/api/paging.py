"""Pages of the job list (`GET /api/v1/jobs?limit=N&cursor=C`): newest first, by a keyset cursor.

The list's order is (created_at descending, id ascending), the order `Scheduler.list_jobs` returns.
A cursor names the last job of a page by exactly those two values, so the next page starts right
after it whatever was submitted or deleted in between: no job is shown twice or skipped because
the list moved, which an offset cannot promise. It is opaque to clients (URL-safe base64 of JSON), and
a database can answer the same predicate from an index on (created_at, id) — the same cursor works
when the scheduler pages in SQL instead of here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from carbonshift.errors import UserInputError

MAX_LIMIT = 1000


class ListedJob(Protocol):
    """What paging reads of a job view (the scheduler's JobView)."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    def to_dict(self) -> dict[str, Any]: ...


J = TypeVar("J", bound=ListedJob)


@dataclass(frozen=True)
class After:
    """The last job of the previous page."""

    created_at: datetime
    id: str

    def precedes(self, job: ListedJob) -> bool:
        """Whether `job` comes after this one in the list's order."""
        return job.created_at < self.created_at or (job.created_at == self.created_at and job.id > self.id)


def encode_cursor(job: ListedJob) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> After:
    """The position a cursor names; UserInputError on `cursor` for anything this server did not give."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created, job_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if not isinstance(job_id, str) or at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise UserInputError(
            "cursor", "not a cursor from this server: pass the previous page's next_cursor unchanged"
        ) from None
    return After(at, job_id)


def page(jobs: Sequence[J], limit: int, after: After | None) -> tuple[list[J], str | None]:
    """At most `limit` jobs following `after` (from the start without one), and the cursor of the
    next page (None when this page reaches the end). `jobs` is in the list's order."""
    rest = [j for j in jobs if after.precedes(j)] if after is not None else list(jobs)
    chosen = rest[:limit]
    return chosen, encode_cursor(chosen[-1]) if len(rest) > limit else None


def page_json(jobs: Sequence[ListedJob], more: bool, encode: Callable[[Any], bytes]) -> bytes:
    """The answer for a page, `{"jobs": [...], "next_cursor": ...}`: a job that comes with its JSON
    written (a `json` attribute of bytes: the scheduler's job-list summary) is put in as it is, any other
    is `encode`d from its `to_dict()`; the cursor names the page's last job when `more` follow it."""
    parts = []
    for job in jobs:
        written = getattr(job, "json", None)
        parts.append(written if isinstance(written, bytes) else encode(job.to_dict()))
    cursor = json.dumps(encode_cursor(jobs[-1]) if more and jobs else None)
    return b'{"jobs":[' + b",".join(parts) + b'],"next_cursor":' + cursor.encode() + b"}"
