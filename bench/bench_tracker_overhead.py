"""Tracker overhead: the CPU the tracker itself uses while it watches a job, at the default interval.

For each scenario `carbonshift track --interval I -- CMD` runs through the real command line, and two
figures are taken:
- the sampler's own CPU time (its thread's CPU clock, which the report carries as
  tracker.overhead_cpu_s), as a share of one core: the steady-state cost the issue bounds at 1 %;
- the whole wrapper process's CPU (wait4 rusage of `carbonshift`, minus the job's own CPU time),
  which adds the one-off start (Python, imports, catalog) and the intensity lookup at the end.

Scenarios: `sleep` (a job that does nothing: the tracker is the only thing to measure) and `tree` (a
job of 50 processes, so each sample reads 51 processes and the tree scans cost more).

    .venv/bin/python bench/bench_tracker_overhead.py [--seconds 60] [--interval 1] [--only sleep|tree]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

SCENARIOS = {
    "sleep": lambda s: ["sleep", str(s)],
    "tree": lambda s: ["sh", "-c", f"for i in $(seq 50); do sleep {s} & done; wait"],
}


def run(name: str, seconds: float, interval: float, tmp: Path) -> dict[str, float | str]:
    out = tmp / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(
        CARBONSHIFT_DATA_DIR=str(tmp / "data"),
        CARBONSHIFT_CACHE__ENABLED="false",
        CARBONSHIFT_TRACKER__DETECT_CLOUD="false",
    )
    cmd = [sys.executable, "-m", "carbonshift", "track", "--zone", "DE", "--interval", str(interval)]
    cmd += ["--output-dir", str(out), "--", *SCENARIOS[name](seconds)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{err}")
    (report_path,) = out.glob("*.json")
    report = json.loads(report_path.read_text())
    duration = report["duration_s"]
    sampler = report["tracker"]["overhead_cpu_s"]
    wrapper = usage.ru_utime + usage.ru_stime - report["attribution"]["job_cpu_s"]
    return {
        "scenario": name,
        "duration_s": duration,
        "samples": report["tracker"]["samples"],
        "sampler_cpu_s": sampler,
        "sampler_pct_of_one_core": 100 * sampler / duration,
        "sampler_ms_per_sample": 1000 * sampler / max(report["tracker"]["samples"], 1),
        "wrapper_cpu_s": wrapper,
        "wrapper_pct_of_one_core": 100 * wrapper / duration,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--only", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"{len(psutil.pids())} processes; Python {platform.python_version()}; "
        f"job {args.seconds:g} s, interval {args.interval:g} s"
    )
    print(
        f"{'scenario':<8} {'duration':>9} {'samples':>7} {'sampler CPU':>12} {'% of 1 core':>11} "
        f"{'ms/sample':>9} {'wrapper CPU':>12} {'% of 1 core':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in [args.only] if args.only else list(SCENARIOS):
            r = run(name, args.seconds, args.interval, Path(tmp))
            print(
                f"{r['scenario']:<8} {r['duration_s']:>8.1f}s {r['samples']:>7} {r['sampler_cpu_s']:>11.3f}s "
                f"{r['sampler_pct_of_one_core']:>10.3f}% {r['sampler_ms_per_sample']:>9.3f} "
                f"{r['wrapper_cpu_s']:>11.3f}s {r['wrapper_pct_of_one_core']:>10.3f}%"
            )


if __name__ == "__main__":
    main()
