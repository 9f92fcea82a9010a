"""The JSON-lines phase of `carbonshift plan DIR` alone (issue 13): `Advice.to_json_line(top=3)` for
every advice of a batch, process CPU per spec, with this tree and optionally another in turn.

The specs are `bench_cli_plan_dir.py`'s (its seed, so the same 10,000). Each run is a new process
(every cache as cold as in the CLI), which parses and plans the batch untimed and then times:

- `phase, gc on`: the lines as `bench_cli_plan_dir.py`'s "JSON lines" phase renders them (options
  built on first read, the cyclic collector running);
- `phase, gc off`: the same with the collector paused, as the CLI renders them (`gc_paused`);
- `to_json_line alone`: with the shown options and notes read beforehand, so only the plan's dict
  and its encoding are timed (what `planner/plan.py`, `planner/footprints.py` and the encoder cost).

    .venv/bin/python bench/bench_plan_json_lines.py [--specs 10000] [--runs 3] [--baseline-src DIR]

With --baseline-src (the `src` of another tree, e.g. from `git worktree add`), that tree runs the same
in turn with this one; the best of --runs is printed for each.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli_plan_dir import NOW, environment, spec_text

CASES = ("phase, gc on", "phase, gc off", "to_json_line alone")


def one_run(specs: int, case: str) -> float:
    """CPU seconds per spec of `case`, in this process."""
    rng = random.Random(13)  # bench_cli_plan_dir's seed
    texts = [spec_text(i, rng) for i in range(specs)]
    env = environment(Path(tempfile.mkdtemp()))
    os.environ.update(env)
    from carbonshift import runtime
    from carbonshift.advisor import advise_many
    from carbonshift.clock import FixedClock
    from carbonshift.config import load_settings
    from carbonshift.config.jobspec import loads_jobspec

    settings = load_settings(Path(env["CARBONSHIFT_CONFIG"]))
    catalog = runtime.build_catalog(settings)
    service = runtime.build_service(settings, clock=FixedClock(NOW))
    advices = advise_many(
        [loads_jobspec(t, now=NOW) for t in texts], catalog=catalog, service=service, now=NOW
    )
    if case == "to_json_line alone":
        for a in advices:
            _ = a.plan.options[:3], a.plan.notes  # the options are kept by the lazy sequence
    if case != "phase, gc on":
        gc.disable()
    t0 = time.process_time()
    "".join(a.to_json_line(top=3) + "\n" for a in advices)
    return (time.process_time() - t0) / specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-src", help="the src directory of a tree to time in turn")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.specs, args.child)))
        return
    trees = {"this tree": os.environ.get("PYTHONPATH", "")}
    if args.baseline_src:
        trees["baseline"] = str(Path(args.baseline_src).resolve())
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.runs):
        for case in CASES:
            for name, path in trees.items():
                cmd = [sys.executable, __file__, "--specs", str(args.specs), "--child", case]
                out = subprocess.run(
                    cmd, check=False, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True
                )
                if out.returncode != 0:
                    raise SystemExit(out.stderr[-2000:])
                seconds = json.loads(out.stdout.strip().splitlines()[-1])
                best[name, case] = min(best.get((name, case), seconds), seconds)
    print(
        f"Advice.to_json_line(top=3), {args.specs} specs, best of {args.runs} (new process each), ms per spec:"
    )
    for case in CASES:
        shown = "   ".join(f"{name} {1e3 * best[name, case]:.3f}" for name in trees)
        print(f"  {case:<20} {shown}")


if __name__ == "__main__":
    main()
