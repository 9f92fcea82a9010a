"""`carbonshift providers ...`: the cloud side of carbonshift.

- `orphans [--provider P] [--region R] [--known-runs FILE] [--clean]`: instances tagged `carbonshift-run`
  whose run is not live in the scheduler; `--clean` terminates them. Without `--provider`, a cloud with
  no credentials configured is skipped, never asked (see cloud_credentials.py).
- `instances [--provider P] [--region R] [--gpu MODEL]`: the bundled instance-type catalog.

Which runs are live comes from `--known-runs FILE` (one run id per line, `#` comments, or a JSON list),
or else from the scheduler's database through `carbonshift.scheduler.live_run_ids(settings)` when the
scheduler provides it. With neither, the command refuses rather than guess: treating every instance as
an orphan could delete running jobs.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from carbonshift.catalog.instances import instance_types
from carbonshift.cli import context
from carbonshift.cli.cloud_credentials import HINTS, cloud_configured
from carbonshift.cli.render import OutputFormat, emit_json, table
from carbonshift.config import Settings
from carbonshift.errors import UserInputError
from carbonshift.planner.power_tables import lookup_gpu
from carbonshift.providers.base import Handle
from carbonshift.providers.registry import CLOUD_PROVIDERS, get_provider
from carbonshift.providers.watchdog import orphans as find_orphans

providers_app = typer.Typer(
    name="providers",
    help="Cloud instances carbonshift launched, and the instance catalog.",
    no_args_is_help=True,
)


def read_known_runs(path: Path) -> set[str]:
    """Run ids from a file: a JSON list of strings, or one id per line (blank lines and # comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError("--known-runs", f"cannot read {path}: {exc.strerror or exc}") from None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserInputError("--known-runs", f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise UserInputError("--known-runs", f"{path}: expected a JSON list of run id strings")
        return set(data)
    return {line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")}


def scheduler_live_runs(settings: Settings) -> set[str] | None:
    """The scheduler's live run ids, when the scheduler package offers `live_run_ids(settings)`."""
    try:
        module: Any = importlib.import_module("carbonshift.scheduler")
    except ImportError:
        return None
    fn = getattr(module, "live_run_ids", None)
    if fn is None:
        return None
    return set(fn(settings))


def _providers(values: list[str] | None) -> list[str]:
    chosen = [v.strip().lower() for v in values] if values else list(CLOUD_PROVIDERS)
    for name in chosen:
        if name not in CLOUD_PROVIDERS:
            raise UserInputError("--provider", f"{name!r} is not one of: {', '.join(CLOUD_PROVIDERS)}")
    return chosen


def _rows(handles: Iterable[Handle]) -> list[tuple[Any, ...]]:
    return [
        (
            h.provider,
            h.region,
            h.instance_id,
            h.run_id,
            h.details.get("job") or "",
            h.details.get("state") or "",
        )
        for h in handles
    ]


@providers_app.command("orphans")
def orphans_command(
    provider: Annotated[
        list[str] | None, typer.Option("--provider", help="aws, gcp, azure (repeatable; default: all three).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Only these regions (repeatable; default: all).")
    ] = None,
    known_runs: Annotated[
        Path | None, typer.Option("--known-runs", help="Live run ids: one per line, or a JSON list.")
    ] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Terminate the orphans found.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """Instances tagged by carbonshift whose run the scheduler does not know as live. Without
    --provider, clouds with no credentials configured are skipped (and named on stderr)."""
    settings = context.settings()
    names = _providers(provider)
    live = read_known_runs(known_runs) if known_runs is not None else scheduler_live_runs(settings)
    if live is None:
        raise UserInputError(
            "--known-runs",
            "no scheduler database to ask which runs are live; give --known-runs FILE "
            "(an empty file counts every carbonshift instance as an orphan)",
        )
    skipped = {} if provider else {n: HINTS[n] for n in names if not cloud_configured(n, settings)}
    for name, hint in skipped.items():
        typer.echo(
            f"skipping {name}: no credentials configured ({hint}); on a VM with an attached identity, "
            f"name it: --provider {name}",
            err=True,
        )
    found: list[Handle] = []
    for name in (n for n in names if n not in skipped):
        adapter = get_provider(name, settings, regions=region or None)
        found.extend(find_orphans(adapter.managed(), live))
    cleaned: list[str] = []
    if clean:
        for h in found:
            get_provider(h.provider, settings, regions=[h.region]).terminate(h)
            cleaned.append(h.instance_id)
    if output is OutputFormat.JSON:
        emit_json(
            {"orphans": [h.to_dict() for h in found], "terminated": cleaned, "skipped": sorted(skipped)}
        )
        return
    if not found:
        typer.echo("no orphaned instances", err=True)
        return
    typer.echo(table(["provider", "region", "instance", "run", "job", "state"], _rows(found)))
    verb = "terminated" if clean else "found (run again with --clean to terminate them)"
    typer.echo(f"{len(found)} orphaned instance(s) {verb}", err=True)


@providers_app.command("instances")
def instances_command(
    provider: Annotated[str | None, typer.Option("--provider", help="aws, gcp or azure.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Only types offered in this region.")] = None,
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="Only this GPU model (A100, H100, L4, ...).")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """The bundled instance-type catalog (sources: carbonshift/catalog/data/INSTANCE_TYPES_SOURCES.md)."""
    model = None
    if gpu is not None:
        row = lookup_gpu(gpu)
        if row is None:
            raise UserInputError("--gpu", f"unknown GPU model {gpu!r}")
        model = row.model
    rows = [
        t
        for t in instance_types()
        if (provider is None or t.provider == provider.lower())
        and (region is None or t.offered_in(region))
        and (model is None or t.gpu == model)
    ]
    if output is OutputFormat.JSON:
        emit_json([t.to_dict() for t in rows])
        return
    if not rows:
        typer.echo(no_match(provider, region, model), err=True)
        return
    typer.echo(
        table(
            ["provider", "type", "gpu", "gpus", "vcpus", "memory GB", "regions"],
            [
                (
                    t.provider,
                    t.key,
                    t.gpu or "",
                    t.gpus,
                    t.vcpus,
                    f"{t.memory_gb:g}",
                    "all" if t.regions is None else f"{len(t.regions)} listed",
                )
                for t in rows
            ],
            "lllrrrl",
        )
    )


def no_match(provider: str | None, region: str | None, model: str | None) -> str:
    """Why nothing matched, and where the GPU model is offered instead (so the next command is obvious)."""
    asked = " ".join(
        part
        for part in (
            f"with {model}" if model else "",
            f"from {provider}" if provider else "",
            f"in {region}" if region else "",
        )
        if part
    )
    if model is None:
        return f"no instance type {asked} in the bundled catalog"
    offering = sorted(
        {
            f"{t.provider}:{r}"
            for t in instance_types()
            if t.gpu == model and (provider is None or t.provider == provider.lower())
            for r in (t.regions or ["(every region)"])
        }
    )
    if not offering:
        where = f" from {provider}" if provider else ""
        return f"no instance type {asked}: the catalog has no {model} type{where} at all"
    shown = ", ".join(offering[:12]) + (f" and {len(offering) - 12} more" if len(offering) > 12 else "")
    return f"no instance type {asked}; {model} is offered in: {shown}"


def register(app: typer.Typer) -> None:
    app.add_typer(providers_app, name="providers")
