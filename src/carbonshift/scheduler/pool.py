"""Provider calls off the tick: a bounded worker pool, one piece of work per run at a time, each call
timed against `scheduler.provider_call_timeout_s`.

The tick only records intents and outcomes; a slow launch (Compute Engine waits minutes per zone,
Azure's `.result()` has no timeout) never stalls polling, cancellation or the deadline watchdog of
other runs. Work is fenced with the epoch of the tick that handed it over, so a daemon that lost the
lead while its call was out writes no state when the call returns.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TypeVar

from carbonshift.clock import Clock
from carbonshift.providers.base import Handle, InstanceStatus
from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.models import RunRow
from carbonshift.scheduler.settings import SchedulerSettings

__all__ = ["SHUTDOWN_CALL_WAIT_S", "Call", "ProviderCalls"]

log = logging.getLogger(__name__)

SHUTDOWN_CALL_WAIT_S = 10.0  # at shutdown, the longest wait for provider calls in flight
_T = TypeVar("_T")


class _LateAnswer(BaseException):
    """A provider call answered after the tick gave up on it (past `provider_call_timeout_s`): raised
    in the worker instead of the answer, to unwind that run's work without recording it. A
    BaseException, so the `except Exception` around provider calls does not take it for an error."""

    def __init__(self, run_id: str, op: str, where: str, took: float, answer: str) -> None:
        super().__init__(f"run {run_id}: {op} on {where} answered after {took:.1f} s ({answer})")
        self.run_id, self.op, self.where, self.took, self.answer = run_id, op, where, took, answer


@dataclass(eq=False)
class Call:
    """Provider work handed to the worker pool: one run's (for a launch, one job's due runs, in
    order). It holds its runs' ids in `ProviderCalls.calls` until its thread returns, even after it was
    given up on, so a run never has two calls in flight."""

    keys: tuple[str, ...]
    kind: str  # launch, find, poll, release
    job_id: str | None
    epoch: int | None  # the handing tick's leadership epoch: the worker's writes are fenced with it
    submitted: float  # time.monotonic()
    future: Future[None] = field(default_factory=Future)
    started: bool = False
    # the provider call in progress ("" between calls), for the per-call timeout
    op: str = ""
    op_where: str = ""
    op_run: str = ""
    op_since: float = 0.0
    on_timeout: Callable[[float], None] | None = None
    abandoned: bool = False  # given up on: its late answer is not used


class _Workers:
    """A fixed number of daemon threads running provider work. Not a ThreadPoolExecutor: its threads
    are joined at interpreter exit, so one provider call that never returns (Azure's `.result()` has
    no timeout) would keep the daemon from ever exiting."""

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[None], Callable[[], None]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"carbonshift-provider-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, future: Future[None], fn: Callable[[], None]) -> None:
        self._queue.put((future, fn))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued (shutdown)
            try:
                fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

    def close(self) -> None:
        """Each thread ends after the work queued before this (cancelled work is skipped)."""
        for _ in self._threads:
            self._queue.put(None)


def _answer(result: object) -> str:
    if isinstance(result, Handle):
        return f"instance {result.instance_id}"
    if isinstance(result, InstanceStatus):
        return f"state {result.state.value}"
    return "no result" if result is None else str(result)[:200]


class ProviderCalls:
    """The worker pool and its bookkeeping: which runs have work in flight, each call's timeout."""

    def __init__(self, cfg: SchedulerSettings, store: Store, clock: Clock, stop: threading.Event) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self._stop = stop
        self.calls: dict[str, Call] = {}  # run id -> its provider work in flight (or queued)
        self._lock = threading.Lock()
        self._pool: _Workers | None = None
        self._local = threading.local()  # .call: a worker's current Call; .batch: a waiting tick's calls

    # ---- handing work over ---------------------------------------------------------------------------
    def submit(
        self, keys: Sequence[str], kind: str, work: Callable[[], None], job_id: str | None = None
    ) -> bool:
        """Hand provider work for these runs to the pool, fenced with the calling tick's epoch. False
        (nothing handed over) when one of the runs already has work in flight, when another launch of
        the same job is in flight, or when the daemon is stopping."""
        epoch = self.store.fence
        with self._lock:
            if self._stop.is_set() or any(key in self.calls for key in keys):
                return False
            if job_id is not None and any(
                c.kind == "launch" and c.job_id == job_id for c in self.calls.values()
            ):
                return False
            call = Call(tuple(keys), kind, job_id, epoch, time.monotonic())
            for key in keys:
                self.calls[key] = call
            pool = self._pool
            if pool is None:
                pool = self._pool = _Workers(self.cfg.provider_workers)
                weakref.finalize(self, pool.close)
            pool.submit(call.future, functools.partial(self._run_call, call, work))
        batch: list[Call] | None = getattr(self._local, "batch", None)
        if batch is not None:
            batch.append(call)
        return True

    @contextlib.contextmanager
    def phases(self, wait_for_calls: bool) -> Iterator[Callable[[], None]]:
        """A tick's pass: yields `settle()`, which (when `wait_for_calls`) waits for the calls handed
        over since the last settle, as if they had run inline; otherwise it does nothing."""
        batch: list[Call] = []
        self._local.batch = batch if wait_for_calls else None

        def settle() -> None:
            if wait_for_calls:
                self._await(batch)
                batch.clear()

        try:
            yield settle
        finally:
            self._local.batch = None

    def _run_call(self, call: Call, work: Callable[[], None]) -> None:
        """In a worker thread: the work, with the handing tick's epoch as this thread's fence (a
        daemon that lost the lead since writes no state), then the runs are free for the next call."""
        self._local.call = call
        with self._lock:
            call.started = True
        try:
            with self.store.fenced(call.epoch):
                work()
        except _LateAnswer as late:
            self._late_answer(late)
        except Exception:
            log.exception("run %s: %s failed; retried at the next tick", call.keys[0], call.kind)
        finally:
            self._local.call = None
            with self._lock:
                for key in call.keys:
                    if self.calls.get(key) is call:
                        del self.calls[key]

    # ---- one provider call -----------------------------------------------------------------------------
    def call(
        self,
        run_id: str,
        op: str,
        where: str,
        fn: Callable[[], _T],
        on_timeout: Callable[[float], None] | None = None,
    ) -> _T:
        """Make one provider call. In a worker it is timed: past `provider_call_timeout_s` a tick gives
        up on it (`on_timeout(seconds)` records what that means for the run; see expire), and when it
        answers after that, _LateAnswer is raised instead of its answer. Elsewhere (the API's cancel
        and report paths) the call is simply made."""
        call: Call | None = getattr(self._local, "call", None)
        if call is None:
            return fn()
        with self._lock:
            call.op, call.op_where, call.op_run = op, where, run_id
            call.op_since, call.on_timeout = time.monotonic(), on_timeout
        try:
            result = fn()
        except Exception as exc:
            self._end_call(call, f"error: {exc}")
            raise
        self._end_call(call, _answer(result))
        return result

    def _end_call(self, call: Call, answer: str) -> None:
        with self._lock:
            late, took = call.abandoned, time.monotonic() - call.op_since
            op, where, run_id = call.op, call.op_where, call.op_run
            call.op, call.on_timeout = "", None
        if late:
            raise _LateAnswer(run_id, op, where, took, answer)

    # ---- timeouts --------------------------------------------------------------------------------------
    def expire(self) -> None:
        """Give up on provider calls past `provider_call_timeout_s`: each is marked abandoned (its
        answer, when it comes, is not used) and its `on_timeout` records what that means for the run.
        Its thread stays busy until the call returns, and its runs get no other call until then."""
        limit = self.cfg.provider_call_timeout_s
        expired: list[tuple[str, str, str, float, Callable[[float], None] | None]] = []
        with self._lock:
            now = time.monotonic()
            for call in set(self.calls.values()):
                if call.op and not call.abandoned and now - call.op_since > limit:
                    call.abandoned = True
                    expired.append(
                        (call.op_run, call.op, call.op_where, now - call.op_since, call.on_timeout)
                    )
        for run_id, op, where, took, on_timeout in expired:
            log.warning(
                "run %s: %s on %s gave no answer in %.0f s (scheduler.provider_call_timeout_s): given up "
                "on; an answer that comes later is not used",
                run_id,
                op,
                where,
                took,
            )
            if on_timeout is not None:
                try:
                    on_timeout(took)
                except Exception:
                    log.exception("run %s: recording the timeout of %s failed", run_id, op)

    def _await(self, calls: list[Call]) -> None:
        """A waiting tick's barrier: until each of these calls has completed or was given up on (a
        call still queued behind busy workers: at most the per-call timeout after it was handed over),
        or the daemon is stopping."""
        limit = self.cfg.provider_call_timeout_s
        while not self._stop.is_set():
            self.expire()
            with self._lock:
                now = time.monotonic()
                pending = [
                    c.future
                    for c in calls
                    if not c.future.done() and not c.abandoned and (c.started or now - c.submitted <= limit)
                ]
            if not pending:
                return
            wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)

    def _late_answer(self, late: _LateAnswer) -> None:
        log.warning(
            "run %s: %s on %s answered %.0f s after it began, after it was given up on (%s): not used",
            late.run_id,
            late.op,
            late.where,
            late.took,
            late.answer,
        )
        if late.op != "launch":
            return
        try:
            with self.store.tx() as s:
                run = s.get(RunRow, late.run_id)
                if run is not None:
                    self.store.note(
                        s,
                        run,
                        f"the launch call on {late.where}, given up on, answered {late.took:.0f} s after it "
                        f"began ({late.answer}); not used: {late.where} is asked for this run instead",
                        self.clock.now(),
                    )
        except Exception:
            log.exception("run %s: noting a late launch answer failed", late.run_id)

    def drain(self, wait_for_them: bool) -> None:
        """At shutdown (no call is accepted once the stop event is set): drop the queued calls (their
        runs are as the last tick left them; the next daemon goes on from there), give those in flight
        a short while, then let the pool's threads end."""
        with self._lock:
            calls = set(self.calls.values())
            pool, self._pool = self._pool, None
            for call in calls:
                if call.future.cancel():
                    for key in call.keys:
                        if self.calls.get(key) is call:
                            del self.calls[key]
        running = [c for c in calls if not c.future.done()]
        if running and wait_for_them:
            wait(
                [c.future for c in running],
                timeout=min(SHUTDOWN_CALL_WAIT_S, self.cfg.provider_call_timeout_s),
            )
        left = [c for c in running if not c.future.done()]
        if left:
            log.warning(
                "shutdown: %d provider call(s) still in flight (%s): left to finish on their own; the next "
                "daemon settles their runs",
                len(left),
                ", ".join(f"{c.kind} {c.keys[0]}" for c in left),
            )
        if pool is not None:
            pool.close()
