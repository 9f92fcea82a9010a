"""Wall time of `carbonshift plan SPEC` from a cold start (a new process each run), offline.

Issue 3's goal: under 1 second. Cloud SDKs and matplotlib are imported lazily, so a plan only pays
for typer, pydantic, numpy and the bundled tables. Run: .venv/bin/python bench/bench_cli_cold_start.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spec", default="examples/resnet-finetune.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        env["CARBONSHIFT_CACHE__PATH"] = str(Path(tmp) / "cache.sqlite")
        env["CARBONSHIFT_UKCI_ENABLED"] = "false"  # offline, embedded defaults only
        cmd = [sys.executable, "-m", "carbonshift", "plan", args.spec, "--now", "2026-11-24T18:00Z"]
        subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=True)  # warm the OS file cache
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        version = [sys.executable, "-m", "carbonshift", "--version"]
        v_times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(version, env=env, cwd=REPO, capture_output=True, check=True)
            v_times.append(time.perf_counter() - t0)
    print(f"carbonshift plan {args.spec} (cold process, offline), {args.runs} runs:")
    print(
        f"  median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    print(f"carbonshift --version: median {statistics.median(v_times) * 1000:.0f} ms")
    print(f"goal < 1000 ms: {'met' if statistics.median(times) < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
