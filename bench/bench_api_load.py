"""Load test of the scheduler's HTTP API on loopback: 200 job submissions and 1,000 dry-run plans
(and, for reference, 1,000 GET /healthz, the HTTP stack alone, and 50 listings of every job).

It starts its own `carbonshift serve` (real scheduler, a fresh SQLite database, one uvicorn worker,
bearer token on) on 127.0.0.1 with a free port, sends a bounded number of requests from a few client
threads, stops the server, and prints p50/p90/p99 latency and throughput per phase. It never talks to
any other address, and it stops by itself: fixed counts, a timeout per request and a deadline for the
whole run.

Submitted jobs run on this machine (`placement: local`) no earlier than tomorrow, so nothing is
launched while the test runs; the plan requests rank the whole cloud catalog (AWS, Google Cloud,
Azure: 138 regions) for a GPU job, offline (bundled static tables, no live sources).

Run: .venv/bin/python bench/bench_api_load.py [--submissions 200] [--plans 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
ANNOUNCE = re.compile(r"carbonshift serving on (http://127\.0\.0\.1:\d+)")
REQUEST_TIMEOUT_S = 30.0


def _config(tmp: Path) -> Path:
    zone_csv = tmp / "zone.csv"
    zone_csv.write_text("timestamp,g_per_kwh\n2020-01-01T00:00Z,200\n2040-01-01T00:00Z,200\n")
    config = {
        "ukci_enabled": False,
        "data_dir": str(tmp / "data"),
        "db_url": f"sqlite:///{tmp / 'scheduler.sqlite'}",
        "location": "BENCHZONE",
        "locations": [{"provider": "local", "region": "bench", "zone": "BENCHZONE", "country": "DE"}],
        "intensity": {"files": {"BENCHZONE": str(zone_csv)}},
        "cache": {"path": str(tmp / "cache.sqlite")},
    }
    path = tmp / "carbonshift.yaml"
    path.write_text(json.dumps(config))
    return path


def _submission(i: int) -> dict[str, Any]:
    earliest = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    return {
        "name": f"load-{i:04d}",
        "command": ["true"],
        "duration": "30m",
        "hardware": {"vcpus": 4, "memory_gb": 8},
        "placement": {"providers": ["local"]},
        "window": {
            "earliest": earliest.isoformat().replace("+00:00", "Z"),
            "deadline": (earliest + timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
        },
    }


PLAN_SPEC = {
    "name": "load-plan",
    "command": ["python", "train.py"],
    "duration": "4h",
    "hardware": {"gpu": "A100", "gpus": 8, "vcpus": 32, "memory_gb": 256},
    "baseline": "gcp:us-central1",
}


class Server:
    """`carbonshift serve` in a subprocess, on a free loopback port."""

    def __init__(self, tmp: Path, token: str, extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        env["CARBONSHIFT_API_TOKEN"] = token
        env.update(extra_env or {})  # e.g. PYTHONPATH: another source tree, for an old-vs-new run
        cmd = [sys.executable, "-m", "carbonshift", "--config", str(_config(tmp)), "serve"]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--log-level", "warning"]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.url = ""
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                match = ANNOUNCE.search(line)
                if match:
                    self.url = match.group(1)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            self.stop()
            raise SystemExit("the server did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that happened)."""
    if not sorted_values:
        return float("nan")
    rank = min(max(math.ceil(q / 100 * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1]


def run_phase(
    name: str, count: int, concurrency: int, send: Callable[[requests.Session, int], int], deadline: float
) -> dict[str, Any]:
    """`count` requests from `concurrency` threads, each with its own keep-alive session."""
    local = threading.local()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        if time.monotonic() > deadline:
            with lock:
                errors["skipped (deadline)"] = errors.get("skipped (deadline)", 0) + 1
            return
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        t0 = time.perf_counter()
        try:
            status = send(session, i)
        except requests.RequestException as exc:
            status = -1
            key = type(exc).__name__
        else:
            key = f"HTTP {status}"
        elapsed = time.perf_counter() - t0
        with lock:
            if status in (200, 201):
                latencies.append(elapsed)
            else:
                errors[key] = errors.get(key, 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - t0
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    return {
        "phase": name,
        "requests": count,
        "ok": len(latencies),
        "errors": errors,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1) if wall > 0 else None,
        "p50_ms": round(_percentile(ms, 50), 1),
        "p90_ms": round(_percentile(ms, 90), 1),
        "p99_ms": round(_percentile(ms, 99), 1),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        "max_ms": round(ms[-1], 1) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending after this long")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    for name in ("submissions", "plans", "concurrency"):
        if not 1 <= getattr(args, name) <= 10_000:
            parser.error(f"--{name} must be between 1 and 10000")
    token = secrets.token_urlsafe(32)
    auth = {"Authorization": f"Bearer {token}"}
    plan_body = json.dumps(PLAN_SPEC).encode()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), token)
        try:
            url = server.url
            deadline = time.monotonic() + args.max_seconds
            warm = requests.post(
                f"{url}/api/v1/plan",
                data=plan_body,
                headers={**auth, "Content-Type": "application/json"},
                timeout=60,
            )
            warm.raise_for_status()
            options = len(warm.json()["options"])

            def submit(session: requests.Session, i: int) -> int:
                body = json.dumps(_submission(i)).encode()
                headers = {**auth, "Content-Type": "application/json"}
                return session.post(
                    f"{url}/api/v1/jobs", data=body, headers=headers, timeout=REQUEST_TIMEOUT_S
                ).status_code

            def plan(session: requests.Session, _i: int) -> int:
                headers = {**auth, "Content-Type": "application/json"}
                return session.post(
                    f"{url}/api/v1/plan", data=plan_body, headers=headers, timeout=REQUEST_TIMEOUT_S
                ).status_code

            def health(session: requests.Session, _i: int) -> int:
                return session.get(f"{url}/healthz", timeout=REQUEST_TIMEOUT_S).status_code

            def list_jobs(session: requests.Session, _i: int) -> int:
                return session.get(f"{url}/api/v1/jobs", headers=auth, timeout=REQUEST_TIMEOUT_S).status_code

            # the HTTP stack alone (no auth, no database): what every other figure includes
            results.append(
                run_phase("healthz (GET /healthz)", args.plans, args.concurrency, health, deadline)
            )
            results.append(
                run_phase("submit (POST /api/v1/jobs)", args.submissions, args.concurrency, submit, deadline)
            )
            results.append(
                run_phase(
                    f"plan (POST /api/v1/plan, {options} regions)",
                    args.plans,
                    args.concurrency,
                    plan,
                    deadline,
                )
            )
            results.append(
                run_phase(
                    f"list (GET /api/v1/jobs, {args.submissions} jobs)",
                    50,
                    args.concurrency,
                    list_jobs,
                    deadline,
                )
            )
            listed = requests.get(f"{url}/api/v1/jobs", headers=auth, timeout=60).json()["jobs"]
            stored = sum(1 for j in listed if str(j.get("name", "")).startswith("load-"))
        finally:
            server.stop()
    print(f"carbonshift API load test on loopback: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, one uvicorn worker, SQLite, bearer auth on")  # fmt: skip
    header = f"{'phase':<44} {'ok':>6} {'errors':>7} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        n_err = sum(r["errors"].values())
        print(
            f"{r['phase']:<44} {r['ok']:>6} {n_err:>7} {r['throughput_rps']:>7} {r['p50_ms']:>8} "
            f"{r['p90_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        )
        if r["errors"]:
            print(f"  errors: {r['errors']}")
    print(
        f"jobs stored after the run: {stored} (expected {args.submissions}); concurrency {args.concurrency}"
    )
    if args.json:
        print(json.dumps({"results": results, "stored": stored}, indent=2))


if __name__ == "__main__":
    main()
