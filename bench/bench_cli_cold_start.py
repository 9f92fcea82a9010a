"""Wall and CPU time of `carbonshift plan SPEC` from a cold start (a new process each run), offline, and
the largest imports it pays for.

Issue 13's goal: under 0.5 s wall. `--baseline-src DIR` runs the same command from another source tree
too (e.g. `git archive <commit> src | tar -x -C /tmp/base`), alternating run by run, so old and new are
measured under the same load. CPU time (user + system, from the OS's accounting of each child) is
printed beside wall time because on a shared machine wall time mostly measures the neighbours.

Run: .venv/bin/python bench/bench_cli_cold_start.py [--runs 10] [--baseline-src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _env(tmp: str, src: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env["CARBONSHIFT_CACHE__PATH"] = str(Path(tmp) / "cache.sqlite")
    env["CARBONSHIFT_UKCI_ENABLED"] = "false"  # offline, embedded defaults only
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def top_imports(cmd: list[str], env: dict[str, str], count: int) -> list[tuple[float, str]]:
    """The `count` costliest packages of one `-X importtime` run: (ms, name), each package's time
    counted where something outside it first imports it (so numpy is numpy, whoever asked for it), and
    carbonshift's own modules as their self time."""
    run = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    totals: dict[str, float] = {}
    stack: list[tuple[int, str]] = []  # reversed post-order is pre-order: the parent is on the stack
    for line in reversed(run.stderr.splitlines()):
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        depth, name = len(m.group(3)), m.group(4)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1].split(".")[0] if stack else ""
        stack.append((depth, name))
        package = name.split(".")[0]
        if package == "carbonshift":
            totals["carbonshift (own modules)"] = totals.get("carbonshift (own modules)", 0) + int(m.group(1))
        elif package != parent:
            totals[package] = totals.get(package, 0) + int(m.group(2))
    return sorted(((us / 1000, name) for name, us in totals.items()), reverse=True)[:count]


def _summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{name} median {statistics.median(ms):.0f} ms (min {min(ms):.0f}, max {max(ms):.0f})"


def compiled(src: Path) -> None:
    """Write the tree's bytecode, as an install or a first run does: where PYTHONDONTWRITEBYTECODE is
    set (this project's sandbox sets it), every start compiled our own modules again, ~0.3 s of a
    cold `plan` no user sees twice."""
    compileall.compile_dir(src, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spec", default="examples/resnet-finetune.yaml")
    parser.add_argument("--baseline-src", type=Path, help="another tree's src/ to time alongside")
    parser.add_argument("--imports", type=int, default=12, help="how many top imports to list")
    args = parser.parse_args()
    plan = [sys.executable, "-m", "carbonshift", "plan", args.spec, "--now", "2026-11-24T18:00Z"]
    trees: dict[str, Path | None] = {"this tree": None}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        envs = {name: _env(tmp, src) for name, src in trees.items()}
        for src in trees.values():
            compiled(src or REPO / "src")
        for env in envs.values():
            subprocess.run(plan, env=env, cwd=REPO, capture_output=True, check=True)  # warm the file cache
        walls: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, env in envs.items():  # alternating: both see the same neighbours
                wall, cpu = _timed(plan, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
        version = [sys.executable, "-m", "carbonshift", "--version"]
        v_walls = [_timed(version, envs["this tree"])[0] for _ in range(args.runs)]
        imports = {name: top_imports(plan, env, args.imports) for name, env in envs.items()}
    print(
        f"carbonshift plan {args.spec} (cold process, offline), {args.runs} runs each, {os.cpu_count()} CPUs,"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for name in trees:
        print(f"  {name:<10} wall {_summary('', walls[name])[1:]}; CPU {_summary('', cpus[name])[1:]}")
    print(f"  carbonshift --version: wall median {statistics.median(v_walls) * 1000:.0f} ms")
    for name, top in imports.items():
        print(f"top imports ({name}; ms in one -X importtime run):")
        for ms, module in top:
            print(f"  {ms:8.1f}  {module}")
    verdict = "met" if statistics.median(walls["this tree"]) < 0.5 else "NOT met"
    print(f"goal < 500 ms wall (median, this tree): {verdict}")


if __name__ == "__main__":
    main()
