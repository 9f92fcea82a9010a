"""`carbonshift plan DIR` on a directory of 10,000 job specs, end to end: a new process that parses
every spec, plans them together (`advise_many` -> `plan_batch`) and prints one JSON line each.

Issue 13's goal: at least 2,000 plans/s. Offline: the example config (one forecast file for ES, the
bundled static values elsewhere) and no live source. The specs vary in duration (30 min .. 8 h, to the
minute), window (earliest 0 .. 24 h after --now, to the second; 2 .. 40 h of slack), placement (none,
EU, a provider, two countries) and hardware; a tenth are interruptible. For comparison, the old path
(the CLI before: spec by spec, `load_jobspec` + `advise` + JSON) is timed in this process on the
first --old specs.

    .venv/bin/python bench/bench_cli_plan_dir.py [--specs 10000] [--top 3] [--old 300]
        [--baseline-src /tmp/base/src] [--single]

With --baseline-src (the `src` of another tree, e.g. `git archive REV src examples | tar -x -C DIR`),
that tree's CLI is run on the same specs in the same run, alternating with this one. Beside each wall
time the CLI process's own CPU time is printed (its worker processes included): on a machine shared
with other work, the figure the neighbours disturb least. With --single, this tree's CLI is also run
with `--workers 1` (everything in one process), in turn with the others. The per-phase CPU figures
are in this process, one phase after the other; the CLI runs them in slices on every CPU
(`cli/plan_slices.py`).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
PLACEMENTS = [
    "",
    "placement:\n  countries: [EU]\n",
    "placement:\n  providers: [gcp]\n",
    "placement:\n  countries: [ES, FR]\n",
    "placement:\n  providers: [aws]\n  countries: [US]\n",
]
HARDWARE = [
    "hardware:\n  gpu: A100\n  gpus: 1\n  vcpus: 8\n  memory_gb: 64\n",
    "hardware:\n  vcpus: 16\n  memory_gb: 64\n",
    "hardware:\n  gpu: T4\n  gpus: 1\n  vcpus: 4\n  memory_gb: 16\n",
]


def spec_text(i: int, rng: random.Random) -> str:
    minutes = rng.randint(30, 480)
    earliest = NOW + timedelta(seconds=rng.randint(0, 24 * 3600))
    deadline = earliest + timedelta(minutes=minutes) + timedelta(seconds=rng.randint(2 * 3600, 40 * 3600))
    text = (
        f"name: job-{i:05d}\ncommand: [python, train.py]\nduration: {minutes}m\n"
        f"window:\n  earliest: {earliest.isoformat()}\n  deadline: {deadline.isoformat()}\n"
        + rng.choice(HARDWARE)
        + rng.choice(PLACEMENTS)
    )
    if rng.random() < 0.1:
        text += "interruptible: true\nmin_chunk: 30m\n"
    return text


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env["CARBONSHIFT_CONFIG"] = str(REPO / "examples" / "config" / "carbonshift.yaml")
    env["CARBONSHIFT_CACHE__PATH"] = str(tmp / "cache.sqlite")
    env["CARBONSHIFT_DATA_DIR"] = str(tmp / "data")
    env["CARBONSHIFT_UKCI_ENABLED"] = "false"  # offline
    return env


def phases(files: list[Path], env: dict[str, str], top: int | None) -> dict[str, float]:
    """CPU seconds of each phase of the new path, in this process: parse, plan, print."""
    os.environ.update(env)
    from carbonshift import runtime
    from carbonshift.advisor import advise_many
    from carbonshift.clock import FixedClock
    from carbonshift.config import load_settings
    from carbonshift.config.jobspec import load_jobspec

    settings = load_settings(Path(env["CARBONSHIFT_CONFIG"]))
    catalog = runtime.build_catalog(settings)
    service = runtime.build_service(settings, clock=FixedClock(NOW))
    t0 = time.process_time()
    specs = [load_jobspec(f, now=NOW) for f in files]
    t1 = time.process_time()
    advices = advise_many(specs, catalog=catalog, service=service, now=NOW)
    t2 = time.process_time()
    "".join(a.to_json_line(top=top) + "\n" for a in advices)  # as the CLI prints them
    t3 = time.process_time()
    interruptible = [s for s in specs if s.interruptible]
    t4 = time.process_time()
    advise_many(interruptible, catalog=catalog, service=service, now=NOW)
    t5 = time.process_time()
    return {
        "parse (load_jobspec)": t1 - t0,
        "plan (advise_many)": t2 - t1,
        f"  of which the {len(interruptible)} interruptible specs": t5 - t4,
        "JSON lines": t3 - t2,
    }


def old_path(files: list[Path], env: dict[str, str], top: int | None) -> float:
    """Plans/s of the CLI's former loop, in this process: parse, advise, JSON, spec by spec."""
    os.environ.update(env)
    from carbonshift import runtime
    from carbonshift.advisor import advise
    from carbonshift.clock import FixedClock
    from carbonshift.config import load_settings
    from carbonshift.config.jobspec import load_jobspec

    settings = load_settings(Path(env["CARBONSHIFT_CONFIG"]))
    catalog = runtime.build_catalog(settings)
    service = runtime.build_service(settings, clock=FixedClock(NOW))
    t0 = time.perf_counter()
    for f in files:
        spec = load_jobspec(f, now=NOW)
        json.dumps(advise(spec, catalog=catalog, service=service, now=NOW).to_dict(top=top))
    return len(files) / (time.perf_counter() - t0)


