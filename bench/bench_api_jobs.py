"""`GET /api/v1/jobs` with many stored jobs, on a warm daemon over SQLite (issue 13's goal: 10,000
jobs, paged, p99 < 50 ms).

It starts a real `carbonshift serve` (fresh SQLite database, bearer token) on a free loopback port,
submits one job through the API (placement local, tomorrow, so nothing is launched), stops the
daemon, copies that job's rows (job, run, plan, run events) `--jobs - 1` times with new ids and
creation times into the same database, starts the daemon again and sends `--requests` listings from
`--concurrency` client threads, once the daemon is idle (its start-up adopts every waiting run). Extra query strings (`--query 'limit=100'`) time other forms of the
listing; `--deep` also times a page from the middle of the list (`limit=100` and the cursor of the job
half-way down), which a keyset page answers as fast as the first. Each phase reports the server
process's CPU seconds per request beside the latencies (on a small shared machine, the figure other
processes disturb least), and the same less what the daemon's timers use at rest ("less idle": its
CPU per second measured before the phases, times the phase's length). `--baseline-src DIR` runs the same phases, on a database of its own, with the
server importing carbonshift from another source tree (e.g. the commit before paging moved into SQL:
`git archive COMMIT src | tar -x -C DIR`), so old and new are measured in the same run;
`--baseline-requests` keeps the old path's slow listings short. It never talks to any other address,
and stops by itself.

Run: .venv/bin/python bench/bench_api_jobs.py [--jobs 10000] [--requests 16] [--concurrency 8]
     [--query limit=100] [--deep] [--no-unpaged] [--baseline-src DIR [--baseline-requests 4]]
     [--wrk SECONDS]   (each phase loaded by wrk, as in bench_api_plan.py, instead of Python threads)
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
from types import SimpleNamespace
from typing import Any

import requests
import sqlalchemy as sa

from bench_api_load import REQUEST_TIMEOUT_S, Server, _submission, run_phase
from bench_api_plan import wrk_phase
from carbonshift.api.paging import encode_cursor
from carbonshift.scheduler.models import JobRow, PlanRow, RunEventRow, RunRow

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SAMPLE_S = 10.0


def clone_jobs(db_file: Path, copies: int) -> None:
    """`copies` more jobs like the one stored, each a second older than the last, in bulk."""
    engine = sa.create_engine(f"sqlite:///{db_file}")
    # the tables as the database has them (a baseline tree's schema may be older than this tree's models)
    meta = sa.MetaData()
    meta.reflect(engine, only=[t.__tablename__ for t in (JobRow, RunRow, PlanRow, RunEventRow)])
    jobs, runs, plans, events = (meta.tables[t.__tablename__] for t in (JobRow, RunRow, PlanRow, RunEventRow))
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


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def settle(pid: int, idle_cpu_s: float = 0.05, steady_cpu_s: float = 0.05, most_s: float = 30.0) -> float:
    """Wait until the server is idle (under `idle_cpu_s` CPU in a second) or at its rate at rest
    (three seconds in a row within `steady_cpu_s` of one another: with thousands of stored runs the
    daemon's ticks never leave it idle): a daemon that has just started adopts its runs' timers and
    ticks once, and that work is not the listing's. The wait."""
    t0 = time.monotonic()
    before = cpu_s(pid)
    rates: list[float] = []
    while time.monotonic() - t0 < most_s:
        time.sleep(1.0)
        now = cpu_s(pid)
        rates.append(now - before)
        before = now
        if rates[-1] < idle_cpu_s:
            break
        if len(rates) >= 3 and max(rates[-3:]) - min(rates[-3:]) < steady_cpu_s:
            break
    return time.monotonic() - t0


def middle_cursor(db_file: Path, jobs: int) -> str:
    """The cursor a client following the pages would hold half-way down the list."""
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        created, job_id = conn.execute(
            sa.text("SELECT created_at, id FROM jobs ORDER BY created_at DESC, id LIMIT 1 OFFSET :n"),
            {"n": jobs // 2},
        ).one()
    engine.dispose()
    at = datetime.fromisoformat(str(created)).replace(tzinfo=UTC)
    return encode_cursor(SimpleNamespace(created_at=at, id=job_id))


def measure(
    args: argparse.Namespace, src: Path | None, requests_n: int
) -> tuple[list[dict[str, Any]], float]:
    """Every phase on a fresh database of `args.jobs` jobs, served from this tree or `src`."""
    token = secrets.token_urlsafe(32)
    auth = {"Authorization": f"Bearer {token}"}
    env = None if src is None else {"PYTHONPATH": str(src / "src")}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), token, env)
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
        db_file = Path(tmp) / "scheduler.sqlite"
        clone_jobs(db_file, args.jobs - 1)
        filled_s = time.perf_counter() - t0
        queries = [] if args.no_unpaged else [""]
        queries += args.query
        if args.deep:
            queries.append(f"limit=100&cursor={middle_cursor(db_file, args.jobs)}")
        server = Server(Path(tmp), token, env)
        try:
            settled_s = settle(server.proc.pid)
            idle0 = cpu_s(server.proc.pid)
            time.sleep(IDLE_SAMPLE_S)  # what the daemon's own timers cost, beside the listings
            idle_ms_per_s = (cpu_s(server.proc.pid) - idle0) / IDLE_SAMPLE_S * 1000
            for query in queries:
                url = f"{server.url}/api/v1/jobs" + (f"?{query}" if query else "")
                first = requests.get(url, headers=auth, timeout=REQUEST_TIMEOUT_S)
                first.raise_for_status()
                listed = len(first.json()["jobs"])

                def listing(session: requests.Session, _i: int, url: str = url) -> int:
                    return session.get(url, headers=auth, timeout=REQUEST_TIMEOUT_S).status_code

                shown = query if "cursor=" not in query else query.split("&cursor=")[0] + "&cursor=(middle)"
                cpu0 = cpu_s(server.proc.pid)
                label = f"GET /api/v1/jobs{'?' + shown if shown else ''}"
                if args.wrk is not None:
                    result = wrk_phase(
                        label + " (wrk)", url, None, token, args.concurrency, args.wrk, Path(tmp)
                    )
                    result["wall_s"] = args.wrk
                else:
                    result = run_phase(
                        label, requests_n, args.concurrency, listing, time.monotonic() + args.max_seconds
                    )
                cpu = cpu_s(server.proc.pid) - cpu0
                result["listed"] = listed
                result["bytes"] = len(first.content)
                result["cpu_ms_per_req"] = round(cpu / max(result["ok"], 1) * 1000, 1)
                # the same less what the daemon's own timers used meanwhile, at the rate measured idle
                busy = max(cpu - idle_ms_per_s / 1000 * result["wall_s"], 0.0)
                result["req_cpu_ms"] = round(busy / max(result["ok"], 1) * 1000, 1)
                result["settled_s"] = settled_s
                result["idle_cpu_ms_per_s"] = round(idle_ms_per_s)
                results.append(result)
        finally:
            server.stop()
    return results, filled_s


