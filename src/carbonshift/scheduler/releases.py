"""Releasing a finished cloud run's instance until the provider confirms it is gone.

A release is recorded on the run first (`release_state` pending), tried at once, and kept and retried
with backoff, by whichever daemon is active, across restarts. A powered-off VM is not gone: Azure keeps
(and bills) a stopped VM, Compute Engine keeps its disk, so providers delete. Local runs have nothing
left to release once their process group has exited.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from carbonshift.providers.base import Handle
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import z
from carbonshift.scheduler.models import RunRow

__all__ = ["RELEASE_RETRY_MAX_S", "RELEASE_RETRY_S", "Releases"]

log = logging.getLogger(__name__)

RELEASE_RETRY_S = 30.0  # a release not yet confirmed is tried again after this, doubling each time
RELEASE_RETRY_MAX_S = 3600.0


class Releases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def release(self, run_id: str) -> None:
        """A run ended: its instance (cloud runs) is to be released; recorded, then tried at once."""
        now = self.ctx.clock.now()
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.handle is None or run.provider in (None, "local") or run.release_state:
                return
            run.release_state = "pending"
            run.release_next_at = now
        self._release_one(run_id, now)

    def release_due(self, now: datetime) -> None:
        """Hand each release whose retry time has come to the pool."""
        with self.store.tx() as s:
            ids = list(
                s.scalars(
                    select(RunRow.id).where(RunRow.release_state == "pending", RunRow.release_next_at <= now)
                )
            )
        for run_id in ids:
            self.ctx.calls.submit([run_id], "release", functools.partial(self._release_task, run_id))

    def _release_task(self, run_id: str) -> None:
        self._release_one(run_id, self.ctx.clock.now())

    def _release_one(self, run_id: str, now: datetime) -> None:
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.release_state != "pending" or run.handle is None:
                return
            provider = self.ctx.providers.get(run.provider or "")
            handle = Handle.from_dict(run.handle)
        error: str | None = None
        gone = False
        if provider is None:
            error = f"provider {handle.provider} is not configured on this daemon"
        else:
            timed_out = functools.partial(self._release_timed_out, run_id, handle)
            call = self.ctx.calls.call
            try:
                call(
                    run_id,
                    "terminate",
                    handle.provider,
                    functools.partial(provider.terminate, handle),
                    timed_out,
                )
                gone = call(
                    run_id, "gone", handle.provider, functools.partial(provider.gone, handle), timed_out
                )
            except Exception as exc:
                error = str(exc) or type(exc).__name__
        self._outcome(run_id, handle, gone, error, now)

    def _release_timed_out(self, run_id: str, handle: Handle, took: float) -> None:
        """A release call given up on: a failed attempt, retried with backoff once the call returns."""
        limit = self.ctx.cfg.provider_call_timeout_s
        why = f"{took:.0f} s without an answer (scheduler.provider_call_timeout_s: {limit:g} s)"
        self._outcome(run_id, handle, False, why, self.ctx.clock.now())

    def _outcome(self, run_id: str, handle: Handle, gone: bool, error: str | None, now: datetime) -> None:
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.release_state != "pending":
                return
            if gone:
                run.release_state, run.released_at, run.release_error = "done", now, None
                self.store.note(
                    s,
                    run,
                    f"instance {handle.instance_id} released: {handle.provider} confirms it is gone",
                    now,
                )
                return
            run.release_attempts += 1
            delay = min(RELEASE_RETRY_S * 2 ** (run.release_attempts - 1), RELEASE_RETRY_MAX_S)
            run.release_next_at = now + timedelta(seconds=delay)
            run.release_error = error or "terminate requested; the instance is not gone yet"
            self.store.note(
                s,
                run,
                f"release of {handle.instance_id}, attempt {run.release_attempts}: {run.release_error}; "
                f"trying again at {z(run.release_next_at)}",
                now,
            )
        if error is not None:
            log.warning(
                "run %s: releasing its %s instance failed (%s); retried later", run_id, handle.provider, error
            )
