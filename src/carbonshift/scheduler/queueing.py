"""Queueing runs ahead at engines that have a queue of their own: providers with the `Queueing`
capability (Slurm, Kubernetes); clouds have none and are launched at the planned start.

A waiting run whose provider queues is handed to it at plan or adopt time (`prepare`, `not_before` =
the planned start): Slurm holds the job `PENDING (BeginTime)` and starts it at its time, Kubernetes
keeps a suspended Job that the launch at the planned start resumes. The queued job's handle is kept on
the run, its details carrying the planned start it was queued for, so each tick can tell what is due:

- a re-plan that moves the start prepares the run again, which re-times the queued job; one that moves
  the run to another cluster or provider removes the queued job first;
- a run that ends before it was launched (cancelled, missed, not needed after a re-plan) has its queued
  job released like an instance: terminated until the provider confirms it is gone;
- a restarted daemon finds the handle on the run (nothing to do) or, when it stopped between the call
  and the record, prepares again, which finds the job by run id: never a second submission.

Not queued ahead: the chunks of an interruptible job (each waits for the one before it, which only the
launcher knows), and a recurring run on an engine that starts queued runs itself while another run of
its schedule is still active (the schedule's overlap rule is the launcher's, at the planned start). A
refusal at `prepare` is noted once per planned start; the run is then launched at its planned start,
with the plan's fallbacks, as on any provider.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from carbonshift.config.jobspec import JobSpec, Window, parse_jobspec
from carbonshift.providers.base import HELD, QUEUED_FOR, Handle, LaunchRequest, queueing
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import ACTIVE, TERMINAL_STATES, z
from carbonshift.scheduler.models import JobRow, RunRow
from carbonshift.scheduler.planning import run_spec
from carbonshift.scheduler.releases import Releases
from carbonshift.scheduler.states import RunState
from carbonshift.scheduler.tokens import hash_token

__all__ = ["QueueAhead", "holds_handle", "launch_request", "launch_spec", "queued_handle"]

log = logging.getLogger(__name__)

_REFUSED = "queue_refused"  # run.planned: the provider, region and start a `prepare` was refused for


def launch_request(
    ctx: Context,
    run_id: str,
    spec: JobSpec,
    region: str,
    deadline: datetime,
    token: str,
    env: dict[str, str],
    not_before: datetime | None = None,
) -> LaunchRequest:
    """The request a run is launched (or queued) with: the same for every call, by any daemon."""
    report_url = ctx.cfg.report_url
    return LaunchRequest(
        run_id=run_id,
        spec=spec,
        region=region,
        deadline=deadline,
        report_url=None if report_url is None else report_url.replace("{run_id}", run_id),
        report_token=token,
        interruptible=spec.interruptible,  # spot / preemptible capacity only when the job allows it
        env=env,
        not_before=not_before,
    )


def launch_spec(spec: JobSpec, run: RunRow) -> JobSpec:
    """The spec as one run of it is launched: on the hardware its plan chose, its own window, no
    schedule."""
    return run_spec(spec, run.planned).model_copy(
        update={"window": Window(earliest=run.window_earliest, deadline=run.deadline), "schedule": None}
    )


def queued_handle(run: RunRow) -> Handle | None:
    """The run's handle when it is a job queued ahead (not yet launched by the scheduler)."""
    return _queued(run.handle)


def _queued(handle: dict[str, Any] | None) -> Handle | None:
    if handle is None or QUEUED_FOR not in (handle.get("details") or {}):
        return None
    return Handle.from_dict(handle)


def holds_handle() -> ColumnElement[bool]:
    """The run holds a handle (a JSON null, which the ORM writes for a handle set to None, is none),
    said as the partial indexes `ix_runs_held_*` say it, so a query with it can read them: a literal,
    not a bound value, which PostgreSQL's generic plans could not match with the index's predicate."""
    return cast(RunRow.handle, Text) != literal_column("'null'")


class _Waiting(NamedTuple):
    """What the tick reads of a waiting run to tell whether its queued job is in step with its plan."""

    id: str
    provider: str | None
    region: str | None
    planned_start: datetime | None
    chunk_index: int | None
    handle: dict[str, Any] | None
    refused: str | None  # run.planned[_REFUSED]


def _refusal_key(provider: str | None, region: str | None, planned_start: datetime | None) -> str:
    return f"{provider}:{region}@{z(planned_start) if planned_start else '-'}"