def show(title: str, results: list[dict[str, Any]]) -> None:
    settled = results[0]["settled_s"] if results else 0.0
    idle = results[0]["idle_cpu_ms_per_s"] if results else 0
    print(
        f"{title} (the daemon settled {settled:.0f} s after it started; with no request it then used "
        f"{idle} ms CPU per second: its ticks over the stored runs)"
    )
    header = (
        f"{'request':<44} {'jobs':>6} {'MB':>6} {'ok':>4} {'err':>4} {'req/s':>6} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'CPU ms/req':>10} {'less idle':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['phase']:<44} {r['listed']:>6} {r['bytes'] / 1e6:>6.2f} {r['ok']:>4} {sum(r['errors'].values()):>4} "
            f"{r['throughput_rps']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['cpu_ms_per_req']:>10} "
            f"{r['req_cpu_ms']:>9}"
        )
        if r["errors"]:
            print(f"  errors: {r['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--query", action="append", default=[], help="also time GET /api/v1/jobs?QUERY")
    parser.add_argument("--deep", action="store_true", help="also time a page from the middle of the list")
    parser.add_argument("--no-unpaged", action="store_true", help="do not time the listing of every job")
    parser.add_argument("--baseline-src", type=Path, help="also serve from this source tree (its src/)")
    parser.add_argument("--baseline-requests", type=int, default=4, help="requests per baseline phase")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop sending after this long")
    parser.add_argument(
        "--wrk", type=int, metavar="SECONDS", help="each phase: load from wrk (C) for this long instead"
    )
    args = parser.parse_args()
    if not 1 <= args.jobs <= 100_000 or not 1 <= args.requests <= 10_000:
        parser.error("--jobs must be 1..100000 and --requests 1..10000")
    if args.baseline_src is not None and not (args.baseline_src / "src" / "carbonshift").is_dir():
        parser.error("--baseline-src must be a tree with src/carbonshift")
    results, filled_s = measure(args, None, args.requests)
    baseline = None
    if args.baseline_src is not None:
        baseline, _ = measure(args, args.baseline_src, args.baseline_requests)
    print(
        f"GET /api/v1/jobs with {args.jobs} stored jobs (rows copied in {filled_s:.1f} s), one `carbonshift serve` "
        f"(SQLite, token on), concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    show("this tree:", results)
    if baseline is not None:
        show(f"baseline ({args.baseline_src}):", baseline)


if __name__ == "__main__":
    main()
