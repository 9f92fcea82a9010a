"""Batch planning of specs with `hardware_options` (issue 14): plans per CPU second per (spec,
alternative), against plain specs, in the same run.

Issue 14's goal: batch planning covers alternatives at about the speed of plain specs per (spec,
alternative). The specs are `bench_cli_plan_dir.py`'s (durations 30 min .. 8 h, windows to the second,
five placements, three hardware shapes, a tenth interruptible), offline with the example config. The
alternatives case gives each spec one more hardware (another of the three shapes, `speedup: 1.25`), so
each spec is two (spec, alternative) plans (with `--options 2`, also the third shape, `speedup: 0.8`:
three); the plain case is the same specs without them. Timed in this
process, best of --runs: `advise_many` (the plan phase of `carbonshift plan DIR`), and that plus the
JSON lines the CLI prints (`--top 3`). Process CPU time.

    .venv/bin/python bench/bench_alternatives.py [--specs 2000] [--runs 3] [--options 1|2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli_plan_dir import HARDWARE, NOW, environment, spec_text

SHAPES = [
    "{gpu: T4, gpus: 1, vcpus: 4, memory_gb: 16",
    "{gpu: A100, gpus: 1, vcpus: 8, memory_gb: 64",
    "{vcpus: 16, memory_gb: 64",
]
# per spec hardware: the other shapes, in the order they are added as alternatives
OTHERS = {
    HARDWARE[0]: [SHAPES[0], SHAPES[2]],
    HARDWARE[1]: [SHAPES[1], SHAPES[0]],
    HARDWARE[2]: [SHAPES[2], SHAPES[1]],
}


def with_option(text: str, count: int = 1) -> str:
    """The spec with `count` (1 or 2) hardware alternatives: the other shapes, the first 1.25 times as
    fast as the spec's own, the second 0.8 times."""
    for hardware, others in OTHERS.items():
        if hardware in text:
            listed = [
                f"  - {shape}, speedup: {speedup}}}\n"
                for shape, speedup in zip(others, (1.25, 0.8), strict=True)
            ]
            return text + "hardware_options:\n" + "".join(listed[:count])
    raise ValueError("no known hardware in the spec")


def best_cpu(fn: object, runs: int) -> float:
    """Least process CPU time of `runs` calls."""
    return min(timeit.Timer(fn, timer=time.process_time).repeat(runs, 1))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--options", type=int, choices=(1, 2), default=1, help="alternatives per spec")
    args = parser.parse_args()
    rng = random.Random(14)
    texts = [spec_text(i, rng) for i in range(args.specs)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = environment(tmp)
        os.environ.update(env)
        from carbonshift import runtime
        from carbonshift.advisor import advise_many
        from carbonshift.clock import FixedClock
        from carbonshift.config import load_settings
        from carbonshift.config.jobspec import loads_jobspec

        settings = load_settings(Path(env["CARBONSHIFT_CONFIG"]))
        catalog = runtime.build_catalog(settings)
        service = runtime.build_service(settings, clock=FixedClock(NOW))
        cases = {
            "plain": [loads_jobspec(t, now=NOW) for t in texts],
            "alternatives": [loads_jobspec(with_option(t, args.options), now=NOW) for t in texts],
        }
        plans_of: dict[str, int] = {}
        for name, specs in cases.items():
            advices = advise_many(specs, catalog=catalog, service=service, now=NOW)  # warm, and counted
            choices = [len(a.plan.footprints.choices) if a.plan.footprints else 1 for a in advices]
            plans_of[name] = sum(choices) if name == "alternatives" else len(specs)
        print(f"{args.specs} specs, best of {args.runs}, process CPU time:")
        print("case          (spec, alternative) plans | advise_many             | + JSON lines (--top 3)")
        for name, specs in cases.items():

            def plan(specs: list[object] = specs) -> None:
                advise_many(specs, catalog=catalog, service=service, now=NOW)  # type: ignore[arg-type]

            def plan_json(specs: list[object] = specs) -> None:
                for a in advise_many(specs, catalog=catalog, service=service, now=NOW):  # type: ignore[arg-type]
                    a.to_json_line(top=3)

            n = plans_of[name]
            t_plan = best_cpu(plan, args.runs)
            t_json = best_cpu(plan_json, args.runs)
            print(
                f"{name:<13} {n:>25,} | {t_plan:5.2f} s, {n / t_plan:7,.0f} plans/s | "
                f"{t_json:5.2f} s, {n / t_json:7,.0f} plans/s"
            )


if __name__ == "__main__":
    main()
