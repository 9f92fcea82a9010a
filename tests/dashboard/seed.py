"""A real API server with finished runs for the dashboard's tests: four scheduled local runs owned by
two teams (tiny, measured by the tracker), and a year of runs `carbonshift track --server` posted for a
third team (realistic sizes, so the monthly chart and the README's screenshot have something to show)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from carbonshift.config.jobspec import Labels
from tests.api.helpers import ApiServer, local_spec, start_server

TEAMS = {"ml": "vision", "data": "etl"}
TRACKED_TEAM, TRACKED_PROJECT = "research", "llm-eval"


def _tracked(server: ApiServer, months: int = 6) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for back in range(months):
        end = now - timedelta(days=30 * back, hours=1)
        start = end - timedelta(hours=3)
        kwh = 4.0 + 1.5 * back
        kg = kwh * (0.21 + 0.03 * back)
        embodied = 0.02 * 3  # about an 8-GPU server's share for three hours
        server.scheduler.record_tracked(
            {
                "run_id": f"seed-{back}",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "energy_kwh": kwh,
                "kg_co2e": kg,
                "embodied_kg_co2e": embodied,
                "total_kg_co2e": kg + embodied,
                "mean_g_per_kwh": 210 + 30 * back,
                "duration_s": 3 * 3600.0,
                "exit_code": 0,
                "zone": "DE",
                "location": {"region": "gcp:europe-west3"},
            },
            Labels(team=TRACKED_TEAM, project=TRACKED_PROJECT),
            "nightly-eval",
        )


def seeded_server(tmp: Path) -> ApiServer:
    server = start_server(tmp)
    ids = []
    for team, project in TEAMS.items():
        for n in range(2):
            spec = local_spec(f"{team}-job-{n}", ["true"], labels={"team": team, "project": project})
            ids.append(server.submit(spec)["id"])
    for job_id in ids:
        server.wait_for(job_id, lambda j: j["status"] == "succeeded" and j["runs"][-1]["actual"] is not None)
    _tracked(server)
    return server
