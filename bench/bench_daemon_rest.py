"""The daemon at rest with many waiting runs: what its own timers cost per second when nothing is due
(issue 13: that CPU competes with every API request for the one GIL and makes the p99 tail).

The database is built as `bench_api_jobs.py` builds it: one job submitted through a real `carbonshift
serve` (SQLite, placement local, planned for tomorrow, so nothing is due), its rows copied `--jobs - 1`
times. Then:

1. the real server is started again on it, left to settle (its start adopts every waiting run's
   timer), and its process CPU time is read each second for `--rest-seconds` with no request;
2. in this process, a `Scheduler` on the same database (no timers: `start(background=False)`) runs
   each piece of work its timers run, `--rounds` times, each timed in this thread's CPU time: the
   tick's parts (every `poll_interval_s`), the re-plan pass (likewise) and the leadership check (every
   `leadership_check_s`); per second is the median times how often it runs. The queue check
   (`queueing.sync_due`) runs inside `launch_due` and is also timed on its own; last, the whole tick
   and re-plan pass in one piece (what one timer's tick holds the process for, in this thread's CPU).

What the server uses beyond the sum of the parts is APScheduler's and uvicorn's own loops.
`--baseline-src DIR` also serves (step 1 only) from another source tree (`git archive COMMIT src |
tar -x -C DIR`), on a database of its own, so old and new are measured in the same run. It never talks
to any other address, and stops by itself.

Run: .venv/bin/python bench/bench_daemon_rest.py [--jobs 10000] [--rest-seconds 20] [--rounds 20]
     [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from bench_api_jobs import clone_jobs, cpu_s, settle
from bench_api_load import Server, _config, _submission

WITHIN = "  of which "  # a part timed on its own as well as inside the one above it
WHOLE_TICK = "whole tick + re-plan pass, in one piece"  # the parts above, together


def build(tmp: Path, token: str, jobs: int, env: dict[str, str] | None) -> float:
    """The database of `jobs` waiting jobs in `tmp`; the seconds the copying took."""
    server = Server(tmp, token, env)
    try:
        requests.post(
            f"{server.url}/api/v1/jobs",
            data=json.dumps(_submission(0)).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=60,
        ).raise_for_status()
    finally:
        server.stop()
    t0 = time.perf_counter()
    clone_jobs(tmp / "scheduler.sqlite", jobs - 1)
    return time.perf_counter() - t0


def run_s(pid: int) -> float:
    """Seconds the process's threads have run on a CPU so far, to the nanosecond (the scheduler's own
    count, /proc/PID/task/TID/schedstat), where /proc/PID/stat counts in 10 ms clock ticks, each given
    whole to the thread that happened to run when it struck: over 30 s at ~10 ms a second, a few ticks
    more or less are the difference between two trees."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total_ns += int((task / "schedstat").read_text().split()[0])
    return total_ns / 1e9


def server_at_rest(
    tmp: Path, token: str, seconds: int, env: dict[str, str] | None
) -> tuple[float, list[float], list[float]]:
    """The served daemon's CPU ms in each second at rest (after it settled), in clock ticks and run
    time (`run_s`), and how long it settled."""
    server = Server(tmp, token, env)
    try:
        settled_s = settle(server.proc.pid)
        rates, run_rates = [], []
        before, run_before = cpu_s(server.proc.pid), run_s(server.proc.pid)
        for _ in range(seconds):
            time.sleep(1.0)
            now, run_now = cpu_s(server.proc.pid), run_s(server.proc.pid)
            rates.append((now - before) * 1000)
            run_rates.append((run_now - run_before) * 1000)
            before, run_before = now, run_now
    finally:
        server.stop()
    return settled_s, rates, run_rates


