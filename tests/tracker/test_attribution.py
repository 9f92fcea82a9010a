"""Process attribution: a child's whole tree, short-lived grandchildren included, and its share of the
machine."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from carbonshift.tracker.attribution import MachineCpu, ProcessTree, cpu_share

from .helpers import PY

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"
# the child burns nothing itself: two grandchildren do, one after the other, and are reaped by it
TREE = (
    "import subprocess, sys\n"
    f"subprocess.run([sys.executable, '-c', {BURN.format(s=0.2)!r}])\n"
    f"subprocess.run([sys.executable, '-c', {BURN.format(s=0.15)!r}])\n"
    "import time; time.sleep(0.1)\n"
)


def test_the_whole_tree_is_counted_including_reaped_grandchildren() -> None:
    proc = subprocess.Popen([PY, "-c", TREE])
    tree = ProcessTree(proc.pid)
    seen = 0.0
    while proc.poll() is None:  # poll() reaps at the very end; sample until then
        seen = tree.cpu_seconds()
        time.sleep(0.02)
    # before the root was reaped the samples had its own time plus its reaped children's
    assert seen >= 0.35 - 0.05
    usage_total = seen  # Popen reaped it, so wait4 is not ours here: settle with what we saw
    assert tree.settle(usage_total) == pytest.approx(seen)
    assert tree.cpu_seconds() == pytest.approx(seen)  # never decreases after the root is gone


def test_settle_takes_the_rusage_total_when_sampling_missed_the_end() -> None:
    proc = subprocess.Popen([PY, "-c", BURN.format(s=0.3)])
    tree = ProcessTree(proc.pid)
    _pid, _status, usage = os.wait4(proc.pid, 0)  # reaped before any sample
    proc.returncode = 0
    total = usage.ru_utime + usage.ru_stime
    assert total >= 0.3
    assert tree.settle(total) == pytest.approx(total)


def burn(seconds: float) -> None:
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass


def test_own_process_starts_at_zero_and_leaves_out_the_trackers_thread() -> None:
    helper_cpu = [0.0]

    def tracker_like() -> None:  # a thread of this process whose CPU is the tracker's, not the job's
        t = time.thread_time()
        burn(0.3)
        helper_cpu[0] = time.thread_time() - t

    tree = ProcessTree(os.getpid(), exclude_cpu_s=lambda: helper_cpu[0])
    assert tree.cpu_seconds() < 0.05
    helper = threading.Thread(target=tracker_like)
    helper.start()
    helper.join()
    burn(0.2)  # the job's own work
    assert tree.cpu_seconds() == pytest.approx(0.2, abs=0.06)
    assert tree.rss_bytes > 0


def test_cpu_share_bounds() -> None:
    assert cpu_share(0.5, 1.0) == 0.5
    assert cpu_share(1.2, 1.0) == 1.0  # 10 ms ticks: a short interval can show the job above the machine
    assert cpu_share(0.0, 0.0) == 0.0 and cpu_share(0.1, 0.0) == 1.0


def test_machine_cpu_sees_a_busy_loop() -> None:
    m = MachineCpu()
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    busy, util = m.advance()
    assert busy >= 0.15 and 0 < util <= 1


def test_the_portable_psutil_path_agrees_with_proc() -> None:
    proc = subprocess.Popen([PY, "-c", BURN.format(s=0.3) + "import time; time.sleep(5)"])
    try:
        fast = ProcessTree(proc.pid)
        portable = ProcessTree(proc.pid, procfs=False)  # psutil: what macOS and Windows use
        # until the child has burnt its 0.3 s and sleeps (on a loaded machine that takes longer than
        # 0.6 s of wall, and the two paths, read a moment apart, saw a CPU time still growing)
        waited = time.monotonic() + 30
        while fast.cpu_seconds() < 0.29 and time.monotonic() < waited:
            time.sleep(0.05)
        a, b = fast.cpu_seconds(), portable.cpu_seconds()
        assert a >= 0.25 and b == pytest.approx(a, abs=0.05)
        assert portable.rss_bytes == pytest.approx(fast.rss_bytes, rel=0.2)
    finally:
        proc.kill()
        proc.wait()
