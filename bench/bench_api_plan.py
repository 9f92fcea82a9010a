"""Dry-run plans over the HTTP API with a warm daemon: `POST /api/v1/plan` for a job every cloud region
can run (139 regions, the default 24-hour window), from 8 client threads on loopback.

Issue 13's goal: p99 < 100 ms at concurrency 8. It starts a real `carbonshift serve` (SQLite, bearer
token, offline: bundled static tables only) on a free loopback port, warms it with a few plans, sends
a fixed number of plans and prints p50/p90/p99 and req/s. `--baseline-src DIR` starts a second daemon
from another source tree (e.g. `git archive <commit> src | tar -x -C /tmp/base`) and measures it the
same way in the same run, one after the other, so old and new see the same machine. It never talks to
any other address, and stops by itself (fixed counts, a timeout per request, a deadline per phase).

Beside the server's CPU per request it prints the client's (this process: 8 threads of `requests`
reading 92 KB answers), since on a small machine the client shares the cores with the server.
`--repeat N` measures each tree N times, alternating (a fresh server each time): on a machine shared
with other work, the spread between runs says how far to trust one.

`--wrk SECONDS` sends the load with `wrk` (C, Debian's package `wrk`: 2 threads, `--concurrency`
connections, keep-alive) for that long instead of the Python client threads: on a 2-core machine
the Python client spends about as much CPU per request as the server and its own GIL adds to the
latencies it reports, whereas wrk's percentiles are the server's (what a client on another core or
machine meets).

Run: .venv/bin/python bench/bench_api_plan.py [--plans 500] [--concurrency 8] [--repeat 1] [--baseline-src DIR]
     [--wrk SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench_api_load import REQUEST_TIMEOUT_S, Server, run_phase

PLAN_SPEC = {  # a CPU job: every region of the three clouds offers an instance for it
    "name": "api-plan-bench",
    "command": ["python", "train.py"],
    "duration": "4h",
    "hardware": {"vcpus": 8, "memory_gb": 32},
    "baseline": "gcp:us-central1",
}
WARM_UP = 20


def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far (Linux /proc; None elsewhere). The
    server's CPU per request is the figure the neighbours on a shared machine disturb least."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WRK_SCRIPT = """
{request}
wrk.headers["Authorization"] = {auth}
function done(summary, latency, requests)
  io.write(string.format("WRK ok=%d errors=%d p50=%.3f p90=%.3f p99=%.3f max=%.3f\\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def client_cpu_s() -> float:
    """The client's CPU so far: this process's threads, and wrk once it has exited (a waited-for child)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_phase(
    label: str,
    url: str,
    body: bytes | None,
    token: str,
    concurrency: int,
    seconds: int,
    tmp: Path,
) -> dict[str, Any]:
    """The load from wrk: `seconds` long, `concurrency` keep-alive connections on 2 threads; a POST of
    `body` as JSON, or a GET when it is None. `label` names the phase as printed."""
    request = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {lua_string(body.decode())}"
        if body is not None
        else 'wrk.method = "GET"'
    )
    script = tmp / "plan.lua"
    script.write_text(WRK_SCRIPT.format(request=request, auth=lua_string(f"Bearer {token}")))
    threads = min(2, concurrency)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    found = re.search(r"WRK ok=(\d+) errors=(\d+) p50=([\d.]+) p90=([\d.]+) p99=([\d.]+) max=([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk printed no figures:\n{out}")
    ok, errors = int(found[1]), int(found[2])
    p50, p90, p99, top = (round(float(found[i]), 1) for i in range(3, 7))
    return {
        "phase": label,
        "ok": ok - errors,
        "errors": {"wrk": errors} if errors else {},
        "throughput_rps": round(ok / seconds, 1),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": top,
    }


def measure(
    label: str,
    tmp: Path,
    plans: int,
    concurrency: int,
    max_seconds: float,
    extra_env: dict[str, str],
    wrk_seconds: int | None = None,
) -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(PLAN_SPEC).encode()
    server = Server(tmp, token, extra_env)
    try:
        url = f"{server.url}/api/v1/plan"
        first = requests.post(url, data=body, headers=headers, timeout=60)
        first.raise_for_status()
        regions = len(first.json()["options"])
        for _ in range(WARM_UP):  # a warm daemon: what a user meets after its first plans
            requests.post(url, data=body, headers=headers, timeout=60).raise_for_status()

        def plan(session: requests.Session, _i: int) -> int:
            return session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S).status_code

        cpu_before, client_before = cpu_s(server.proc.pid), client_cpu_s()
        if wrk_seconds is not None:
            result = wrk_phase(
                f"{label}: POST /api/v1/plan (wrk)", url, body, token, concurrency, wrk_seconds, tmp
            )
        else:
            result = run_phase(
                f"{label}: POST /api/v1/plan", plans, concurrency, plan, time.monotonic() + max_seconds
            )
        cpu_after, client_after = cpu_s(server.proc.pid), client_cpu_s()
        result["client_cpu_ms_per_request"] = round(
            (client_after - client_before) * 1000 / max(result["ok"], 1), 1
        )
        result["server_cpu_ms_per_request"] = (
            round((cpu_after - cpu_before) * 1000 / max(result["ok"], 1), 1)
            if cpu_before is not None and cpu_after is not None
            else None
        )
        result["regions"] = regions
        result["response_bytes"] = len(first.content)
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120, help="stop sending after this long")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each tree this many times, alternating"
    )
    parser.add_argument("--baseline-src", type=Path, help="another tree's src/ to measure the same way")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--wrk", type=int, metavar="SECONDS", help="load from wrk for this long instead")
    args = parser.parse_args()
    if args.wrk is not None and shutil.which("wrk") is None:
        parser.error("--wrk needs wrk on PATH (Debian: apt-get install wrk)")
    if not 1 <= args.plans <= 10_000 or not 1 <= args.concurrency <= 64 or not 1 <= args.repeat <= 20:
        parser.error("--plans must be 1..10000, --concurrency 1..64 and --repeat 1..20")
    trees: dict[str, dict[str, str]] = {"this tree": {}}
    if args.baseline_src is not None:
        trees["baseline"] = {"PYTHONPATH": str(args.baseline_src.resolve())}
    results = []
    for _ in range(args.repeat):
        for label, extra_env in trees.items():
            with tempfile.TemporaryDirectory() as tmp:
                results.append(
                    measure(
                        label, Path(tmp), args.plans, args.concurrency, args.max_seconds, extra_env, args.wrk
                    )
                )
    print(
        f"POST /api/v1/plan on loopback, one `carbonshift serve` (SQLite, token on, offline), "
        f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    header = f"{'tree':<34} {'regions':>7} {'ok':>5} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'srv CPU ms/req':>14} {'client CPU':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['phase']:<34} {r['regions']:>7} {r['ok']:>5} {sum(r['errors'].values()):>6} "
            f"{r['throughput_rps']:>7} {r['p50_ms']:>7} {r['p90_ms']:>7} {r['p99_ms']:>7} {r['max_ms']:>7} {r['server_cpu_ms_per_request']!s:>14} {r['client_cpu_ms_per_request']:>10}"
        )
        if r["errors"]:
            print(f"  errors: {r['errors']}")
    mine = [r for r in results if r["phase"].startswith("this tree")]
    met = sum(r["p99_ms"] < 100 for r in mine)
    print(f"response: {mine[0]['response_bytes']} bytes; goal p99 < 100 ms: met in {met} of {len(mine)} runs")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
