"""Launching due runs, and settling launches whose outcome is not known.

`launching` and the run id are committed before `provider.launch`, so a restart finds the run in
`launching` and asks `provider.find(run_id)` instead of launching a second time. A launch error that
is not a capacity refusal (a timeout after the API took the request, a long-running operation that
failed late) is unclear: the run stays `launching` and the provider is asked for it on the next ticks,
a bounded number of times, before it is declared lost with an orphan check asked for. Right before each
launch the daemon checks it still leads; a relaunch repeats the very same request (same idempotency
key, same report token), so a run starts once.

A run queued ahead at an engine with a queue of its own (queueing.py) is launched the same way: the
provider returns the queued job (Slurm, which starts it itself: the run is then not declared missed by
a late daemon) or lets it go (a suspended Kubernetes Job, resumed; one found still held after a restart
is launched again).

A run of a spec with hardware alternatives is launched on the hardware its plan chose
(`planning.run_spec`, through `launch_spec`): the provider picks the instance type for that hardware in
that region, and the run's latest start is its deadline less that hardware's duration. Its capacity
fallbacks are the plan's next-best options in rank order, on other hardware too when that still
finishes by the deadline from now (a chunk keeps its plan's hardware: same hardware only).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbonshift.config.jobspec import JobSpec, format_duration, parse_jobspec
from carbonshift.providers.base import HELD, CapacityError, Handle, Provider, queueing
from carbonshift.scheduler import ledger
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import ACTIVE, PENDING, TERMINAL_STATES, z
from carbonshift.scheduler.models import JobRow, PlanRow, RunRow
from carbonshift.scheduler.planning import hardware_index, run_spec
from carbonshift.scheduler.polling import Polling
from carbonshift.scheduler.queueing import QueueAhead, launch_request, launch_spec, queued_handle
from carbonshift.scheduler.states import JobStatus, RunState
from carbonshift.scheduler.tokens import hash_token

__all__ = ["Launcher"]

log = logging.getLogger(__name__)


class Launcher:
    def __init__(self, ctx: Context, polling: Polling) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.polling = polling
        self.queue = QueueAhead(ctx, polling.releases)

    # ---- settling launches ---------------------------------------------------------------------------
    def resolve_launching(self) -> None:
        """A run found in `launching` with no call of this daemon in flight for it is one whose launch
        has no settled outcome: either a daemon stopped while launching it, or its launch call ended
        without a clear answer (`launch_error`: a timeout, an operation error, no answer within
        `provider_call_timeout_s`), so an instance may exist. Its provider, asked by run id (in the
        worker pool), decides: it has the instance (the launch got through: running) or not. Not found
        after a crash: the launch never got through (waiting, launched once). Not found after an
        unclear error: asked again on the next ticks, up to `launch_settle_looks`, then declared lost
        with an orphan check asked for. A run whose launch is still in flight here is left alone (one
        call per run): the pool refuses it."""
        with self.store.tx() as s:
            rows = [
                (r.id, r.provider, r.region)
                for r in s.scalars(select(RunRow).where(RunRow.state == RunState.LAUNCHING.value))
            ]
        for run_id, provider_name, region in rows:
            provider = self.ctx.providers.get(provider_name or "")
            if provider is None:
                log.warning("run %s: launching on %s, which is not configured here", run_id, provider_name)
                continue
            self.ctx.calls.submit(
                [run_id],
                "find",
                functools.partial(self._resolve_one, run_id, str(provider_name), region or "", provider),
            )

    def _resolve_one(self, run_id: str, provider_name: str, region: str, provider: Provider) -> None:
        """In a worker: ask the provider for a launching run by its id, and settle the run."""
        try:
            handle = self.ctx.calls.call(
                run_id, "find", provider_name, functools.partial(provider.find, run_id, region)
            )
        except Exception as exc:
            log.warning("run %s: cannot ask %s for it (%s); retrying next tick", run_id, provider_name, exc)
            return
        now = self.ctx.clock.now()
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.LAUNCHING.value:
                return
            if handle is not None and handle.details.get(HELD):
                # the run's job queued ahead, still held: the launch (which lets it go) never got
                # through, so it is launched again (the same request: it starts once)
                self.store.move(
                    s,
                    run,
                    RunState.WAITING,
                    f"recovered: {provider_name} still holds its queued job {handle.instance_id} for this "
                    "run id, so the launch did not get through; launching it again",
                    now,
                    launch_error=None,
                )
            elif handle is not None:
                after = "an unclear launch answer" if run.launch_error else "a restart"
                self.store.move(
                    s,
                    run,
                    RunState.RUNNING,
                    f"recovered after {after}: {provider_name} has instance {handle.instance_id} "
                    "for this run id (the launch had got through)",
                    now,
                    launch_error=None,
                    **self.store.handle_fields(handle),
                )
            elif run.launch_error is not None:
                self._unsettled_launch(s, run, provider_name, now)
            else:
                # a daemon stopped (or lost the lead) after committing `launching`; an earlier
                # leader may even still be inside the provider call, so the relaunch repeats that
                # very request (same idempotency key, same report token): it starts once
                earlier = run.launch_epoch
                by = (
                    f" by the leader of epoch {earlier}"
                    if earlier not in (None, self.ctx.leadership.epoch)
                    else ""
                )
                self.store.move(
                    s,
                    run,
                    RunState.WAITING,
                    f"recovered after a restart or takeover: {provider_name} has no instance for this "
                    f"run id, so no launch{by} has got through yet; relaunching with the same "
                    "idempotency key and report token, so it starts once",
                    now,
                )

    def _unsettled_launch(self, s: Session, run: RunRow, provider_name: str, now: datetime) -> None:
        """One more look found no instance for a run whose launch answer was unclear."""
        run.launch_looks += 1
        limit = self.ctx.cfg.launch_settle_looks
        if run.launch_looks < limit:
            self.store.note(
                s,
                run,
                f"look {run.launch_looks} of {limit}: {provider_name} has no instance for this run yet "
                f"(the launch ended with: {run.launch_error})",
                now,
            )
            return
        why = (
            f"lost: the launch ended with '{run.launch_error}' and {provider_name} showed no instance for "
            f"this run id in {limit} looks; an instance may still appear: check with `carbonshift providers "
            f"orphans --provider {provider_name}`"
        )
        if self.store.move(
            s, run, RunState.FAILED, why, now, ended_at=now, error="launch outcome unknown: lost"
        ):
            log.warning("run %s: %s", run.id, why)  # the orphan check a person should run

    # ---- launching due runs --------------------------------------------------------------------------
    def launch_due(self, now: datetime) -> None:
        """Hand each job's due runs to the pool: one piece of work per job, its runs in order (so a
        schedule's overlap rule sees the run before), skipped while another launch of the job, or any
        call for one of its runs, is still in flight."""
        with self.store.tx() as s:
            rows = list(
                s.execute(
                    select(RunRow.id, RunRow.job_id)
                    .where(RunRow.state == RunState.WAITING.value, RunRow.planned_start <= now)
                    .order_by(RunRow.planned_start, RunRow.seq)
                )
            )
        by_job: dict[str, list[str]] = {}
        for run_id, job_id in rows:
            by_job.setdefault(job_id, []).append(run_id)
        for job_id, run_ids in by_job.items():
            self.ctx.calls.submit(
                run_ids, "launch", functools.partial(self._launch_runs, run_ids), job_id=job_id
            )
        self.queue.sync_due(now)

    def _launch_runs(self, run_ids: list[str]) -> None:
        """In a worker: launch one job's due runs, one after the other."""
        for run_id in run_ids:
            try:
                self._launch(run_id, self.ctx.clock.now())
            except Exception:
                log.exception("run %s: launch step failed; retried next tick", run_id)

    def _missed(
        self, s: Session, run: RunRow, why: str, error: str, chunk_why: str | None, now: datetime
    ) -> None:
        """The run can no longer start in time: missed, and (a chunk) its job's later chunks with it."""
        self.store.move(s, run, RunState.MISSED, why, now, ended_at=now, error=error)
        if chunk_why is not None:
            self.ctx.chunks.end(s, run, chunk_why, now)

    def _launch(self, run_id: str, now: datetime) -> None:
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state != RunState.WAITING.value or run.planned_start is None:
                return
            job = s.get(JobRow, run.job_id)
            assert job is not None
            if job.status == JobStatus.CANCELLED.value or run.cancel_requested:
                self.store.move(s, run, RunState.CANCELLED, "cancelled before it started", now, ended_at=now)
                return
            spec = parse_jobspec(job.spec, source=f"job {job.id}")
            duration = timedelta(seconds=run.duration_s)
            latest = run.deadline - duration
            chunk = None if run.chunk_index is None else (run.chunk_index, run.chunk_count or run.chunk_index)
            label = None if chunk is None else f"chunk {chunk[0]}/{chunk[1]}"
            if chunk is not None:
                siblings = list(
                    s.scalars(select(RunRow).where(RunRow.job_id == job.id, RunRow.chunk_index.is_not(None)))
                )
                before = [
                    r for r in siblings if (r.chunk_index or 0) < chunk[0] and r.state not in TERMINAL_STATES
                ]
                if before:
                    note = f"waits for chunk {before[0].chunk_index}/{before[0].chunk_count} to end"
                    if run.note != note:
                        run.note = note
                        self.store.note(s, run, note, now)
                    return
                # this chunk and the chunks after it must all still fit before the deadline
                later = sum(
                    r.duration_s for r in siblings if (r.chunk_index or 0) > chunk[0] and r.state in PENDING
                )
                latest = run.deadline - duration - timedelta(seconds=later)
            if job.recurring and spec.schedule is not None:
                blocker = s.scalars(
                    select(RunRow).where(
                        RunRow.job_id == job.id, RunRow.state.in_(ACTIVE), RunRow.id != run.id
                    )
                ).first()
                if blocker is not None:
                    self._overlap(s, run, blocker, spec.schedule.overlap, latest, now)
                    return
            late_s = (now - run.planned_start).total_seconds()
            if self._engine_has_it(run):
                pass  # queued ahead at an engine that starts it at its time: no longer ours to miss
            elif now > latest:
                why = (
                    f"due at {z(run.planned_start)} but not started by its latest start {z(latest)} "
                    f"(deadline {z(run.deadline)} minus duration {format_duration(duration)}); it is now "
                    f"{z(now)}: the daemon was down or could not launch it in time"
                )
                self._missed(
                    s, run, why, "missed its deadline", label and f"{label} missed its latest start", now
                )
                return
            grace = self.ctx.cfg.misfire_grace_s
            if grace is not None and late_s > grace and not self._engine_has_it(run):
                why = (
                    f"due at {z(run.planned_start)}, now {late_s:.0f} s late: more than "
                    f"scheduler.misfire_grace_s ({grace:.0f} s)"
                )
                self._missed(
                    s, run, why, "later than the misfire grace", label and f"{label} was missed", now
                )
                return
            options = self._options_for(s, run)
            the_spec = launch_spec(spec, run)
            # a fallback on other hardware is launched with that hardware (same window, no schedule)
            for_option = functools.partial(_option_spec, the_spec, spec)
            deadline = run.deadline
            if run.stop_at is not None:
                # a chunk runs for its planned length, from when it starts (later, if it starts late)
                run.stop_at = now + duration
            job_id = job.id
        env = functools.partial(self.ctx.chunks.run_env, job_id, spec=spec, chunk=chunk)
        self._launch_options(run_id, for_option, deadline, options, late_s, now, env=env)

    def _engine_has_it(self, run: RunRow) -> bool:
        """Whether the run is queued ahead where it is planned, at an engine that starts queued runs
        itself (Slurm): it may be running already, so the launch only records it."""
        queued = queued_handle(run)
        provider = queueing(self.ctx.providers.get(run.provider or ""))
        return (
            queued is not None
            and provider is not None
            and provider.starts_queued
            and (queued.provider, queued.region) == (run.provider, run.region)
        )

    def _overlap(
        self, s: Session, run: RunRow, blocker: RunRow, policy: str, latest: datetime, now: datetime
    ) -> None:
        if policy == "skip":
            self.store.move(
                s,
                run,
                RunState.MISSED,
                f"skipped: run {blocker.id} of this schedule was still {blocker.state} when this occurrence "
                "was due (schedule.overlap: skip)",
                now,
                ended_at=now,
                error="skipped: the previous run was still going",
            )
        elif now > latest:
            self.store.move(
                s,
                run,
                RunState.MISSED,
                f"queued behind run {blocker.id} (schedule.overlap: queue) until its latest start {z(latest)} passed",
                now,
                ended_at=now,
                error="queued past its latest start",
            )
        else:
            note = (
                f"queued behind run {blocker.id}, still {blocker.state} (schedule.overlap: queue): starts "
                f"when it ends, if by {z(latest)}"
            )
            if run.note != note:
                run.note = note
                self.store.note(s, run, note, now)

    @staticmethod
    def _options_for(s: Session, run: RunRow) -> list[dict[str, Any]]:
        """The run's own option first, then the plan's next-best ones (capacity fallbacks): another
        place on the same hardware, or (a run that is not a chunk: a chunk keeps its plan's hardware)
        any place on other hardware of the spec's alternatives."""
        plan = s.get(PlanRow, run.plan_id) if run.plan_id is not None else None
        options = [dict(o) for o in (plan.options if plan is not None else [])]
        mine = {**(run.planned or {}), "provider": run.provider, "region": run.region, "zone": run.zone}
        hardware = hardware_index(mine)
        others = [
            o
            for o in options
            if (
                hardware_index(o) == hardware
                and (o.get("provider"), o.get("region")) != (run.provider, run.region)
            )
            or (hardware_index(o) != hardware and run.chunk_index is None)
        ]
        return [mine, *others]

    def _fail_launch(self, run_id: str, state: RunState, why: str, error: str, now: datetime) -> None:
        """A run still in `state` ends before any instance exists (nothing to launch on): failed once
        launching, missed while still waiting (it never started; waiting cannot fail)."""
        to = RunState.MISSED if state is RunState.WAITING else RunState.FAILED
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == state.value:
                self.store.move(s, run, to, why, now, ended_at=now, error=error)

    def _mark_launching(
        self,
        run_id: str,
        index: int,
        option: dict[str, Any],
        options: list[dict[str, Any]],
        refused: list[str],
        token: str,
        late_s: float,
        now: datetime,
    ) -> bool:
        """Commit the attempt before the call: the first option moves the run to `launching` (with the
        fence's epoch); a capacity fallback re-points the launching run at the next option, with a
        plan row saying why. False when the run is no longer ours to launch."""
        ref = f"{option['provider']}:{option['region']}"
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return False
            values = {
                "provider": option["provider"],
                "region": option["region"],
                "zone": option.get("zone"),
                "report_token_hash": hash_token(token),
                "launch_attempts": run.launch_attempts + 1,
                "launched_at": now,
                "launch_error": None,
                "launch_looks": 0,
                "launch_epoch": self.store.fence,
            }
            if index == 0:
                lateness = f", {late_s:.0f} s after its planned start" if late_s >= 1 else ""
                return self.store.move(
                    s, run, RunState.LAUNCHING, f"launching on {ref}{lateness}", now, **values
                )
            if run.state != RunState.LAUNCHING.value:
                return False
            for key, value in values.items():
                setattr(run, key, value)
            other = hardware_index(option) != hardware_index(run.planned)
            if other:  # another hardware alternative: the run is as long as it takes on that
                run.duration_s = int((option.get("hardware") or {}).get("duration_s") or run.duration_s)
                ref = f"{ref} on {_label(option)}"
            run.planned = {
                **option,
                "note": f"capacity fallback: started at {z(now)} "
                + (
                    f"on {_label(option)}, the plan's next best"
                    if other
                    else "in the plan's next-best region"
                ),
            }
            for key, number in ledger.planned_numbers(run.planned).items():
                setattr(run, key, number)
            s.add(
                PlanRow(
                    job_id=run.job_id,
                    run_id=run.id,
                    generated_at=now,
                    kind="capacity",
                    adopted=True,
                    reason=f"capacity: {'; '.join(refused)}; launching on {ref}, the plan's next best",
                    option=option,
                    options=[o for o in options if o is not option],
                    baseline=None,
                    signal=option.get("signal"),
                    notices=[],
                )
            )
            self.store.note(s, run, f"trying {ref} after a capacity refusal", now)
        return True

    def _launch_options(
        self,
        run_id: str,
        spec_for: Callable[[dict[str, Any]], JobSpec],
        deadline: datetime,
        options: list[dict[str, Any]],
        late_s: float,
        now: datetime,
        env: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        """Launch on the first option that has capacity. `spec_for(option)`: the spec launched for an
        option (on its hardware); a fallback on other hardware that would not finish by the deadline
        from now is passed over. `env(provider)`: what the scheduler adds to the run's environment
        there (a chunk's index and count, a checkpoint directory)."""
        usable = [o for o in options if o.get("provider") in self.ctx.providers]
        if not usable:
            why = f"no configured provider for any option (wanted {options[0].get('provider')})"
            self._fail_launch(run_id, RunState.WAITING, why, "provider not configured", now)
            return
        refused: list[str] = []
        for index, option in enumerate(usable):
            ref = f"{option['provider']}:{option['region']}"
            spec = spec_for(option)
            skip = self._passed_over(option, usable[0], spec, deadline, now) if index > 0 else None
            if skip is not None:
                refused.append(f"{ref} on {_label(option)} passed over ({skip})")
                continue
            token = self.ctx.tokens.token(run_id)
            if not self._mark_launching(run_id, index, option, options, refused, token, late_s, now):
                return
            provider = self.ctx.providers[str(option["provider"])]
            if not self.ctx.leadership.leading():
                # the lock or the epoch went to another daemon since this tick began: launch nothing;
                # the run stays launching and the new leader settles it by asking the provider
                log.warning("run %s: not launching on %s: this daemon is no longer the leader", run_id, ref)
                return
            request = launch_request(
                self.ctx,
                run_id,
                spec,
                str(option["region"]),
                deadline,
                token,
                {} if env is None else env(str(option["provider"])),
            )
            try:
                handle = self.ctx.calls.call(
                    run_id,
                    "launch",
                    ref,
                    functools.partial(provider.launch, request),
                    functools.partial(self._launch_timed_out, run_id, ref),
                )
            except CapacityError as exc:
                why = exc.reason.removeprefix(f"{exc.region}: ")
                refused.append(f"{ref} refused ({why})")
                self._refused(run_id, option, ref, why, exc.code, now)
                continue
            except Exception as exc:
                # not a refusal: the request may have got through (a timeout after the API took it, a
                # long-running operation that failed late), so the run stays launching and the
                # provider is asked for it by run id on the next ticks (resolve_launching)
                self._unclear_launch(run_id, ref, str(exc), now)
                return
            self._launched(run_id, ref, handle, now)
            return
        self._fail_launch(
            run_id,
            RunState.LAUNCHING,
            "every option of the plan refused: " + "; ".join(refused),
            "no capacity in any option",
            now,
        )

    def _passed_over(
        self, option: dict[str, Any], mine: dict[str, Any], spec: JobSpec, deadline: datetime, now: datetime
    ) -> str | None:
        """Why a capacity fallback on other hardware than the run's own option (`mine`) is not tried:
        it would end after the deadline, or it is on the cluster that holds the run's job queued ahead
        on its own hardware (asked again, it would answer with that job). None: it is tried."""
        if hardware_index(option) == hardware_index(mine):
            return None
        if now + spec.duration > deadline:
            return f"it would end after the deadline {z(deadline)}"
        same_place = (option["provider"], option["region"]) == (mine["provider"], mine["region"])
        if same_place and queueing(self.ctx.providers[str(option["provider"])]) is not None:
            return "the cluster holds this run's job on its planned hardware"
        return None

    def _refused(
        self, run_id: str, option: dict[str, Any], ref: str, why: str, code: str | None, now: datetime
    ) -> None:
        """A capacity refusal, kept on the run (the next option is tried)."""
        refusal = {
            "at": z(self.ctx.clock.now()),
            "provider": option["provider"],
            "region": option["region"],
            "reason": why,
            "code": code,
        }
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return
            run.refusals = [*(run.refusals or []), refusal]
            self.store.note(s, run, f"{ref} refused: {why}", now)

    def _launched(self, run_id: str, ref: str, handle: Handle, now: datetime) -> None:
        """The provider started the instance: the run is running (unless settled meanwhile)."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return
            if run.state != RunState.LAUNCHING.value:
                # settled while the call was out (its tracker reported; a new leader ran it)
                log.warning(
                    "run %s: launched on %s (%s) but the run is %s by now: not recorded",
                    run_id,
                    ref,
                    handle.instance_id,
                    run.state,
                )
                recorded = False
            else:
                recorded = self.store.move(
                    s,
                    run,
                    RunState.RUNNING,
                    f"launched on {ref}: {handle.instance_id}",
                    self.ctx.clock.now(),
                    **self.store.handle_fields(handle),
                )
            cancel = run.cancel_requested
            stop_at = run.stop_at
        if recorded and stop_at is not None:
            self.ctx.timers.schedule_stop(run_id, stop_at)
        if not recorded and not self.ctx.leadership.leading():
            # a leader that lost the lead during the call (its write was fenced) steps down now:
            # the new leader has taken the shared timer jobs over, so no tick of ours would notice
            self.ctx.leadership.lose()
            return
        if cancel:
            self.polling.stop_run(run_id, now)

    def _unclear_launch(self, run_id: str, ref: str, detail: str, now: datetime) -> None:
        """A launch call ended with no clear answer: the run stays launching, with `launch_error`, and
        resolve_launching asks the provider for it on the next ticks."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is not None and run.state == RunState.LAUNCHING.value:
                run.launch_error = f"{ref}: {detail}"
                run.launch_looks = 0
                self.store.note(
                    s,
                    run,
                    f"launch on {ref} ended without a clear answer ({detail}); {ref} will be asked "
                    f"for this run on the next ticks (up to {self.ctx.cfg.launch_settle_looks} looks)",
                    now,
                )

    def _launch_timed_out(self, run_id: str, ref: str, took: float) -> None:
        """A launch call given up on (past the per-call timeout) is an unclear answer like any other:
        the instance may exist. Its thread may still return; that answer is not used (the pool raises
        instead), and the provider is asked for the run once the call has returned."""
        limit = self.ctx.cfg.provider_call_timeout_s
        detail = (
            f"no answer in {took:.0f} s, past scheduler.provider_call_timeout_s ({limit:g} s); "
            "a later answer is not used"
        )
        self._unclear_launch(run_id, ref, detail, self.ctx.clock.now())


def _option_spec(launched: JobSpec, spec: JobSpec, option: dict[str, Any]) -> JobSpec:
    """The spec launched for `option`: the run's own (`launched`), or the job's `spec` on the option's
    hardware alternative, in the same window, for a capacity fallback on other hardware."""
    if hardware_index(option) is None or not spec.hardware_options:
        return launched
    return run_spec(spec, option).model_copy(update={"window": launched.window, "schedule": None})


def _label(option: dict[str, Any]) -> str:
    hardware = option.get("hardware")
    return str(hardware.get("label", "?")) if isinstance(hardware, dict) else "its hardware"