class QueueAhead:
    """Keeps each waiting run's queued job in step with its plan (see the module docstring)."""

    def __init__(self, ctx: Context, releases: Releases) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.releases = releases

    def sync_due(self, now: datetime) -> None:
        """Hand to the pool each waiting run whose queued job is missing or out of step with its plan,
        and the release of each queued job whose run ended without being launched."""
        # only runs that may concern a queue, each read from an index: planned on an engine that queues
        # (none when no engine queues), or holding a handle (the partial index holds only those); with
        # thousands of runs waiting for other providers, or finished, this reads none of them
        engines = [name for name, p in self.ctx.providers.items() if queueing(p) is not None]
        columns = (
            RunRow.id,
            RunRow.provider,
            RunRow.region,
            RunRow.planned_start,
            RunRow.chunk_index,
            RunRow.handle,
            RunRow.planned[_REFUSED].as_string(),
        )
        waiting = (RunRow.state == RunState.WAITING.value, RunRow.planned_start > now)
        looks = [select(*columns).where(*waiting, holds_handle())]
        if engines:
            looks.append(select(*columns).where(*waiting, RunRow.provider.in_(engines)))
        due: dict[str, None] = {}  # in the order read, each run once
        with self.store.read() as s:
            for look in looks:
                for row in s.execute(look):
                    run = _Waiting(*row)
                    if run.id not in due and self._out_of_step(run):
                        due[run.id] = None
            ended = [
                run_id
                for run_id, handle in s.execute(
                    select(RunRow.id, RunRow.handle).where(
                        RunRow.state.in_(TERMINAL_STATES),
                        RunRow.launched_at.is_(None),
                        RunRow.release_state.is_(None),
                        holds_handle(),
                    )
                )
                if _queued(handle) is not None
            ]
        for run_id in due:
            self.ctx.calls.submit([run_id], "queue", functools.partial(self._sync_task, run_id))
        for run_id in ended:
            self.ctx.calls.submit([run_id], "release", functools.partial(self.releases.release, run_id))

    def _out_of_step(self, run: _Waiting) -> bool:
        queued = _queued(run.handle)
        provider = queueing(self.ctx.providers.get(run.provider or ""))
        if provider is None or run.chunk_index is not None:
            return queued is not None  # moved off a queueing engine: the queued job is to go
        if queued is None:
            return run.refused != _refusal_key(run.provider, run.region, run.planned_start)
        if (queued.provider, queued.region) != (run.provider, run.region):
            return True
        return run.planned_start is not None and queued.details.get(QUEUED_FOR) != z(run.planned_start)

    def _sync_task(self, run_id: str) -> None:
        self.sync_run(run_id, self.ctx.clock.now())

    def sync_run(self, run_id: str, now: datetime) -> None:
        """In a worker: bring the run's queued job in step with its plan (withdraw, prepare, re-time)."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.WAITING.value or run.planned_start is None:
                return
            if run.planned_start <= now or run.cancel_requested:
                return  # the launcher's now
            job = s.get(JobRow, run.job_id)
            assert job is not None
            spec = parse_jobspec(job.spec, source=f"job {job.id}")
            provider = queueing(self.ctx.providers.get(run.provider or ""))
            queued = queued_handle(run)
            start, where = run.planned_start, (str(run.provider), str(run.region))
            deadline, job_id, the_spec = run.deadline, job.id, launch_spec(spec, run)
            queues = provider is not None and run.chunk_index is None
            blocked = (
                provider is not None
                and job.recurring
                and provider.starts_queued
                and s.scalars(
                    select(RunRow.id).where(
                        RunRow.job_id == job.id, RunRow.state.in_(ACTIVE), RunRow.id != run.id
                    )
                ).first()
                is not None
            )
        moved = queued is not None and ((queued.provider, queued.region) != where or not queues)
        if moved and queued is not None and not self._withdraw(run_id, queued, f"{where[0]}:{where[1]}", now):
            return
        if provider is None or not queues or blocked:
            return
        ref = f"{where[0]}:{where[1]}"
        token = self.ctx.tokens.token(run_id)
        env = self.ctx.chunks.run_env(job_id, where[0], spec, None)
        request = launch_request(self.ctx, run_id, the_spec, where[1], deadline, token, env, not_before=start)
        try:
            handle = self.ctx.calls.call(run_id, "prepare", ref, functools.partial(provider.prepare, request))
        except Exception as exc:
            self._refused(run_id, ref, str(exc) or type(exc).__name__, now)
            return
        details: dict[str, Any] = {**handle.details, QUEUED_FOR: z(start)}
        handle = Handle(
            handle.provider, handle.region, handle.run_id, handle.instance_id, handle.console_url, details
        )
        self._record(run_id, handle, ref, start, token, now)

    def _record(
        self, run_id: str, handle: Handle, ref: str, start: datetime, token: str, now: datetime
    ) -> None:
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return
            if run.state != RunState.WAITING.value:
                if run.state in TERMINAL_STATES and run.launched_at is None and run.release_state is None:
                    run.handle = handle.to_dict()  # ended meanwhile: the next tick releases the job
                return
            run.handle = handle.to_dict()
            run.instance_id, run.console_url = handle.instance_id, handle.console_url
            run.report_token_hash = hash_token(token)  # a job the engine starts may report first
            how = (
                "held until the daemon lets it go then"
                if handle.details.get(HELD)
                else "the cluster starts it then"
            )
            self.store.note(
                s,
                run,
                f"queued on {ref} as {handle.instance_id} for its planned start {z(start)} ({how})",
                now,
            )
        log.info("run %s: queued on %s as %s for %s", run_id, ref, handle.instance_id, z(start))

    def _withdraw(self, run_id: str, queued: Handle, now_on: str, now: datetime) -> bool:
        """The run moved off the queued job's cluster: remove that job (True once asked)."""
        provider = self.ctx.providers.get(queued.provider)
        old = f"{queued.provider}:{queued.region}"
        try:
            if provider is not None:
                self.ctx.calls.call(run_id, "terminate", old, functools.partial(provider.terminate, queued))
        except Exception as exc:
            log.warning(
                "run %s: cannot remove its queued job on %s (%s); retrying next tick", run_id, old, exc
            )
            return False
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.handle == queued.to_dict():
                run.handle, run.instance_id, run.console_url = None, None, None
                self.store.note(
                    s,
                    run,
                    f"removed its queued job {queued.instance_id} on {old}: the run moved to {now_on}",
                    now,
                )
        return True

    def _refused(self, run_id: str, ref: str, why: str, now: datetime) -> None:
        """`prepare` failed: noted once for this planned start; the launch at the start tries again."""
        log.warning("run %s: could not queue it ahead on %s (%s)", run_id, ref, why)
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.WAITING.value:
                return
            run.planned = {
                **(run.planned or {}),
                _REFUSED: _refusal_key(run.provider, run.region, run.planned_start),
            }
            self.store.note(
                s,
                run,
                f"not queued ahead on {ref} ({why}); it is launched at its planned start instead",
                now,
            )
