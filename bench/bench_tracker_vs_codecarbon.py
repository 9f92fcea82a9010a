"""The same CPU-bound workload measured by carbonshift's tracker and by CodeCarbon's
OfflineEmissionsTracker at once, in one process: energy by component and the ratio between them.

Both watch the whole machine (CodeCarbon tracking_mode="machine", carbonshift attribution "machine"),
with PUE 1 and a 1 s interval, so what differs is only how each turns the machine into watts. On a
machine with readable RAPL counters both measure the CPU package; elsewhere both model it:
- carbonshift: vCPUs x (0.74 W + utilisation x 2.76 W), Cloud Carbon Footprint's per-vCPU figures;
  memory 0.392 W per GB of RAM (CCF).
- CodeCarbon 3.x: its CPU power table or a default TDP, times the load ("cpu_load" mode); memory by
  its own per-module estimate.
The carbonshift report also gives the job's (process tree's) share, which CodeCarbon's machine mode
does not.

CodeCarbon is not a carbonshift dependency (it brings pandas and more): run this with an interpreter
that has both, e.g. `python -m venv /tmp/cc && /tmp/cc/bin/pip install codecarbon -e .`, then

    /tmp/cc/bin/python bench/bench_tracker_vs_codecarbon.py [--seconds 30] [--workers 1]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

from carbonshift.config import Settings
from carbonshift.config.settings import CacheSettings
from carbonshift.tracker.api import track
from carbonshift.tracker.settings import TrackerSettings


def burn(seconds: float) -> None:
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="busy processes (default 1)")
    args = parser.parse_args()
    try:
        import codecarbon
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        raise SystemExit("needs codecarbon in this interpreter (see the module docstring)") from None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            ukci_enabled=False,
            data_dir=Path(tmp),
            cache=CacheSettings(enabled=False),
            tracker=TrackerSettings(attribution="machine", pue=1.0, detect_cloud=False),
        )
        cc = OfflineEmissionsTracker(
            country_iso_code="DEU",
            measure_power_secs=1,
            save_to_file=False,
            log_level="error",
            tracking_mode="machine",
            pue=1.0,
        )
        cc.start()
        with (
            track(zone="DE", settings=settings, write_outputs=False, label="bench") as run,
            multiprocessing.Pool(args.workers) as pool,
        ):
            pool.map(burn, [args.seconds] * args.workers)
        cc.stop()
    ours = run.report
    assert ours is not None
    theirs = cc.final_emissions_data
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
        f"codecarbon {codecarbon.__version__}; {args.workers} busy worker(s) for {args.seconds:g} s"
    )
    print(f"{'':<10} {'carbonshift':>14} {'codecarbon':>14} {'ratio':>7}")
    rows = [
        ("cpu Wh", ours.energy_by_component_kwh["cpu"] * 1000, theirs.cpu_energy * 1000),
        ("ram Wh", ours.energy_by_component_kwh["ram"] * 1000, theirs.ram_energy * 1000),
        ("gpu Wh", ours.energy_by_component_kwh["gpu"] * 1000, theirs.gpu_energy * 1000),
        ("total Wh", ours.energy_kwh * 1000, theirs.energy_consumed * 1000),
        ("cpu W", ours.mean_power_w["cpu"], theirs.cpu_power),
        ("ram W", ours.mean_power_w["ram"], theirs.ram_power),
        ("seconds", ours.duration_s, theirs.duration),
    ]
    for name, a, b in rows:
        ratio = f"{a / b:7.3f}" if b else "      -"
        print(f"{name:<10} {a:>14.4f} {b:>14.4f} {ratio}")
    share = ours.attribution.get("job_cpu_share")
    print(
        f"carbonshift power sources: {', '.join(p['detail'] for p in ours.power_sources if p['kind'] != 'none')}"
    )
    print(f"carbonshift job share of machine CPU (process attribution would charge): {share}")


if __name__ == "__main__":
    main()
