"""Run states and the transitions allowed between them.

planned -> waiting -> launching -> running -> succeeded | failed | cancelled | missed

`launching -> waiting` exists for one case only: after a restart, a run found in `launching` whose
provider has no instance for its run id never reached the provider, so it waits to be launched again
(the provider lookup, not a second launch, decides). Every transition is committed with a reason
before the action it announces.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    PLANNED = "planned"  # stored with its plan, not yet handed to the timer
    WAITING = "waiting"  # its launch is scheduled
    LAUNCHING = "launching"  # committed before provider.launch: a restart resolves it with provider.find
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"  # never started: its deadline passed (downtime), or an overlapping run (skip)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def pending(self) -> bool:
        """Not started yet: cancelling it means it never starts."""
        return self in (RunState.PLANNED, RunState.WAITING)

    @property
    def active(self) -> bool:
        """Started (or being started): cancelling it means stopping it."""
        return self in (RunState.LAUNCHING, RunState.RUNNING)


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.MISSED})

ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.PLANNED: frozenset({RunState.WAITING, RunState.CANCELLED, RunState.MISSED}),
    RunState.WAITING: frozenset({RunState.LAUNCHING, RunState.CANCELLED, RunState.MISSED}),
    RunState.LAUNCHING: frozenset(
        {RunState.RUNNING, RunState.WAITING, RunState.FAILED, RunState.CANCELLED, RunState.SUCCEEDED}
    ),
    RunState.RUNNING: frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}),
    RunState.SUCCEEDED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.MISSED: frozenset(),
}


class JobStatus(StrEnum):
    ACTIVE = "active"  # runs pending or going, or a schedule still producing occurrences
    DONE = "done"  # a one-off job whose run ended
    CANCELLED = "cancelled"
