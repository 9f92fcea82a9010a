"""The background sampler: every interval it reads the machine's CPU time, the job's process tree and
each power source, and appends one interval (timestamps, machine energy per component, the job's
shares) to the log. Energy is kept per interval with its times so emissions can be charged at the
intensity of that time, not at one average.

One thread, no locks shared with other trackers: several trackers on one machine each read the same
counters independently (reading a counter does not reset it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

from carbonshift.tracker.attribution import MachineCpu, ProcessTree, cpu_share
from carbonshift.tracker.sources.base import Component, PowerSource, Tick

log = logging.getLogger(__name__)


@dataclass
class EnergyLog:
    """Per interval: [t0, t1) in epoch seconds, the machine's joules per component, and the job's
    shares (CPU by CPU time, RAM by resident memory). Plain lists: appended once a second."""

    t0: list[float] = field(default_factory=list)
    t1: list[float] = field(default_factory=list)
    dt: list[float] = field(default_factory=list)  # monotonic lengths (epoch floats lose ~0.2 us)
    machine_j: dict[Component, list[float]] = field(default_factory=lambda: {c: [] for c in Component})
    cpu_share: list[float] = field(default_factory=list)
    ram_share: list[float] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)
    ram_used_bytes: list[float] = field(default_factory=list)
    job_cpu_s: float = 0.0
    memory_total_bytes: int = 0

    def __len__(self) -> int:
        return len(self.t0)


class Sampler:
    def __init__(
        self,
        sources: Sequence[PowerSource],
        job: ProcessTree,
        interval_s: float = 1.0,
        on_tick: Callable[[EnergyLog], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sources = list(sources)
        self.job = job
        self.interval_s = interval_s
        self.log = EnergyLog(memory_total_bytes=int(psutil.virtual_memory().total))
        self._on_tick = on_tick
        self._wall = wall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._machine: MachineCpu | None = None
        self._last_wall = 0.0
        self._last_mono = 0.0
        self._last_job_cpu = 0.0
        self.overhead_cpu_s = 0.0  # CPU time the sampling itself used (thread CPU clock)
        self.started_wall = 0.0

    def tracker_cpu_s(self) -> float:
        return self.overhead_cpu_s

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        c0 = time.thread_time()
        for source in self.sources:
            source.start()
        self._machine = MachineCpu()
        self._last_job_cpu = self.job.cpu_seconds()
        self._last_mono = time.monotonic()
        self._last_wall = self.started_wall = self._wall()
        self.overhead_cpu_s += time.thread_time() - c0
        self._thread = threading.Thread(target=self._run, name="carbonshift-sampler", daemon=True)
        self._thread.start()

    def attach(self, pid: int) -> None:
        """Follow a job process started after sampling began (between two samples, never during one)."""
        with self._lock:
            self.job.attach(pid)
            self._last_job_cpu = self.job.cpu_seconds()

    def stop(self, final_job_cpu_s: float | None = None) -> EnergyLog:
        """Stop sampling and take the last (partial) interval; `final_job_cpu_s` is the job's total CPU
        time as its parent's rusage says (the wrapper knows it once the root is reaped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        c0 = time.thread_time()
        with self._lock:
            self._tick(final_job_cpu_s)
            for source in self.sources:
                source.close()
        self.overhead_cpu_s += time.thread_time() - c0
        return self.log

    # ---- sampling -----------------------------------------------------------------------------
    def _run(self) -> None:
        n = 1
        base = time.monotonic()
        while not self._stop.wait(max(base + n * self.interval_s - time.monotonic(), 0.0)):
            c0 = time.thread_time()
            try:
                with self._lock:
                    self._tick(None)
            except Exception:  # a sampling bug must not kill the job's measurement silently
                log.exception("tracker sample failed; this interval is missing")
            self.overhead_cpu_s += time.thread_time() - c0
            n = max(n + 1, int((time.monotonic() - base) / self.interval_s) + 1)  # skip missed ticks

    def _tick(self, final_job_cpu_s: float | None) -> None:
        assert self._machine is not None
        mono = time.monotonic()
        dt = mono - self._last_mono
        if dt <= 0:
            return
        busy_s, utilisation = self._machine.advance()
        job_cpu = self.job.cpu_seconds()
        if final_job_cpu_s is not None:
            job_cpu = self.job.settle(final_job_cpu_s)
        d_job = max(job_cpu - self._last_job_cpu, 0.0)
        self._last_job_cpu = job_cpu
        tick = Tick(dt, utilisation)
        energy = dict.fromkeys(Component, 0.0)
        for source in self.sources:
            energy[source.component] += source.read(tick)
        vm = psutil.virtual_memory()
        log_ = self.log
        log_.t0.append(self._last_wall)
        log_.t1.append(self._last_wall + dt)  # monotonic length: a clock step does not stretch energy
        log_.dt.append(dt)
        for c in Component:
            log_.machine_j[c].append(energy[c])
        log_.cpu_share.append(cpu_share(d_job, busy_s))
        log_.ram_share.append(min(self.job.rss_bytes / vm.total, 1.0) if vm.total else 0.0)
        log_.utilisation.append(utilisation)
        log_.ram_used_bytes.append(float(vm.total - vm.available))
        log_.job_cpu_s = job_cpu
        self._last_mono = mono
        self._last_wall = self._last_wall + dt
        if self._on_tick is not None:
            self._on_tick(log_)
