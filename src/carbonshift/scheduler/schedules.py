"""Recurring schedules: one run per nominal time, planned in its own window, one occurrence kept
planned ahead; an occurrence whose window closed while no daemon was running is recorded as missed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import CarbonshiftError
from carbonshift.schedule import next_nominal, next_occurrence
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import PENDING, z
from carbonshift.scheduler.models import JobRow, RunRow
from carbonshift.scheduler.planning import Planned
from carbonshift.scheduler.states import JobStatus, RunState

__all__ = ["Schedules"]

log = logging.getLogger(__name__)


class Schedules:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def advance_all(self, now: datetime) -> None:
        """Each active schedule's occurrences up to now, and its next one."""
        with self.store.tx() as s:
            ids = list(
                s.scalars(
                    select(JobRow.id).where(
                        JobRow.recurring.is_(True), JobRow.status == JobStatus.ACTIVE.value
                    )
                )
            )
        for job_id in ids:
            try:
                self.advance(job_id, now)
            except Exception:
                log.exception("job %s: could not create its next occurrence", job_id)

    def advance(self, job_id: str, now: datetime) -> None:
        """Keep one occurrence planned ahead, and account for every occurrence whose time has come:
        one run per nominal time (a unique constraint guards it), planned in its own window, or
        recorded as missed when its window closed while no daemon was running."""
        plans = self.ctx.plans
        created = 0
        while created < self.ctx.cfg.max_catchup:
            with self.store.tx() as s:
                job = s.get(JobRow, job_id)
                if job is None or job.status != JobStatus.ACTIVE.value:
                    return
                spec = parse_jobspec(job.spec, source=f"job {job_id}")
                mine = RunRow.job_id == job_id
                # aggregates, not every run: a nightly schedule has hundreds after a year
                last_nominal, last_seq = s.execute(
                    select(func.max(RunRow.nominal), func.max(RunRow.seq)).where(mine)
                ).one()
                pending = (
                    s.scalar(select(RunRow.id).where(mine, RunRow.state.in_(PENDING)).limit(1)) is not None
                )
                created_at = job.created_at
            assert spec.schedule is not None
            seq = (last_seq or 0) + 1
            if last_nominal is not None:
                # max() keeps the column's type (aware UTC); the check is for drivers that drop it
                last = last_nominal if last_nominal.tzinfo else last_nominal.replace(tzinfo=UTC)
                # one occurrence per nominal local time, across DST too (see carbonshift.schedule)
                nxt = next_nominal(spec.schedule.cron, spec.schedule.timezone, last + timedelta(seconds=1))
            else:
                nxt = next_occurrence(spec, created_at)
            if nxt is None or (nxt > now and pending):
                return
            earliest, deadline = plans.window_for(spec, nxt)
            latest_start = deadline - spec.duration
            planned: Planned | None = None
            problem = ""
            if now > latest_start:
                problem = (
                    f"occurrence at {z(nxt)} never started: its window (latest start {z(latest_start)}) "
                    f"passed while no daemon was running (now {z(now)})"
                )
            else:
                try:
                    planned = plans.plan(spec, max(earliest, now), deadline, now)
                except CarbonshiftError as exc:
                    problem = f"occurrence at {z(nxt)} could not be planned: {exc}"
            run_id: str | None = None
            try:
                with self.store.tx() as s:
                    job = s.get(JobRow, job_id)
                    if job is None or job.status != JobStatus.ACTIVE.value:
                        return
                    if planned is None:
                        self.store.new_run(
                            s,
                            job,
                            seq,
                            nxt,
                            earliest,
                            deadline,
                            spec.duration_s,
                            now,
                            RunState.MISSED,
                            problem,
                        )
                    else:
                        run = self.store.new_run(s, job, seq, nxt, earliest, deadline, spec.duration_s, now)
                        reason = plans.first_reason(planned).replace("first plan", f"occurrence {z(nxt)}")
                        plans.attach(s, run, planned, reason, now)
                        run_id = run.id
            except IntegrityError:
                log.info("job %s: occurrence %s already exists", job_id, z(nxt))
                return
            created += 1
            if run_id is not None:
                self.ctx.timers.adopt(run_id)
            if nxt > now:
                return
