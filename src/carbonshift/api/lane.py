"""One lane for the API's CPU-bound answers (dry-run plans, job listings, a job's view).

The daemon is one Python process: however many worker threads compute plans at once, the GIL lets
one run Python at a time. Letting eight interleave only shares the core among them in 5 ms slices,
so every answer finishes late and the unlucky ones very late (measured with wrk at 8 connections:
plan p99 140 ms with the thread pool's 40 at once, 68 ms one at a time, at the same throughput).
Answers taken in turn finish in turn. `api_compute_slots` (default 1) raises the count for a daemon
whose live intensity sources are slow, so that a plan waiting on one does not hold up the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

__all__ = ["ComputeLane"]

T = TypeVar("T")


class ComputeLane:
    """Runs a blocking call in a worker thread, at most `slots` at once, in arrival order."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        # made on first use: an anyio limiter belongs to the event loop that runs the app
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, call: Callable[[], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.slots)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)
