"""The scheduler daemon: submitted jobs and recurring schedules, planned with fresh forecasts, launched
through a provider at the chosen time, followed to the end, with planned vs actual kept.

`Scheduler` is the Python API the HTTP API and the CLI build on. The database is the source of truth;
APScheduler (3.x) only wakes the daemon at the right moments. Imports are lazy so that config (which
includes `scheduler.settings`) never pulls in SQLAlchemy or APScheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbonshift.scheduler.core import DaemonLockedError, NotFoundError, Scheduler, live_run_ids
    from carbonshift.scheduler.states import JobStatus, RunState
    from carbonshift.scheduler.trigger import CarbonAwareTrigger
    from carbonshift.scheduler.views import JobView, PlanView, RunView

__all__ = [
    "CarbonAwareTrigger",
    "DaemonLockedError",
    "JobStatus",
    "JobView",
    "NotFoundError",
    "PlanView",
    "RunState",
    "RunView",
    "Scheduler",
    "live_run_ids",
]

_LAZY = {
    "Scheduler": "carbonshift.scheduler.core",
    "NotFoundError": "carbonshift.scheduler.core",
    "DaemonLockedError": "carbonshift.scheduler.core",
    "live_run_ids": "carbonshift.scheduler.core",
    "RunState": "carbonshift.scheduler.states",
    "JobStatus": "carbonshift.scheduler.states",
    "JobView": "carbonshift.scheduler.views",
    "RunView": "carbonshift.scheduler.views",
    "PlanView": "carbonshift.scheduler.views",
    "CarbonAwareTrigger": "carbonshift.scheduler.trigger",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'carbonshift.scheduler' has no attribute {name!r}")
