"""`carbonshift intensity`: how dirty is this grid, now and next, and where did each number come from."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from carbonshift import runtime
from carbonshift.cli import context
from carbonshift.cli.options import parse_signal_option, parse_time_option
from carbonshift.cli.render import OutputFormat, emit_json, table, warn
from carbonshift.clock import FixedClock, SystemClock
from carbonshift.errors import UserInputError
from carbonshift.intensity.types import IntensitySeries, TimeSpan
from carbonshift.timeutil import isoformat_z


def intensity(
    zone_or_region: Annotated[
        str,
        typer.Argument(
            help="A region (aws:eu-west-1, europe-north1), a zone (DE, GB-UKCI-13) or a location."
        ),
    ],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start: ISO 8601, 'now', or relative like -6h (default: now)."),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="End: ISO 8601 or relative like +24h (default: +24h).")
    ] = None,
    signal: Annotated[str, typer.Option("--signal", help="average or marginal.")] = "average",
    now: Annotated[
        str | None, typer.Option("--now", help="Pretend the time is this (for reproducible what-ifs).")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """Grid carbon intensity for a zone or region: measured history, forecast, and every fallback, visibly."""
    settings = context.settings()
    real_now = SystemClock().now()
    at = parse_time_option("--now", now, real_now) or real_now
    start = parse_time_option("--from", from_, at) or at
    end = parse_time_option("--to", to, at) or (start + timedelta(hours=24))
    if end <= start:
        raise UserInputError("--to", f"must be after --from ({isoformat_z(start)})")
    if end - start > timedelta(days=31):
        raise UserInputError("--to", "a span of at most 31 days is allowed")
    sig = parse_signal_option(signal)
    catalog = runtime.build_catalog(settings)
    zone = runtime.resolve_zone(zone_or_region, catalog, settings)
    service = runtime.build_service(settings, clock=FixedClock(at))
    series = service.series(zone, TimeSpan(start, end), sig)
    for notice in service.notices:
        warn(notice)
    if output is OutputFormat.JSON:
        data = series.to_dict()
        data["query"] = zone_or_region
        data["generated_at"] = isoformat_z(at)
        data["sources"] = [p.to_dict() for p in series.used_provenances()]
        data["mean_g_per_kwh"] = round(series.mean_g_per_kwh(series.span.start_s, series.span.end_s), 3)
        data["notices"] = list(service.notices)
        emit_json(data)
        return
    typer.echo(_render(zone_or_region, zone.id, series))


def _render(query: str, zone_id: str, series: IntensitySeries) -> str:
    mean = series.mean_g_per_kwh(series.span.start_s, series.span.end_s)
    rows = [
        (
            isoformat_z(p.start),
            isoformat_z(p.end),
            f"{p.g_per_kwh:.1f}",
            p.provenance.kind.value,
            p.provenance.source,
            p.provenance.note,
        )
        for p in series.points()
    ]
    head = (
        f"{query} -> zone {zone_id}, {series.signal.value} signal, "
        f"mean {mean:.1f} gCO2e/kWh over {isoformat_z(series.span.start)} .. {isoformat_z(series.span.end)}"
    )
    body = table(["start (UTC)", "end (UTC)", "gCO2e/kWh", "kind", "source", "note"], rows, "llrlll")
    return head + "\n" + body


def register(app: typer.Typer) -> None:
    app.command("intensity")(intensity)