def run_cli(cmd: list[str], env: dict[str, str], specs: int, out_path: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, from the children's rusage) of one CLI run, its output
    written to a file (as `carbonshift plan DIR > plans.jsonl`: read through a pipe here, this
    process's reading and decoding 267 MB took CPU from the CLI's two); the output is checked: one
    JSON line per spec."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with out_path.open("wb") as sink:
        out = subprocess.run(cmd, env=env, cwd=REPO, stdout=sink, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(out.stderr.decode(errors="replace")[-2000:])
    lines = _count_lines(out_path)
    if lines != specs:
        raise SystemExit(f"{lines} plans printed for {specs} specs")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            lines += chunk.count(b"\n")
    return lines


def compiled(src: Path) -> None:
    """Write the tree's bytecode, as an install or a first run does (see bench_cli_cold_start.py:
    where PYTHONDONTWRITEBYTECODE is set, each start compiled our modules again)."""
    compileall.compile_dir(src, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=3, help="--top for the CLI (0: every option)")
    parser.add_argument("--old", type=int, default=300, help="specs timed on the old path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-src", help="the src directory of a tree to time alongside")
    parser.add_argument("--single", action="store_true", help="also time this tree with --workers 1")
    args = parser.parse_args()
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        specs = tmp / "specs"
        specs.mkdir()
        files = []
        for i in range(args.specs):
            f = specs / f"job-{i:05d}.yaml"
            f.write_text(spec_text(i, rng))
            files.append(f)
        env = environment(tmp)
        for src in [REPO / "src", *([Path(args.baseline_src)] if args.baseline_src else [])]:
            compiled(src)
        cmd = [sys.executable, "-m", "carbonshift", "plan", str(specs), "--now", NOW.isoformat()]
        if args.top:
            cmd += ["--top", str(args.top)]
        trees = {"this tree": (env, cmd)}
        if args.single:
            trees["one process"] = (env, [*cmd, "--workers", "1"])
        if args.baseline_src:
            trees["baseline"] = ({**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}, cmd)
        timed: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, (tree_env, tree_cmd) in trees.items():
                timed[name].append(run_cli(tree_cmd, tree_env, args.specs, tmp / "plans.jsonl"))
        wall, cpu = min(timed["this tree"])
        top = args.top or None
        split = phases(files, env, top)
        old = old_path(files[: args.old], env, top) if args.old else float("nan")
    shown = f"--top {args.top}" if args.top else "every option"
    print(f"carbonshift plan DIR, {args.specs} specs, {shown}, best of {args.runs} (new process each):")
    from carbonshift.cli.parallel_lines import usable_cpus

    print(f"  this tree parses, plans and writes on {usable_cpus()} processes (the usable CPUs)")
    print(f"  wall {wall:.2f} s  ->  {args.specs / wall:,.0f} plans/s end to end (goal >= 2,000)")
    print(f"  CPU of the CLI process {cpu:.2f} s  ->  {args.specs / cpu:,.0f} plans per CPU second")
    for name, label in (("one process", "this tree, --workers 1"), ("baseline", "baseline tree")):
        if name in timed:
            other_wall, other_cpu = min(timed[name])
            print(
                f"  {label}: wall {other_wall:.2f} s ({args.specs / other_wall:,.0f} plans/s), "
                f"CPU {other_cpu:.2f} s ({args.specs / other_cpu:,.0f} plans per CPU second)"
            )
    print("  in process, CPU time per phase:")
    for name, seconds in split.items():
        print(f"    {name:<40} {seconds:6.2f} s  ({1e3 * seconds / args.specs:.3f} ms per spec of the batch)")
    print(f"  old path (spec by spec, in process, first {args.old} specs): {old:,.0f} plans/s")


if __name__ == "__main__":
    main()
