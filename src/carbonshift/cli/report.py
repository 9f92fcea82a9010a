"""`carbonshift report`: the ledger's totals from a carbonshift server (GET /api/v1/totals).

Energy, emissions actual (operational, embodied and their total), planned and at baseline, and the
saving, of finished runs, grouped by any of organisation, team, project, provider, region and month: a table for people, JSON (the server's,
unchanged) or CSV (one row per group, plain numbers) for scripts.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from carbonshift.cli.jobs import (
    OrganisationOption,
    ProjectOption,
    ServerOption,
    TeamOption,
    _client,
    co2,
)
from carbonshift.cli.options import parse_time_option
from carbonshift.cli.render import emit_json, table
from carbonshift.errors import UserInputError
from carbonshift.ledger_figures import FIGURES
from carbonshift.timeutil import isoformat_z


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def month_span(month: str) -> tuple[datetime, datetime]:
    """'2026-11' -> [2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise UserInputError("--month", f"expected YYYY-MM such as 2026-11, got {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), 1 if mon == 12 else mon + 1, 1, tzinfo=UTC)
    return start, end


def _num(value: Any) -> str:
    return "" if value is None else repr(float(value))


def _kwh(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g} kWh"


def _saved_pct(figures: dict[str, Any]) -> str:
    saved, base = figures.get("saved_kg_co2e"), figures.get("baseline_kg_co2e")
    if saved is None or not base:
        return "-"
    return f"{float(saved) / float(base) * 100:.1f} %"


def render_table(data: dict[str, Any]) -> str:
    keys = [str(k) for k in data.get("group_by") or []]
    groups = [g for g in data.get("groups") or [] if isinstance(g, dict)]
    span = f"{data.get('from') or 'the beginning'} .. {data.get('to') or 'now'}"
    if not groups:
        return f"no finished runs with measured emissions ({span})"

    def row(key: list[Any], figures: dict[str, Any]) -> tuple[object, ...]:
        return (
            *key,
            figures.get("runs", 0),
            _kwh(figures.get("energy_kwh")),
            co2(figures.get("kg_co2e")),
            co2(figures.get("embodied_kg_co2e")),
            co2(figures.get("total_kg_co2e")),
            co2(figures.get("planned_kg_co2e")),
            co2(figures.get("baseline_kg_co2e")),
            co2(figures.get("saved_kg_co2e")),
            _saved_pct(figures),
        )

    rows = [row([(g.get("key") or {}).get(k) or "-" for k in keys], g) for g in groups]
    total = data.get("total") or {}
    rows.append(row(["total", *([""] * (len(keys) - 1))] if keys else [], total))
    headers = (
        *keys,
        "runs",
        "energy",
        "operational CO2e",
        "embodied",
        "total CO2e",
        "planned CO2e",
        "baseline CO2e",
        "saved",
        "saved %",
    )
    text = table(headers, rows, "l" * len(keys) + "r" * 9)
    return f"ledger, runs that ended {span}\n{text}"


def render_csv(data: dict[str, Any]) -> str:
    keys = [str(k) for k in data.get("group_by") or []]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*keys, "runs", *FIGURES])
    for g in data.get("groups") or []:
        key = g.get("key") or {}
        writer.writerow(
            [*(key.get(k) or "" for k in keys), g.get("runs", 0), *(_num(g.get(f)) for f in FIGURES)]
        )
    return out.getvalue()


def report_command(
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by", help="Comma-separated: organisation, team, project, provider, region, month."
        ),
    ] = "team",
    month: Annotated[
        str | None,
        typer.Option("--month", help="Runs that ended in this UTC month (YYYY-MM).", show_default=False),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Runs that ended at or after (ISO 8601, -30d, ...).", show_default=False),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Runs that ended before.", show_default=False)
    ] = None,
    team: TeamOption = None,
    project: ProjectOption = None,
    organisation: OrganisationOption = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider's runs.", show_default=False)
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Only runs in provider:region.", show_default=False)
    ] = None,
    output: Annotated[
        ReportFormat, typer.Option("--format", help="table, json or csv.")
    ] = ReportFormat.TABLE,
    server: ServerOption = None,
) -> None:
    """The ledger: energy and kg CO2e of finished runs (actual: operational, embodied and total;
    planned, baseline, saved), totalled."""
    now = datetime.now(UTC)
    t0 = parse_time_option("--from", start, now)
    t1 = parse_time_option("--to", end, now)
    if month is not None:
        if t0 is not None or t1 is not None:
            raise UserInputError("--month", "give either --month or --from/--to, not both")
        t0, t1 = month_span(month)
    with _client(server) as client:
        data = client.totals(
            group_by,
            None if t0 is None else isoformat_z(t0),
            None if t1 is None else isoformat_z(t1),
            organisation=organisation,
            team=team,
            project=project,
            provider=provider,
            region=region,
        )
    if output is ReportFormat.JSON:
        emit_json(data)
    elif output is ReportFormat.CSV:
        typer.echo(render_csv(data), nl=False)
    else:
        typer.echo(render_table(data))


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
