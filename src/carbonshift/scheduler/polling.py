"""Following running runs: each one's status from its provider, the stops it needs (a cancel, a
chunk's planned end, the deadline watchdog), and how it ended (succeeded, paused, cancelled, failed,
or interrupted by the cloud, which re-plans what is left of an interruptible job).
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from carbonshift.config.jobspec import format_duration
from carbonshift.errors import CarbonshiftError
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus
from carbonshift.providers.watchdog import overdue
from carbonshift.scheduler import report_check
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import ACTIVE, PAUSED, paused, z
from carbonshift.scheduler.models import RunRow
from carbonshift.scheduler.planning import Planned
from carbonshift.scheduler.releases import Releases
from carbonshift.scheduler.states import RunState

__all__ = ["Polling"]

log = logging.getLogger(__name__)


class Polling:
    def __init__(self, ctx: Context, releases: Releases) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.releases = releases

    def poll_running(self) -> None:
        """Each running run's status (and a stop it needs: a cancel, the watchdog), in the pool."""
        with self.store.tx() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.state == RunState.RUNNING.value)))
        for run_id in ids:
            self.ctx.calls.submit([run_id], "poll", functools.partial(self._poll_task, run_id))

    def _poll_task(self, run_id: str) -> None:
        self.poll_run(run_id, self.ctx.clock.now())

    def poll_run(self, run_id: str, now: datetime) -> bool:
        """Ask the provider about a running run; finish it if it ended. True when it is over."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state not in ACTIVE:
                return True
            if run.state != RunState.RUNNING.value or run.handle is None:
                return False
            provider = self.ctx.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
            cancel, sent = run.cancel_requested, run.terminate_sent_at
            deadline, stop_reason = run.deadline, run.stop_reason
            stop_at, chunk = run.stop_at, (run.chunk_index, run.chunk_count)
        if provider is None:
            return False
        try:
            status = self.ctx.calls.call(
                run_id, "status", handle.provider, functools.partial(provider.status, handle)
            )
        except Exception as exc:
            log.warning(
                "run %s: status from %s failed (%s); asking again next tick", run_id, handle.provider, exc
            )
            return False
        if status.state in (InstanceState.PENDING, InstanceState.RUNNING):
            cfg = self.ctx.cfg
            resend = sent is None or (now - sent).total_seconds() > 2 * cfg.terminate_grace_s + 5
            margin = cfg.watchdog_margin_s
            if not cancel and stop_at is not None and now >= stop_at:
                if stop_reason is None or resend:
                    why = stop_reason or f"{PAUSED} (chunk {chunk[0]}/{chunk[1]})"
                    self.stop_run(run_id, now, stop_reason=why)
            elif (
                not cancel
                and margin is not None
                and overdue([(run_id, deadline)], now, timedelta(seconds=margin))
            ):
                if stop_reason is None or resend:
                    why = stop_reason or (
                        f"overdue: still running at {z(now)}, past its deadline {z(deadline)} + "
                        f"{format_duration(timedelta(seconds=int(margin)))}: stopped by the watchdog"
                    )
                    self.stop_run(run_id, now, stop_reason=why)
            elif cancel and resend:
                self.stop_run(run_id, now)
            return False
        self._finish(run_id, status, now)
        return True

    @staticmethod
    def _outcome(run: RunRow, status: InstanceStatus, preempted: bool) -> tuple[RunState, str]:
        """How a run whose instance stopped ended, and why, in words."""
        state, stop_reason = status.state, run.stop_reason
        if state is InstanceState.SUCCEEDED:
            return RunState.SUCCEEDED, f"ended: {status.detail or 'exit code 0'}"
        if paused(run):
            return (
                RunState.SUCCEEDED,
                f"{stop_reason}: stopped by the daemon ({status.detail or state.value})",
            )
        if run.cancel_requested:
            return RunState.CANCELLED, f"stopped on request: {status.detail or state.value}"
        if stop_reason:
            return RunState.FAILED, f"{stop_reason} ({status.detail or state.value})"
        if preempted:
            return RunState.FAILED, f"interrupted by the cloud (spot / preemptible): {status.detail}"
        if state is InstanceState.TERMINATED:
            return RunState.FAILED, f"stopped outside carbonshift: {status.detail or 'terminated'}"
        if state is InstanceState.UNKNOWN:
            return RunState.FAILED, f"the provider no longer knows the instance: {status.detail}"
        return RunState.FAILED, f"ended: {status.detail or 'failed'}"

    def _finish(self, run_id: str, status: InstanceStatus, now: datetime) -> None:
        """Record how a run ended. A chunk of an interruptible job: stopped by the daemon at its planned
        end, it succeeded (paused); failed or missed, its job's chunks not yet started are cancelled;
        interrupted by the cloud (spot / preemptible), what is left of the job is planned again."""
        chunks = self.ctx.chunks
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value:
                return
            preempted = chunks.preempted(s, run, status)
        replanned: Planned | None = None
        replan_error = ""
        if preempted is not None:
            spec, remaining, deadline, hardware = preempted
            try:
                replanned = self.ctx.plans.plan(
                    spec, now, deadline, now, chunked=True, duration_s=remaining, hardware=hardware
                )
            except CarbonshiftError as exc:
                replan_error = str(exc)
        moved = False
        new_runs: list[str] = []
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value:
                return
            was_paused, stop_reason = paused(run), run.stop_reason
            to, why = self._outcome(run, status, preempted is not None)
            error = None if to in (RunState.SUCCEEDED, RunState.CANCELLED) else why
            extra: dict[str, Any] = {"note": stop_reason} if was_paused else {}
            moved = self.store.move(
                s, run, to, why, now, exit_code=status.exit_code, ended_at=now, error=error, **extra
            )
            if moved and status.report is not None:
                report_check.keep(s, run, "local", status.report, now, self.ctx.cfg.watchdog_margin_s)
            if moved and preempted is not None and to is RunState.FAILED:
                new_runs = chunks.after_preemption(s, run, replanned, replan_error, why, now)
            elif moved:
                chunks.ended(s, run, to, was_paused, why, now)
        for new_id in new_runs:
            self.ctx.timers.adopt(new_id)
        if moved:
            self.store.close_finished_jobs(now)  # now, not at the next pass: the poll ran in the pool
            self.releases.release(run_id)

    def stop_run(self, run_id: str, now: datetime, stop_reason: str | None = None) -> None:
        """Ask the provider to stop a running run (a cancel, or the watchdog with `stop_reason`); the
        poll finishes it when it has ended."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.RUNNING.value or run.handle is None:
                return
            run.terminate_sent_at = now
            if stop_reason is not None:
                run.stop_reason = stop_reason
            self.store.note(s, run, f"stop requested: {stop_reason or 'cancelled'}; terminating the run", now)
            provider = self.ctx.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
        if provider is None:
            return
        try:
            self.ctx.calls.call(
                run_id, "terminate", handle.provider, functools.partial(provider.terminate, handle)
            )
        except Exception as exc:
            log.warning("run %s: terminate on %s failed (%s); retrying", run_id, handle.provider, exc)
