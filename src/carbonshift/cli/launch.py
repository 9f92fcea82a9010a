"""`carbonshift launch SPEC --provider P --region R [--dry-run]`: start the job now on a cloud, a Slurm
cluster or a Kubernetes cluster (`--region` is then the cluster's name), with no planning and no
scheduler.

Skipping the planner must not skip the spec's rules: a region its placement (providers, allow-list,
exclude, data residency) refuses, or one whose catalog has no instance type for its hardware, exits 2
naming the rule; `--force` launches anyway where that is possible.

It prints the instance id once the instance exists. With no scheduler to report to, the bootstrap keeps
the tracker's report on the instance and prints it to the console log. `--dry-run` prints the exact
request that would be sent (JSON, with the bootstrap script), and needs neither an SDK nor credentials.
The run id is the idempotency key: a launch repeated with the same `--run-id` finds the instance the
first one made instead of starting a second.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from carbonshift import runtime
from carbonshift.catalog.instances import catalog_providers, offers, pick_instance
from carbonshift.cli import context
from carbonshift.cli.options import parse_time_option
from carbonshift.cli.render import OutputFormat, emit_json
from carbonshift.config.jobspec import JobSpec, load_jobspec
from carbonshift.errors import UserInputError
from carbonshift.planner.placement import placement_problem
from carbonshift.providers.base import Handle, LaunchRequest
from carbonshift.providers.registry import CLOUD_PROVIDERS, get_cloud_provider, get_provider

# engines the user already runs, where `--region` names a configured cluster
CLUSTER_PROVIDERS: tuple[str, ...] = ("slurm", "kubernetes")
LAUNCH_PROVIDERS: tuple[str, ...] = (*CLOUD_PROVIDERS, *CLUSTER_PROVIDERS)


def default_run_id(job: str) -> str:
    return f"{job}-{secrets.token_hex(4)}"


def launch(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The job spec (YAML or JSON).")],
    provider: Annotated[str, typer.Option("--provider", help="aws, gcp, azure, slurm or kubernetes.")],
    region: Annotated[
        str,
        typer.Option("--region", help="The provider's region id (e.g. eu-north-1) or the cluster's name."),
    ],
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
    force: Annotated[
        bool,
        typer.Option("--force", help="Launch even where the spec's placement rules refuse this region."),
    ] = False,
) -> None:
    """Launch a job now, skipping planning; print the instance (or cluster job) id."""
    settings = context.settings()
    key = provider.strip().lower()
    if key not in LAUNCH_PROVIDERS:
        raise UserInputError("--provider", f"{provider!r} is not one of: {', '.join(LAUNCH_PROVIDERS)}")
    where = region.strip()
    at = runtime.now_or(parse_time_option("--now", now, runtime.now_or(None)))
    spec = load_jobspec(spec_path, now=at)
    check_target(spec, key, where, settings, force=force)
    _, deadline = spec.resolve_window(at)
    if key in CLUSTER_PROVIDERS:
        _launch_on_cluster(spec, key, where, deadline, run_id, dry_run, output, settings, at)
        return
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
    _show(adapter.launch(request), key, request.run_id, output)


def _show(handle: Handle, provider: str, run_id: str, output: OutputFormat) -> None:
    """The id on stdout (JSON: the whole handle); where it runs and how to retry on stderr."""
    if output is OutputFormat.JSON:
        emit_json(handle.to_dict())
        return
    typer.echo(handle.instance_id)
    typer.echo(
        f"run {run_id} on {provider}:{handle.region}"
        + (f"; console: {handle.console_url}" if handle.console_url else "")
        + f"; retry safely with --run-id {run_id}",
        err=True,
    )


def check_target(spec: JobSpec, provider: str, region: str, settings: Any, *, force: bool) -> None:
    """Refuse (exit 2, naming the rule) a region the spec's placement or hardware rules out.

    An unknown region is an error even with --force: there is nothing to launch to. A placement rule
    (providers, regions, exclude, countries) gives way to --force; the hardware offering does too when
    --instance-type names the type, otherwise there is no type to launch and the catalog says where one is.
    """
    target = runtime.build_catalog(settings).region(provider, region)  # an unknown one is a clear error
    problem = placement_problem(target, spec.placement)
    if problem is not None and not force:
        field, why = problem
        raise UserInputError(
            field, f"the spec's placement does not allow this launch: {why}; pass --force to launch anyway"
        )
    if provider in catalog_providers() and not offers(provider, region, spec.hardware) and not force:
        pick_instance(provider, region, spec.hardware)  # raises, naming the regions that offer it


def _launch_on_cluster(
    spec: JobSpec,
    provider: str,
    cluster: str,
    deadline: datetime,
    run_id: str | None,
    dry_run: bool,
    output: OutputFormat,
    settings: Any,
    at: datetime,
) -> None:
    adapter = get_provider(provider, settings, clock=lambda: at)
    request = LaunchRequest(
        run_id=run_id or default_run_id(spec.name), spec=spec, region=cluster, deadline=deadline
    )
    if dry_run:
        emit_json(cluster_preview(provider, request, settings, at))
        return
    _show(adapter.launch(request), provider, request.run_id, output)


def cluster_preview(provider: str, request: LaunchRequest, settings: Any, at: datetime) -> dict[str, Any]:
    """What a cluster launch would submit: sbatch's options and batch script, or the Job manifest.
    Built by the adapters' own functions, with no cluster contacted."""
    if provider == "slurm":
        from carbonshift.providers.slurm import SlurmProvider, render_script

        slurm = SlurmProvider(settings, clock=lambda: at)
        cluster = slurm.clusters.get(request.region)
        if cluster is None:
            raise UserInputError("--region", f"no Slurm cluster {request.region!r} under slurm.clusters")
        run_dir = slurm.run_dir(request.region, request.run_id)
        return {
            "provider": provider,
            "cluster": request.region,
            "run_id": request.run_id,
            "sbatch": slurm.sbatch_args(request, request.region, run_dir),
            "script": render_script(request, request.region, cluster, run_dir),
        }
    from carbonshift.providers.kubernetes import job_body

    kube = settings.kubernetes.clusters.get(request.region)
    if kube is None:
        raise UserInputError("--region", f"no cluster {request.region!r} under kubernetes.clusters")
    return {
        "provider": provider,
        "cluster": request.region,
        "run_id": request.run_id,
        "job": job_body(request, request.region, kube, suspend=False, start=at),
    }


def register(app: typer.Typer) -> None:
    app.command("launch")(launch)
