"""Process attribution: the job's process tree's CPU time and memory, so a job on a shared machine is
charged for its own work and not its neighbours'.

The job's CPU time is the sum, over the live processes of the tree, of each one's own user+system time
plus the time of the children it has reaped (children_user/children_system). A child that exits and is
reaped moves its time from its own line into its parent's, so the sum stays continuous and a
short-lived compiler spawned between two samples is still counted. Time of a process reaped outside
the tree (a daemon re-parented to init) is lost; the wrapper's own wait4() rusage makes up the root's
whole tree at the end.

Finding the tree means reading every process's parent (/proc/*/stat on Linux, psutil elsewhere): about
half a millisecond for 100 processes. The scan is re-done at most as often as keeps it under 0.3 % of
one core; between scans the known processes are read directly (a few microseconds each).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

RESCAN_BUDGET = 0.003  # fraction of one core the tree scans may use


class _ProcReader:
    """Per-process CPU time (own + reaped children) and resident memory, and the descendants of a pid.

    Linux: straight from /proc/<pid>/stat (one read gives utime, stime, cutime, cstime, rss and the
    start time that tells a recycled pid apart), about 6 us a process against 30 us through psutil;
    the descendants come from one pass over /proc/*/stat. Elsewhere: psutil."""

    def __init__(self, procfs: bool | None = None) -> None:
        self.linux = os.path.exists("/proc/self/stat") if procfs is None else procfs
        self._tick_s = 1.0 / os.sysconf("SC_CLK_TCK") if self.linux else 0.0
        self._page = os.sysconf("SC_PAGE_SIZE") if self.linux else 0
        self._psutil: dict[int, psutil.Process] = {}

    @staticmethod
    def _stat_fields(pid: int | str) -> list[bytes] | None:
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.read(fd, 4096)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and ')'

    def identity(self, pid: int) -> int | None:
        """Something that changes when a pid is reused (its start time), or None when it is gone."""
        if self.linux:
            f = self._stat_fields(pid)
            return int(f[19]) if f is not None and len(f) > 21 else None
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            return None
        self._psutil[pid] = proc
        return int(proc.create_time() * 1000)

    def read(self, pid: int, identity: int) -> tuple[float, int] | None:
        """(CPU seconds incl. reaped children, RSS bytes), or None when gone (or the pid was reused)."""
        if self.linux:
            f = self._stat_fields(pid)
            if f is None or len(f) <= 21 or int(f[19]) != identity:
                return None
            ticks = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
            return ticks * self._tick_s, int(f[21]) * self._page
        proc = self._psutil.get(pid)
        if proc is None:
            return None
        try:
            with proc.oneshot():
                c = proc.cpu_times()
                return float(c.user + c.system + c.children_user + c.children_system), int(
                    proc.memory_info().rss
                )
        except psutil.Error:
            self._psutil.pop(pid, None)
            return None

    def descendants(self, root: int) -> list[int]:
        if not self.linux:
            try:
                return [c.pid for c in psutil.Process(root).children(recursive=True)]
            except psutil.Error:
                return []
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            f = self._stat_fields(name)
            if f is not None and len(f) > 1:
                children.setdefault(int(f[1]), []).append(int(name))
        found: list[int] = []
        todo = [root]
        while todo:
            kids = children.get(todo.pop(), [])
            found.extend(kids)
            todo.extend(kids)
        return found


class ProcessTree:
    """A root process and its descendants. `root_pid` None: nothing attached yet (CPU 0)."""

    def __init__(
        self,
        root_pid: int | None = None,
        *,
        exclude_cpu_s: Callable[[], float] | None = None,
        procfs: bool | None = None,
    ) -> None:
        """`procfs`: read /proc directly (None: where it exists; False: psutil, the portable path)."""
        self._reader = _ProcReader(procfs)
        self._procs: dict[int, int] = {}  # pid -> identity (start time)
        self._root: int | None = None
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
        return self._root

    @property
    def in_process(self) -> bool:
        return self._root == os.getpid()

    def attach(self, pid: int) -> None:
        """Follow `pid` and its descendants from now on. A process started for the job counts from
        zero; an existing one (the Python API's own process) from what it had used at attach."""
        identity = self._reader.identity(pid)
        if identity is None:
            raise ProcessLookupError(f"no process {pid}")
        self._root = pid
        self._procs = {pid: identity}
        self._last_scan = -1e18
        raw = self._raw()
        self._baseline = raw if pid == os.getpid() else 0.0
        self._last_raw = raw - self._baseline

    def cpu_seconds(self) -> float:
        """The tree's CPU time (user + system, all processes, reaped children included) since attach,
        never decreasing; refreshes `rss_bytes` on the way."""
        if self._root is None:
            return 0.0
        raw = self._raw() - self._baseline
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
        known = {root: self._procs[root]} if root in self._procs else {}
        for pid in self._reader.descendants(root):
            identity = self._procs.get(pid) or self._reader.identity(pid)
            if identity is not None:
                known[pid] = identity
        self._procs = known
        self._scan_cost = time.perf_counter() - t0
        self._last_scan = now

    def _raw(self) -> float:
        self._rescan()
        total = 0.0
        rss = 0
        gone: list[int] = []
        for pid, identity in self._procs.items():
            got = self._reader.read(pid, identity)
            if got is None:
                gone.append(pid)
                continue
            total += got[0]
            rss += got[1]
        for pid in gone:
            self._procs.pop(pid, None)
        self.rss_bytes = rss
        if self._exclude is not None and self.in_process:
            total -= self._exclude()  # the tracker's own thread lives in this process: not the job's
        return total


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
