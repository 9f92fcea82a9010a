"""Settings of the Slurm provider: the clusters this daemon submits to (`slurm.clusters.NAME`).

A cluster is a placement target like a cloud region: it joins the catalog as `slurm:NAME` with the grid
of its `zone`, or of the catalog `region` it sits in (a cluster in a cloud region, `aws:us-east-1`), and
the scheduler submits its runs with `sbatch` (providers/slurm.py). Only plain pydantic here, so the
settings module can import it without pulling in the provider.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from carbonshift.config.clusters import ClusterPlacement

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,63}$")  # the region part of a `provider:region` ref
_SLURM_NAME = re.compile(r"^[A-Za-z0-9._,-]{1,128}$")  # partitions (comma-separated), accounts
# sbatch options the provider sets itself: extra_args may not set them a second time
MANAGED_OPTIONS = (
    "--job-name",
    "-J",
    "--comment",
    "--begin",
    "-b",
    "--deadline",
    "--time",
    "-t",
    "--output",
    "-o",
    "--error",
    "-e",
    "--parsable",
    "--wrap",
    "--export",
    "--array",
    "-a",
    "--hold",
    "-H",
    "--test-only",
    "--wait",
    "-W",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlurmCluster(ClusterPlacement):
    """One cluster (or one partition of one): where its power comes from, and how to submit to it."""

    partition: str | None = Field(default=None, description="sbatch --partition; default: the cluster's")
    account: str | None = Field(default=None, description="sbatch --account")
    sbatch: str = Field(
        default="sbatch",
        description="the sbatch command (a path: squeue, scontrol and scancel are taken from its directory)",
    )
    extra_args: list[str] = Field(
        default_factory=list, description="more sbatch options, e.g. [--qos=low, --constraint=ib]"
    )
    carbonshift: str | None = Field(
        default=None,
        description="the carbonshift command on the compute nodes, which runs the job under the tracker "
        "(e.g. /shared/venv/bin/carbonshift); default: this daemon's Python with -m carbonshift",
    )
    track: bool = Field(default=True, description="run the job under the tracker (false: the bare command)")
    work_dir: Path | None = Field(
        default=None,
        description="absolute directory for each run's batch script, output, report and exit code; the "
        "nodes write there, so on a shared file system (default: <data_dir>/scheduler/slurm/NAME)",
    )
    node_dir: Path | None = Field(
        default=None,
        description="for compute nodes that do not share work_dir: an absolute directory that exists on "
        "every node (e.g. /tmp, a local scratch); each run's output, report and exit code go under it on "
        "its node, and the report comes back only over HTTP (scheduler.report_url)",
    )
    time_margin_s: float = Field(
        default=900.0,
        ge=0,
        le=7 * 86400,
        description="added to the job's duration for its time limit (--time); --deadline gets the same",
    )
    command_timeout_s: float = Field(default=30.0, gt=0, le=600, description="limit on one Slurm command")

    @field_validator("partition", "account")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is not None and not _SLURM_NAME.match(value):
            raise ValueError("letters, digits, '.', '_', '-' (and ',' between partitions) only")
        return value

    @field_validator("sbatch", "carbonshift")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\x00\n\r")):
            raise ValueError("must be a command name or path (no NUL or line breaks)")
        return value

    @field_validator("extra_args")
    @classmethod
    def _extra_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not arg.startswith("-") or "\x00" in arg or "\n" in arg:
                raise ValueError(f"{arg!r}: each item must be one sbatch option, e.g. --qos=low")
            name = arg.split("=", 1)[0]
            if name in MANAGED_OPTIONS or (len(name) > 2 and name[:2] in MANAGED_OPTIONS and name[1] != "-"):
                raise ValueError(f"{arg!r}: the provider sets {name} itself")
        return value

    @field_validator("work_dir", "node_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_absolute():
            raise ValueError("must be an absolute path (the compute nodes write there)")
        if value is not None and any(c in str(value) for c in "%\n\r\x00"):
            raise ValueError("no '%' or line breaks (sbatch reads '%' in --output as a pattern)")
        return None if value is None else value.expanduser()


class SlurmSettings(_Strict):
    clusters: dict[str, SlurmCluster] = Field(
        default_factory=dict, description="cluster name -> cluster; each is placement target slurm:NAME"
    )

    @field_validator("clusters")
    @classmethod
    def _names(cls, value: dict[str, SlurmCluster]) -> dict[str, SlurmCluster]:
        for name in value:
            if not CLUSTER_NAME.match(name):
                raise ValueError(
                    f"cluster name {name!r}: 1 to 63 letters, digits, '.', '_' or '-' (it is the region "
                    "in slurm:NAME)"
                )
        return value