def parts_in_process(tmp: Path, rounds: int) -> list[tuple[str, float, float, float]]:
    """(part, median ms, max ms, runs per second) for each piece of work the daemon's timers run."""
    from carbonshift import runtime
    from carbonshift.config import load_settings
    from carbonshift.scheduler import Scheduler

    settings = load_settings(_config(tmp))
    sched = Scheduler.from_settings(settings, service_factory=runtime.service_factory(settings))
    sched.start(background=False)
    ctx = sched._ctx
    cfg = sched.cfg
    per_tick = 1.0 / cfg.poll_interval_s
    launcher = sched._launcher
    parts: list[tuple[str, Callable[[], object], float]] = [
        ("tick: lock_alive", ctx.leadership.lock_alive, per_tick),
        ("tick: calls.expire", ctx.calls.expire, per_tick),
        ("tick: timers.adopt_planned", ctx.timers.adopt_planned, per_tick),
        ("tick: launcher.resolve_launching", launcher.resolve_launching, per_tick),
        ("tick: polling.poll_running", sched._polling.poll_running, per_tick),
        ("tick: schedules.advance_all", lambda: sched._schedules.advance_all(ctx.clock.now()), per_tick),
        ("tick: launcher.launch_due (with sync_due)", lambda: launcher.launch_due(ctx.clock.now()), per_tick),
        (WITHIN + "queueing.sync_due", lambda: launcher.queue.sync_due(ctx.clock.now()), per_tick),
        ("tick: store.close_finished_jobs", lambda: ctx.store.close_finished_jobs(ctx.clock.now()), per_tick),
        ("tick: releases.release_due", lambda: sched._releases.release_due(ctx.clock.now()), per_tick),
        ("re-plan pass", sched._replanner.replan_pass, per_tick),
        ("leadership check", ctx.leadership.leading, 1.0 / cfg.leadership_check_s),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in parts}
    times[WHOLE_TICK] = []
    try:
        for _ in range(rounds):
            with ctx.store.fenced(ctx.leadership.epoch), ctx.calls.phases(True) as settle_calls:
                for name, fn, _ in parts:
                    t0 = time.thread_time()
                    fn()
                    times[name].append((time.thread_time() - t0) * 1000)
                    settle_calls()
            t0 = time.thread_time()
            sched._tick_core(wait=True)  # what a timer's tick runs, in one piece
            sched._replanner.replan_pass()
            times[WHOLE_TICK].append((time.thread_time() - t0) * 1000)
    finally:
        sched.shutdown()
    rows = [(name, statistics.median(times[name]), max(times[name]), rate) for name, _, rate in parts]
    return [*rows, (WHOLE_TICK, statistics.median(times[WHOLE_TICK]), max(times[WHOLE_TICK]), per_tick)]


def show_rest(title: str, settled_s: float, rates: list[float], run_rates: list[float]) -> None:
    def figures(values: list[float]) -> str:
        ordered = sorted(values)
        return (
            f"mean {statistics.fmean(values):.1f}, median {statistics.median(values):.1f}, "
            f"min {ordered[0]:.1f}, max {ordered[-1]:.1f}"
        )

    print(
        f"{title}: settled {settled_s:.0f} s after it started; then, no request, CPU ms per second over "
        f"{len(rates)} s: {figures(rates)} (clock ticks); {figures(run_rates)} (run time, schedstat)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rest-seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20, help="in-process rounds of each part (0: none)")
    parser.add_argument("--baseline-src", type=Path, help="also serve from this source tree (its src/)")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 100_000 or not 1 <= args.rest_seconds <= 600 or not 0 <= args.rounds <= 1000:
        parser.error("--jobs must be 1..100000, --rest-seconds 1..600, --rounds 0..1000")
    if args.baseline_src is not None and not (args.baseline_src / "src" / "carbonshift").is_dir():
        parser.error("--baseline-src must be a tree with src/carbonshift")
    token = secrets.token_urlsafe(32)
    trees: list[tuple[str, dict[str, str] | None]] = [("this tree", None)]
    if args.baseline_src is not None:
        trees.append((f"baseline ({args.baseline_src})", {"PYTHONPATH": str(args.baseline_src / "src")}))
    print(
        f"the daemon at rest with {args.jobs} waiting runs (SQLite, placement local, planned for tomorrow), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
    )
    parts = None
    for title, env in trees:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            filled_s = build(tmp, token, args.jobs, env)
            settled_s, rates, run_rates = server_at_rest(tmp, token, args.rest_seconds, env)
            show_rest(f"{title} (rows copied in {filled_s:.1f} s)", settled_s, rates, run_rates)
            if env is None and args.rounds:
                parts = parts_in_process(tmp, args.rounds)
    if parts is not None:
        print(f"\nthis tree, in-process, each part {args.rounds} times (this thread's CPU time):")
        header = f"{'part':<44} {'median ms':>9} {'max ms':>8} {'per s':>6} {'ms per s':>9}"
        print(header)
        print("-" * len(header))
        for name, median, most, rate in parts[:-1]:
            print(f"{name:<44} {median:>9.2f} {most:>8.2f} {rate:>6.2f} {median * rate:>9.2f}")
        total = sum(m * r for name, m, _, r in parts[:-1] if not name.startswith(WITHIN))
        print(f"{'sum (each once)':<44} {'':>9} {'':>8} {'':>6} {total:>9.2f}")
        name, median, most, rate = parts[-1]  # WHOLE_TICK
        print(f"{name:<44} {median:>9.2f} {most:>8.2f} {rate:>6.2f} {median * rate:>9.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
