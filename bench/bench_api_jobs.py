"""`GET /api/v1/jobs` with many stored jobs, on a warm daemon over SQLite (issue 13's goal: 10,000
jobs, paged, p99 < 50 ms).

It starts a real `carbonshift serve` (fresh SQLite database, bearer token) on a free loopback port,
submits one job through the API (placement local, tomorrow, so nothing is launched), stops the
daemon, copies that job's rows (job, run, plan, run events) `--jobs - 1` times with new ids and
creation times into the same database, starts the daemon again and sends `--requests` listings from
`--concurrency` client threads. Extra query strings (`--query 'limit=100'`) time other forms of the
listing. It never talks to any other address, and stops by itself.

Run: .venv/bin/python bench/bench_api_jobs.py [--jobs 10000] [--requests 16] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from bench_api_load import REQUEST_TIMEOUT_S, Server, _submission, run_phase
from carbonshift.scheduler.models import JobRow, PlanRow, RunEventRow, RunRow


def clone_jobs(db_file: Path, copies: int) -> None:
    """`copies` more jobs like the one stored, each a second older than the last, in bulk."""
    engine = sa.create_engine(f"sqlite:///{db_file}")
    jobs, runs, plans, events = (t.__table__ for t in (JobRow, RunRow, PlanRow, RunEventRow))
    with engine.begin() as conn:
        job = dict(conn.execute(sa.select(jobs)).mappings().one())
        run_rows = [dict(r) for r in conn.execute(sa.select(runs)).mappings()]
        plan_rows = [dict(r) for r in conn.execute(sa.select(plans)).mappings()]
        event_rows = [dict(r) for r in conn.execute(sa.select(events)).mappings()]
        created: datetime = job["created_at"].replace(tzinfo=UTC)
        batch: dict[str, list[dict[str, Any]]] = {"jobs": [], "runs": [], "plans": [], "events": []}

        def flush() -> None:
            for table, key in ((jobs, "jobs"), (runs, "runs"), (plans, "plans"), (events, "events")):
                if batch[key]:
                    conn.execute(sa.insert(table), batch[key])
                    batch[key] = []

        for i in range(1, copies + 1):
            job_id = uuid.uuid4().hex
            at = created - timedelta(seconds=i)
            batch["jobs"].append(
                {**job, "id": job_id, "name": f"load-{i:05d}", "created_at": at, "updated_at": at}
            )
            run_ids = {}
            for r in run_rows:
                run_ids[r["id"]] = uuid.uuid4().hex
                batch["runs"].append({**r, "id": run_ids[r["id"]], "job_id": job_id})
            for p in plan_rows:
                batch["plans"].append(
                    {
                        **{k: v for k, v in p.items() if k != "id"},
                        "job_id": job_id,
                        "run_id": run_ids[p["run_id"]],
                    }
                )
            for e in event_rows:
                batch["events"].append(
                    {**{k: v for k, v in e.items() if k != "id"}, "run_id": run_ids[e["run_id"]]}
                )
            if i % 1000 == 0:
                flush()
        flush()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--query", action="append", default=[], help="also time GET /api/v1/jobs?QUERY")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop sending after this long")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 100_000 or not 1 <= args.requests <= 10_000:
        parser.error("--jobs must be 1..100000 and --requests 1..10000")
    token = secrets.token_urlsafe(32)
    auth = {"Authorization": f"Bearer {token}"}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), token)
        try:
            requests.post(
                f"{server.url}/api/v1/jobs",
                data=json.dumps(_submission(0)).encode(),
                headers={**auth, "Content-Type": "application/json"},
                timeout=60,
            ).raise_for_status()
        finally:
            server.stop()
        t0 = time.perf_counter()
        clone_jobs(Path(tmp) / "scheduler.sqlite", args.jobs - 1)
        filled_s = time.perf_counter() - t0
        server = Server(Path(tmp), token)
        try:
            for query in ["", *args.query]:
                url = f"{server.url}/api/v1/jobs" + (f"?{query}" if query else "")
                first = requests.get(url, headers=auth, timeout=REQUEST_TIMEOUT_S)
                first.raise_for_status()
                listed = len(first.json()["jobs"])

                def listing(session: requests.Session, _i: int, url: str = url) -> int:
                    return session.get(url, headers=auth, timeout=REQUEST_TIMEOUT_S).status_code

                result = run_phase(
                    f"GET /api/v1/jobs{'?' + query if query else ''}",
                    args.requests,
                    args.concurrency,
                    listing,
                    time.monotonic() + args.max_seconds,
                )
                result["listed"] = listed
                result["bytes"] = len(first.content)
                results.append(result)
        finally:
            server.stop()
    print(
        f"GET /api/v1/jobs with {args.jobs} stored jobs (rows copied in {filled_s:.1f} s), one `carbonshift serve` "
        f"(SQLite, token on), concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    header = (
        f"{'request':<34} {'jobs':>6} {'MB':>6} {'ok':>4} {'err':>4} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['phase']:<34} {r['listed']:>6} {r['bytes'] / 1e6:>6.2f} {r['ok']:>4} {sum(r['errors'].values()):>4} "
            f"{r['throughput_rps']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8}"
        )
        if r["errors"]:
            print(f"  errors: {r['errors']}")


if __name__ == "__main__":
    main()
