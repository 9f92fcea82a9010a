"""The ledger's grouped totals over 100,000 finished runs spread over a year, on SQLite and (when one
answers) PostgreSQL: the time of `carbonshift.scheduler.ledger.totals` for a few groupings (median of
repeated calls, after one warm-up call), the same query the API's GET /api/v1/totals and
`Scheduler.totals` run. Goal: under 200 ms for team,month.

The data: 20 teams, 8 projects, 3 organisations, 12 regions on 4 providers; each run ends at a
random time in 2026 and has energy, actual, planned and baseline kg. Rows are inserted with bulk
Core inserts into a fresh database made by the migrations (SQLite in a temporary directory; on
PostgreSQL a temporary schema, dropped afterwards). Nothing else is touched.

Run: .venv/bin/python bench/bench_ledger_totals.py [--runs 100000] [--repeat 7] [--pg URL]
(default PostgreSQL URL: $CARBONSHIFT_TEST_PG_URL, else postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from carbonshift.scheduler import db
from carbonshift.scheduler.ledger import totals
from carbonshift.scheduler.models import JobRow, RunRow

GROUPINGS = (["team", "month"], ["organisation", "project"], ["provider", "region", "month"], [])
YEAR = datetime(2026, 1, 1, tzinfo=UTC)


def fill(engine: sa.Engine, runs: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    teams = [f"team-{i:02d}" for i in range(20)]
    projects = [f"project-{i}" for i in range(8)]
    orgs = ["acme", "globex", "initech"]
    places = [(p, f"region-{i}") for p in ("aws", "gcp", "azure", "local") for i in range(3)]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(JobRow),
            [
                {
                    "id": "job-bench",
                    "name": "bench",
                    "spec": {},
                    "recurring": True,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                    "kind": "scheduled",
                }
            ],
        )
    batch: list[dict[str, object]] = []
    for i in range(runs):
        end = YEAR + timedelta(seconds=rng.randrange(365 * 86400))
        provider, region = rng.choice(places)
        energy = rng.uniform(0.1, 50.0)
        baseline = energy * rng.uniform(0.2, 0.6)
        batch.append(
            {
                "id": f"run-b{i:08d}",
                "job_id": "job-bench",
                "seq": i + 1,
                "nominal": None,  # one-off runs (the unique key is on job_id, nominal)
                "state": "succeeded",
                "window_earliest": end - timedelta(hours=2),
                "deadline": end,
                "duration_s": 3600,
                "provider": provider,
                "region": region,
                "refusals": [],
                "cancel_requested": False,
                "prestart_replanned": False,
                "launch_attempts": 1,
                "launched_at": end - timedelta(hours=1),
                "ended_at": end,
                "created_at": end,
                "updated_at": end,
                "organisation": rng.choice(orgs),
                "team": rng.choice(teams),
                "project": rng.choice(projects),
                "energy_kwh": energy,
                "kg_co2e": baseline * rng.uniform(0.5, 1.0),
                "planned_kg_co2e": baseline * rng.uniform(0.5, 0.9),
                "baseline_kg_co2e": baseline,
            }
        )
        if len(batch) == 10_000:
            with engine.begin() as conn:
                conn.execute(sa.insert(RunRow), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(sa.insert(RunRow), batch)


def measure(engine: sa.Engine, repeat: int) -> list[tuple[str, int, float, float]]:
    out = []
    for group_by in GROUPINGS:
        totals(engine, group_by)  # warm-up: connection, statement cache, pages
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            data = totals(engine, group_by)
            times.append((time.perf_counter() - t0) * 1000)
        out.append(
            (",".join(group_by) or "(none)", len(data["groups"]), statistics.median(times), max(times))
        )
    t0 = time.perf_counter()
    data = totals(engine, ["team"], "2026-11-01T00:00Z", "2026-12-01T00:00Z", organisation="acme")
    out.append(("team; Nov, organisation=acme", len(data["groups"]), (time.perf_counter() - t0) * 1000, 0.0))
    return out


def report(name: str, engine: sa.Engine, runs: int, repeat: int) -> None:
    t0 = time.perf_counter()
    fill(engine, runs)
    filled = time.perf_counter() - t0
    print(f"\n{name}: {runs:,} runs inserted in {filled:.1f} s")
    print(f"{'group_by':<32} {'groups':>6} {'median ms':>10} {'max ms':>8}")
    for label, groups, median, worst in measure(engine, repeat):
        print(f"{label:<32} {groups:>6} {median:>10.1f} {f'{worst:.1f}' if worst else '-':>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--pg",
        default=os.environ.get("CARBONSHIFT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    print(f"python {platform.python_version()}, SQLAlchemy {sa.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.create_db_engine(sa.make_url(f"sqlite:///{Path(tmp) / 'ledger.db'}"))
        db.upgrade(engine)
        report("SQLite", engine, args.runs, args.repeat)
        engine.dispose()
    try:
        admin = sa.create_engine(args.pg.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
    except Exception as exc:
        print(f"\nPostgreSQL: skipped, not reachable ({type(exc).__name__})")
        return 0
    schema = f"cs_bench_{secrets.token_hex(4)}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in args.pg else "?"
        url = sa.make_url(
            args.pg.replace("postgresql://", "postgresql+psycopg://", 1)
            + f"{sep}options={quote(f'-csearch_path={schema}')}"
        )
        engine = db.create_db_engine(url)
        db.upgrade(engine)
        report(f"PostgreSQL {version}", engine, args.runs, args.repeat)
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
