"""Two clean-up rules the scheduler applies to cloud instances, as pure functions over handles.

- `overdue`: a run whose instance is still up past its deadline plus a margin is to be terminated (and
  the run marked failed): a job that hangs must not run, and bill, forever.
- `orphans`: instances tagged `carbonshift-run` whose run the scheduler does not know as live (a crash
  between launch and recording, a deleted database, a run that ended but whose terminate failed). They
  are listed by `carbonshift providers orphans` and deleted with `--clean`.
Both take plain data so the scheduler can call them with whatever it stores, and tests need no cloud.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from carbonshift.providers.base import Handle
from carbonshift.providers.bootstrap import DEFAULT_MARGIN

T = TypeVar("T")


def overdue(
    handles_with_deadlines: Iterable[tuple[T, datetime]],
    now: datetime,
    margin: timedelta = DEFAULT_MARGIN,
) -> list[T]:
    """The items (handles, or run records) whose deadline + margin is before `now`, in input order.
    Deadlines and `now` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return [item for item, deadline in handles_with_deadlines if deadline + margin < now]


def orphans(managed: Iterable[Handle], known_run_ids: Collection[str]) -> list[Handle]:
    """Instances carbonshift launched whose run id is not among the scheduler's live runs."""
    known = set(known_run_ids)
    return [h for h in managed if h.run_id not in known]
