"""Interruptible jobs run as planned: one run per chunk of the plan (`chunk i/n`), each started at its
planned start and stopped at its planned end; the job ends when its last chunk succeeds.

A chunk that fails or is missed ends the job (its chunks not yet started are cancelled); a chunk the
cloud interrupts (spot / preemptible) has what is left of the job planned again, from now.

Every chunk keeps the hardware of the plan that made it (its `planned` option's `hardware`, for a spec
with hardware alternatives): what is left of a job after an interruption is measured and planned on
the hardware it ran on, never on another alternative with another runtime.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carbonshift.config import Settings
from carbonshift.config.jobspec import JobSpec, format_duration, parse_jobspec
from carbonshift.providers.base import InstanceState, InstanceStatus
from carbonshift.scheduler import ledger
from carbonshift.scheduler.lifecycle import PENDING, Store, z
from carbonshift.scheduler.models import JobRow, RunRow
from carbonshift.scheduler.planning import Planned, Plans, hardware_index, pinned_spec
from carbonshift.scheduler.states import RunState

__all__ = ["Chunks", "set_chunk"]

# a plan option's figures that a chunk carries its share of (the embodied ones: an option of a spec
# planned with footprints)
SHARED = (
    "kg_co2e",
    "baseline_kg_co2e",
    "energy_kwh",
    "savings_kg",
    "embodied_kg_co2e",
    "total_kg_co2e",
    "total_savings_kg",
)


def set_chunk(
    run: RunRow,
    base: dict[str, Any],
    index: int,
    count: int,
    start: datetime,
    end: datetime,
    share: float,
) -> None:
    """Make `run` chunk `index`/`count` of a plan (`base`: the plan's option), from `start` to `end`;
    its planned kg CO2e, baseline, energy and embodied share are the plan's times `share`."""
    planned = dict(base)
    for key in SHARED:
        if isinstance(planned.get(key), int | float):
            planned[key] = round(float(planned[key]) * share, 6)
    planned.update(start=z(start), end=z(end), chunk={"index": index, "count": count})
    run.planned = planned
    run.planned_start, run.planned_end = start, end
    run.duration_s = int((end - start).total_seconds())
    run.chunk_index, run.chunk_count = index, count
    # the last chunk is not stopped at its planned end: it runs until the job exits (the watchdog
    # still stops it past the deadline); every other chunk is paused at its end
    run.stop_at = end if index < count else None
    for key, value in ledger.planned_numbers(planned).items():  # the ledger's copies: the chunk's share
        setattr(run, key, value)


class Preempted(NamedTuple):
    """What is left of an interrupted job: planned from now to `deadline`, on `hardware` (the
    alternative it ran on; None for a spec without alternatives)."""

    spec: JobSpec
    remaining_s: int
    deadline: datetime
    hardware: int | None


class Chunks:
    """Splitting a plan into chunk runs, ending a job's chunks, and re-planning after a preemption."""

    def __init__(self, settings: Settings, store: Store, plans: Plans) -> None:
        self.settings = settings
        self.store = store
        self.plans = plans

    def add(
        self, s: Session, job: JobRow, run: RunRow, planned: Planned, now: datetime, first_index: int = 1
    ) -> list[str]:
        """An interruptible plan split into chunks: `run` (its plan attached) becomes the first chunk
        and one run of the same job is made per further chunk, each with its planned start and end
        (`stop_at`, where the daemon stops it). Their planned kg CO2e, baseline and energy are the
        plan's, shared pro rata by chunk length. Numbered from `first_index` (after a preemption the
        re-planned chunks follow those already run). The ids of the runs made; none for one chunk."""
        chunks = planned.chosen.chunks
        if len(chunks) < 2:
            return []
        count = first_index - 1 + len(chunks)
        total_s = sum((b - a).total_seconds() for a, b in chunks)
        base = dict(run.planned or {})
        made: list[str] = []
        for k, (a, b) in enumerate(chunks):
            index = first_index + k
            if k == 0:
                row = run
            else:
                row = self.new_chunk_run(
                    s, job, run, run.seq + k, a, b, now, f"planned: chunk {index}/{count} of the job"
                )
                row.provider, row.region, row.zone = run.provider, run.region, run.zone
                row.plan_id, row.last_planned_at = run.plan_id, run.last_planned_at
                made.append(row.id)
            set_chunk(row, base, index, count, a, b, (b - a).total_seconds() / total_s)
        return made

    def new_chunk_run(
        self,
        s: Session,
        job: JobRow,
        like: RunRow,
        seq: int,
        start: datetime,
        end: datetime,
        now: datetime,
        reason: str,
    ) -> RunRow:
        """A further chunk run of the job, in the same window as the chunk `like`, as long as its span."""
        return self.store.new_run(
            s,
            job,
            seq,
            like.nominal,
            like.window_earliest,
            like.deadline,
            int((end - start).total_seconds()),
            now,
            reason=reason,
        )

    def end(self, s: Session, run: RunRow, why: str, now: datetime) -> list[str]:
        """The job of this chunk ends here (a chunk failed or was missed, or the job finished early):
        its chunks not yet started are cancelled, with the reason, in the caller's transaction. The
        ids cancelled (their launch timers are left to fire on nothing)."""
        pending = list(
            s.scalars(
                select(RunRow).where(
                    RunRow.job_id == run.job_id, RunRow.id != run.id, RunRow.state.in_(PENDING)
                )
            )
        )
        done: list[str] = []
        for other in sorted(pending, key=lambda r: r.seq):
            label = f"chunk {other.chunk_index}/{other.chunk_count}" if other.chunk_index else "run"
            if self.store.move(
                s, other, RunState.CANCELLED, f"{label} not started: {why}", now, ended_at=now, error=why
            ):
                done.append(other.id)
        job = s.get(JobRow, run.job_id)
        if job is not None and done:
            job.status_reason = f"{why}; {len(done)} chunk(s) not started were cancelled"
            job.updated_at = now
        return done

    def ended(self, s: Session, run: RunRow, to: RunState, paused: bool, why: str, now: datetime) -> None:
        """A chunk ended (`to`), in the caller's transaction: failed, the job ends with it; succeeded
        (not paused by the daemon) before the last chunk, the job finished early. Other runs: nothing."""
        index, count = run.chunk_index, run.chunk_count
        if index is None:
            return
        label = f"chunk {index}/{count}"
        if to is RunState.FAILED:
            self.end(s, run, f"{label} failed: {why}", now)
        elif to is RunState.SUCCEEDED and not paused and index < (count or 0):
            self.end(s, run, f"the job ended in {label}, before its planned end (exit code 0)", now)

    # ---- what a chunk's process sees ---------------------------------------------------------------------
    def checkpoint_dir(self, job_id: str) -> Path:
        """An interruptible job's checkpoint directory on this machine, shared by all its runs."""
        return self.settings.resolved_data_dir() / "scheduler" / "checkpoints" / job_id

    def run_env(
        self, job_id: str, provider: str, spec: JobSpec, chunk: tuple[int, int] | None
    ) -> dict[str, str]:
        """What the scheduler adds to a run's environment: a chunk's index and count, and (local runs of
        an interruptible job) the job's checkpoint directory, created here. Cloud runs get no
        checkpoint directory from the daemon (its disk is not theirs): give the job storage its chunks
        share (a bucket) through the spec's own `env` (CARBONSHIFT_* names are the scheduler's)."""
        env: dict[str, str] = {}
        if chunk is not None:
            env["CARBONSHIFT_CHUNK_INDEX"], env["CARBONSHIFT_CHUNK_COUNT"] = str(chunk[0]), str(chunk[1])
        if spec.interruptible and provider == "local":
            path = self.checkpoint_dir(job_id)
            path.mkdir(parents=True, exist_ok=True)
            env["CARBONSHIFT_CHECKPOINT_DIR"] = str(path)
        return env

    # ---- preemption --------------------------------------------------------------------------------------
    @staticmethod
    def preempted(s: Session, run: RunRow, status: InstanceStatus) -> Preempted | None:
        """For a run of a one-off interruptible job that the cloud stopped (a spot / preemptible
        interruption: the provider reports FAILED with no exit code and a Server.* reason, or says
        preempted / evicted): the spec, the seconds of the job still to run (its duration on the run's
        hardware less what its chunks ran to their end), the deadline and that hardware. None
        otherwise."""
        if status.state is not InstanceState.FAILED or status.exit_code is not None:
            return None
        if run.cancel_requested or run.stop_reason:
            return None
        detail = status.detail.lower()
        if not any(word in detail for word in ("server.", "preempt", "evict", "spot")):
            return None
        job = s.get(JobRow, run.job_id)
        if job is None or job.recurring:
            return None
        spec = parse_jobspec(job.spec, source=f"job {job.id}")
        if not spec.interruptible:
            return None
        done = s.scalar(
            select(func.coalesce(func.sum(RunRow.duration_s), 0)).where(
                RunRow.job_id == job.id, RunRow.state == RunState.SUCCEEDED.value
            )
        )
        hardware = None
        if spec.hardware_options:  # a run planned before the daemon chose hardware ran on the spec's own
            found = hardware_index(run.planned)
            hardware = 0 if found is None else found
        remaining = pinned_spec(spec, hardware).duration_s - int(done or 0)
        return Preempted(spec, remaining, run.deadline, hardware) if remaining > 0 else None

    def after_preemption(
        self, s: Session, run: RunRow, planned: Planned | None, error: str, why: str, now: datetime
    ) -> list[str]:
        """A chunk (or an unsplit run) the cloud interrupted: the job's chunks not yet started are
        replaced by a plan, made from now, for what is left of the job (numbered after those already
        made). The new runs' ids, to adopt once committed; none when nothing could be planned (the job
        then ends failed, with the reason)."""
        job = s.get(JobRow, run.job_id)
        assert job is not None
        label = f"chunk {run.chunk_index}/{run.chunk_count}" if run.chunk_index else "the run"
        if planned is None:
            self.end(s, run, f"{label} was interrupted and the rest could not be re-planned ({error})", now)
            job.status_reason = f"{why}; what is left could not be re-planned: {error}"
            job.updated_at = now
            return []
        for other in s.scalars(
            select(RunRow).where(RunRow.job_id == job.id, RunRow.id != run.id, RunRow.state.in_(PENDING))
        ):
            self.store.move(
                s,
                other,
                RunState.CANCELLED,
                f"superseded: the job was re-planned after {label} was interrupted",
                now,
                ended_at=now,
            )
        last_seq, last_index = s.execute(
            select(func.max(RunRow.seq), func.max(RunRow.chunk_index)).where(RunRow.job_id == job.id)
        ).one()
        first_index = int(last_index or 1) + 1
        remaining = int(sum((b - a).total_seconds() for a, b in planned.chosen.chunks))
        o = planned.chosen
        reason = (
            f"re-planned after {label} was interrupted by the cloud: {format_duration(timedelta(seconds=remaining))} "
            f"left, {len(o.chunks)} chunk(s) on {o.ref} from {z(o.start)} ({o.kg_co2e:.4g} kg CO2e)"
        )
        new = self.store.new_run(
            s, job, int(last_seq or 0) + 1, run.nominal, now, run.deadline, remaining, now
        )
        self.plans.adopt(s, new, planned, "preemption", reason, now)
        made = self.add(s, job, new, planned, now, first_index)
        if not made:
            set_chunk(new, dict(new.planned or {}), first_index, first_index, o.start, o.end, 1.0)
        job.status_reason = reason
        job.updated_at = now
        self.store.note(s, run, reason, now)
        return [new.id, *made]
