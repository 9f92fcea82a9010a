"""What the HTTP API needs from the scheduler, as a protocol.

The API layer depends on these few methods, not on the scheduler's classes: the real
`carbonshift.scheduler.Scheduler` satisfies it, and so can a small stand-in in a unit test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from carbonshift.advisor import Advice
from carbonshift.api.paging import After, ListedJob
from carbonshift.config.jobspec import JobSpec, Labels


class View(Protocol):
    """A JobView or RunView: what the API returns is its `to_dict()`."""

    def to_dict(self) -> dict[str, Any]: ...


class JobPage(Protocol):
    """A page of the job list: its jobs, and whether more follow the last one."""

    @property
    def jobs(self) -> Sequence[ListedJob]: ...

    @property
    def more(self) -> bool: ...


class SchedulerPort(Protocol):
    @property
    def role(self) -> str:
        """'active', 'standby' or 'stopped' (shown by /healthz)."""
        ...

    def health(self) -> dict[str, Any]:
        """/healthz's body: status 'ok' or 'stale', role, last_tick_age_s (see Scheduler.health)."""
        ...

    def submit(self, spec: JobSpec) -> View: ...

    def list_jobs(self, **labels: str | None) -> Sequence[ListedJob]:
        """Every job (with the labels given), newest first: created_at descending, then id."""
        ...

    def list_jobs_page(
        self, limit: int | None, after: After | None = None, *, full: bool = False, **labels: str | None
    ) -> JobPage:
        """At most `limit` jobs (None: all) following `after`, in list_jobs' order; `full`: each job
        as get_job shows it, else without its history (plans, options, run events)."""
        ...

    def get_run(self, run_id: str) -> View: ...

    def get_job(self, job_id: str) -> View: ...

    def cancel(self, job_id: str) -> View: ...

    def run_log(self, job_id: str, run_id: str) -> str: ...

    def dry_run(self, spec: JobSpec) -> Advice: ...

    def record_report(self, run_id: str, token: str, report: dict[str, Any]) -> View: ...

    def run_token_ok(self, run_id: str, token: str) -> bool: ...

    def metrics(self) -> dict[str, Any]: ...

    def totals(
        self,
        group_by: Sequence[str] | str | None = (),
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        **filters: Any,
    ) -> dict[str, Any]: ...

    def record_tracked(
        self, report: dict[str, Any], labels: Labels | None = None, name: str | None = None
    ) -> View: ...
