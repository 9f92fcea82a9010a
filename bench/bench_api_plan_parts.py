"""Where a warm daemon's dry-run plan spends its CPU, piece by piece, in one process (no HTTP).

The scheduler is built as `carbonshift serve` builds it (the same offline config as
bench_api_plan.py: SQLite, bundled static tables, `runtime.service_factory`), warmed with 20 plans of
bench_api_plan's spec (139 cloud regions, 24-hour window), then each piece is timed in process CPU
time: best of --rounds rounds of --plans calls, the rounds interleaved, so the figure is what the
piece costs when nothing else gets in its way. The HTTP stack (uvicorn, middleware, reading the
spec, the worker-thread hops) comes on top: bench_api_plan.py measures the whole.

Another tree's figures: run the same script with PYTHONPATH=<that tree>/src.

Run: .venv/bin/python bench/bench_api_plan_parts.py [--plans 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_api_load import _config
from bench_api_plan import PLAN_SPEC
from carbonshift import runtime
from carbonshift.advisor import candidate_regions
from carbonshift.api.app import encode_json
from carbonshift.config.jobspec import JobSpec
from carbonshift.config.settings import load_settings
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.types import Signal, TimeSpan
from carbonshift.planner.placement import region_ref
from carbonshift.planner.plan import plan
from carbonshift.scheduler import Scheduler


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.plans <= 10_000 or not 1 <= args.rounds <= 100:
        parser.error("--plans must be 1..10000 and --rounds 1..100")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_config(Path(tmp)))
        sched = Scheduler.from_settings(settings, service_factory=runtime.service_factory(settings))
        try:
            measure(sched, args.plans, args.rounds)
        finally:
            sched.engine.dispose()


def measure(sched: Scheduler, plans: int, rounds: int) -> None:
    spec = JobSpec.model_validate(PLAN_SPEC)
    for _ in range(20):
        advice = sched.dry_run(spec)
    shown = advice.to_dict()
    # the inputs `advise` hands the planner, to time plan() alone
    catalog = sched.catalog
    pairs = [(r, advice.series[region_ref(r)]) for r in candidate_regions(spec, catalog)]
    zones = [r.grid_zone() for r in catalog.regions() if region_ref(r) in advice.series]
    now = sched.clock.now()
    earliest, deadline = spec.resolve_window(now)
    service = sched._ctx.plans._service_factory

    def intensity(svc: IntensityService) -> object:
        read = getattr(svc, "series_list", None) or svc.series_many  # an older tree: series_many only
        return read(zones, TimeSpan(earliest, deadline), Signal.AVERAGE)

    pieces: dict[str, Callable[[], object]] = {
        "Scheduler.dry_run (advise: regions, series, plan)": lambda: sched.dry_run(spec),
        "  of which the intensity service (series_list)": lambda: intensity(service()),
        "  of which the planner (plan)": lambda: plan(spec, pairs, now=now),
        "Advice.to_dict (139 options)": advice.to_dict,
        "encode_json": lambda: encode_json(shown),
    }
    best = dict.fromkeys(pieces, float("inf"))
    for _ in range(rounds):
        for name, piece in pieces.items():
            t0 = time.process_time()
            for _ in range(plans):
                piece()
            best[name] = min(best[name], (time.process_time() - t0) / plans)
    print(
        f"warm dry-run plan of {len(advice.plan.options)} regions, CPU per call, best of {rounds} x {plans}:"
    )
    for name, seconds in best.items():
        print(f"  {name:<52} {seconds * 1000:7.3f} ms")
    top = [n for n in pieces if not n.startswith(" ")]
    print(f"  {'dry_run + to_dict + encode_json':<52} {sum(best[n] for n in top) * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
