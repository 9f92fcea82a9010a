"""`carbonshift launch SPEC --provider P --region R [--dry-run]`: start the job on a cloud now, with no
planning and no scheduler.

It prints the instance id once the instance exists. With no scheduler to report to, the bootstrap keeps
the tracker's report on the instance and prints it to the console log. `--dry-run` prints the exact
request that would be sent (JSON, with the bootstrap script), and needs neither an SDK nor credentials.
The run id is the idempotency key: a launch repeated with the same `--run-id` finds the instance the
first one made instead of starting a second.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from carbonshift import runtime
from carbonshift.catalog import load_catalog
from carbonshift.cli import context
from carbonshift.cli.options import parse_time_option
from carbonshift.cli.render import OutputFormat, emit_json
from carbonshift.config.jobspec import load_jobspec
from carbonshift.errors import UserInputError
from carbonshift.providers.base import LaunchRequest
from carbonshift.providers.registry import CLOUD_PROVIDERS, get_cloud_provider


def default_run_id(job: str) -> str:
    return f"{job}-{secrets.token_hex(4)}"


def launch(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The job spec (YAML or JSON).")],
    provider: Annotated[str, typer.Option("--provider", help="aws, gcp or azure.")],
    region: Annotated[str, typer.Option("--region", help="The provider's region id, e.g. eu-north-1.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request that would be sent (JSON); launch nothing.")
    ] = False,
    instance_type: Annotated[
        str | None, typer.Option("--instance-type", help="Use this type instead of the catalog's pick.")
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Idempotency key; repeat it to retry a launch safely (default: new)."),
    ] = None,
    interruptible: Annotated[
        bool | None,
        typer.Option("--interruptible/--no-interruptible", help="Spot / preemptible (default: the spec's)."),
    ] = None,
    now: Annotated[
        str | None, typer.Option("--now", help="Fix the clock (the deadline counts from it).")
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table (the id) or json.")
    ] = OutputFormat.TABLE,
) -> None:
    """Launch a job on a cloud now, skipping planning; print the instance id."""
    settings = context.settings()
    key = provider.strip().lower()
    if key not in CLOUD_PROVIDERS:
        raise UserInputError("--provider", f"{provider!r} is not one of: {', '.join(CLOUD_PROVIDERS)}")
    load_catalog(settings.locations).region(key, region.strip())  # an unknown region is a clear error
    at = runtime.now_or(parse_time_option("--now", now, runtime.now_or(None)))
    spec = load_jobspec(spec_path, now=at)
    _, deadline = spec.resolve_window(at)
    adapter = get_cloud_provider(key, settings, clock=lambda: at)
    request = LaunchRequest(
        run_id=run_id or default_run_id(spec.name),
        spec=spec,
        region=region.strip(),
        deadline=deadline,
        instance_type=instance_type,
        interruptible=spec.interruptible if interruptible is None else interruptible,
    )
    if dry_run:
        emit_json(adapter.plan(request).public())
        return
    handle = adapter.launch(request)
    if output is OutputFormat.JSON:
        emit_json(handle.to_dict())
        return
    typer.echo(handle.instance_id)
    typer.echo(
        f"run {request.run_id} on {key}:{handle.region}"
        + (f"; console: {handle.console_url}" if handle.console_url else "")
        + f"; retry safely with --run-id {request.run_id}",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("launch")(launch)
