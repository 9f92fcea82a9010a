"""Process attribution: the job's process tree's CPU time and memory, so a job on a shared machine is
charged for its own work and not its neighbours'.

The job's CPU time is the sum, over the live processes of the tree, of each one's own user+system time
plus the time of the children it has reaped (children_user/children_system). A child that exits and is
reaped moves its time from its own line into its parent's, so the sum stays continuous and a
short-lived compiler spawned between two samples is still counted. Time of a process reaped outside
the tree (a daemon re-parented to init) is lost; the wrapper's own wait4() rusage makes up the root's
whole tree at the end.

Finding the tree means scanning every process on the machine (psutil reads /proc/*/stat): about 2 ms
for 100 processes. The scan is re-done at most as often as keeps it under half a percent of one core;
between scans the known processes are read directly (a few tens of microseconds each).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

RESCAN_BUDGET = 0.005  # fraction of one core the tree scans may use


def _own_and_reaped(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


class ProcessTree:
    """A root process and its descendants. `root_pid` None: nothing attached yet (CPU 0)."""

    def __init__(
        self,
        root_pid: int | None = None,
        *,
        exclude_cpu_s: Callable[[], float] | None = None,
    ) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._root: psutil.Process | None = None
        self._baseline = 0.0
        self._last_raw = 0.0
        self._cum = 0.0
        self._exclude = exclude_cpu_s
        self._last_scan = -1e18
        self._scan_cost = 0.0
        self.rss_bytes = 0
        if root_pid is not None:
            self.attach(root_pid)

    @property
    def root_pid(self) -> int | None:
        return self._root.pid if self._root is not None else None

    @property
    def in_process(self) -> bool:
        return self.root_pid == os.getpid()

    def attach(self, pid: int) -> None:
        """Follow `pid` and its descendants from now on; CPU time it already used is not the job's
        unless it is a process started for the job (then its time so far is tiny anyway)."""
        root = psutil.Process(pid)
        self._root = root
        self._procs = {pid: root}
        self._last_scan = -1e18
        raw = self._raw()
        self._baseline = raw if pid == os.getpid() else 0.0
        self._last_raw = raw

    def cpu_seconds(self) -> float:
        """The tree's CPU time (user + system, all processes, reaped children included) since attach,
        never decreasing; refreshes `rss_bytes` on the way."""
        if self._root is None:
            return 0.0
        raw = self._raw()
        if raw > self._last_raw:
            self._cum += raw - self._last_raw
        self._last_raw = raw  # a drop (a process reaped outside the tree) is not taken back later
        return self._cum

    def settle(self, total_cpu_s: float) -> float:
        """At the end: the root's own accounting (wait4 rusage of the reaped root covers its whole tree)
        is at least what sampling saw; take the larger. Returns the final cumulative time."""
        self._cum = max(self._cum, total_cpu_s)
        return self._cum

    # ---- internals ------------------------------------------------------------------------------
    def _rescan(self) -> None:
        root = self._root
        if root is None:
            return
        now = time.monotonic()
        if now - self._last_scan < self._scan_cost / RESCAN_BUDGET:
            return
        t0 = time.perf_counter()
        try:
            children = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            children = []
        known = {root.pid: root}
        for child in children:
            known[child.pid] = self._procs.get(child.pid, child)
        self._procs = known
        self._scan_cost = time.perf_counter() - t0
        self._last_scan = now

    def _raw(self) -> float:
        self._rescan()
        total = 0.0
        rss = 0
        gone: list[int] = []
        for pid, proc in self._procs.items():
            try:
                with proc.oneshot():
                    total += _own_and_reaped(proc)
                    rss += int(proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                gone.append(pid)
        for pid in gone:
            self._procs.pop(pid, None)
        self.rss_bytes = rss
        if self._exclude is not None and self.in_process:
            total -= self._exclude()  # the tracker's own thread lives in this process: not the job's
        return total - self._baseline


class MachineCpu:
    """System-wide CPU time from /proc/stat (psutil.cpu_times): busy and total CPU-seconds."""

    def __init__(self) -> None:
        self.busy_s, self.total_s = self.read()

    @staticmethod
    def read() -> tuple[float, float]:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        steal = getattr(t, "steal", 0.0)  # time the hypervisor gave to others: not this machine's work
        total = (
            t.user
            + t.system
            + t.idle
            + getattr(t, "nice", 0.0)
            + getattr(t, "iowait", 0.0)
            + getattr(t, "irq", 0.0)
            + getattr(t, "softirq", 0.0)
            + steal
        )
        return total - idle - steal, total

    def advance(self) -> tuple[float, float]:
        """(busy CPU-seconds, utilisation 0..1) since the previous call."""
        busy, total = self.read()
        d_busy, d_total = max(busy - self.busy_s, 0.0), max(total - self.total_s, 0.0)
        self.busy_s, self.total_s = busy, total
        return d_busy, (d_busy / d_total if d_total > 0 else 0.0)


def cpu_share(job_cpu_s: float, machine_busy_s: float) -> float:
    """The job's share of the machine's busy CPU time in an interval, in [0, 1] (the two clocks tick
    in 10 ms steps, so a short interval can show the job slightly above the machine)."""
    if machine_busy_s <= 0:
        return 1.0 if job_cpu_s > 0 else 0.0
    return min(max(job_cpu_s / machine_busy_s, 0.0), 1.0)
