"""The Slurm provider: a run is a batch job on a Slurm cluster, submitted with `sbatch`.

A cluster (`slurm.clusters.NAME` in the settings) is a placement target like a cloud region: it joins
the catalog as `slurm:NAME` (see `cluster_locations`), so the planner ranks it by its grid (its `zone`,
or the zone of the catalog `region` it sits in) and the scheduler launches on it when it is the plan's
choice and `scheduler.providers` names `slurm`. `LaunchRequest.region` is the cluster's NAME.

A launch writes the batch script to `<work_dir>/<run_id>/job.sh` (for people to read; the report token
replaced) and submits it on sbatch's standard input:

    sbatch --parsable --job-name=cs-RUN --comment=carbonshift-run:RUN --begin=now+S --deadline=now+S
           --time=D-HH:MM:SS --output=RUN_DIR/output.log --open-mode=append --chdir=RUN_DIR
           --cpus-per-task=N --mem=NM [--gres=gpu:N] [--partition=P] [--account=A] [extra_args] < job.sh

The spec's hardware is asked for as a cloud adapter picks an instance for it: vcpus as
`--cpus-per-task`, memory_gb as `--mem`, and `--gres=gpu:N` for its GPUs. `--begin` is the request's `not_before` (the planned start; now when absent or past); the time limit is
the spec's duration plus `time_margin_s`, and `--deadline` the run's deadline plus the same margin, so
Slurm itself drops a job that can no longer finish in time (state DEADLINE). Times are given relative
to now (`now+SECONDS`), so neither side's time zone matters.

The script runs the job under the tracker (`carbonshift track --zone Z|--region P:R --report
RUN_DIR/report.json --output-dir RUN_DIR -- CMD`), then writes RUN_DIR/exit.json.

The report comes back two ways. Where RUN_DIR is on a filesystem the nodes share with the daemon,
`status` reads RUN_DIR/report.json. Nodes that do not share it get the cluster's `node_dir`, a
directory every node has: sbatch's --output and --chdir point there, and the script makes the run's
own directory under it on its node (the daemon keeps job.sh, job.json and request.json in RUN_DIR). And when the request carries the run's report URL and token (the
daemon's `scheduler.report_url`), the tracker POSTs the report there itself (`--report-url`), which
needs no shared filesystem, only the scheduler's URL reachable from the nodes. The token travels in
the batch script's body: the script writes it through a here-document into a file only the job's user
can read (mode 0600, under $TMPDIR or /tmp on the node, removed when the script ends) and passes the
file's path (`--report-token-file`). So it is never on a command line (`ps`, sbatch's argv), never in
the job's environment, and not in `squeue` or `scontrol show job` output; the script body itself is
kept by slurmctld, where the job's user and root can read it (`scontrol write batch_script JOB`), as
they could read the token anyway. The token allows nothing but posting this run's report. Every value from the
spec or the request is one single-quoted shell word (an argv list word by word, a string command as
ONE argument to `sh -c`, the spec's `env:` and the request's `env` as `env 'NAME=value'` for the job
only), and an executable
line precedes anything taken from a spec, so no spec content can become an `#SBATCH` directive. The
job sees the environment sbatch is run with, which is allow-listed (the local provider's names, plus
SLURM_CONF): none of the daemon's secrets reach a job.

Queued ahead (the `Queueing` capability, providers/base.py): the scheduler calls `prepare` when it
plans a run, which submits it with `--begin` at its planned start, so Slurm holds it `PENDING
(BeginTime)` and starts it at its time by itself (`starts_queued`); `prepare` again with another start
moves the pending job (`scontrol update JobId=N StartTime=...`, else cancel and submit again), and
`launch` at the planned start returns the queued job (moving it to now when it still waits for later).

Idempotent by run id: under a lock file in the run directory, the run's recorded job (RUN_DIR/job.json,
written after sbatch answers) is returned, else a job named cs-RUN with comment carbonshift-run:RUN that
Slurm still knows (`squeue --states=all --name`, for a daemon that died between submitting and
recording), else a new job is submitted. Status comes from `scontrol show job` (which knows a finished
job for MinJobAge), then `sacct` where accounting is configured, then the script's exit.json.

sbatch refusals that another cluster (or the plan's next option) may not have - no such node
configuration, partition, GRES, memory, time limit, QOS or association limits - are CapacityError, and
so is a job Slurm accepted but can never start (pending on PartitionConfig and the like, which a cluster
without EnforcePartLimits gives a job asking for more CPUs than its nodes have): it is cancelled at once
and remembered in RUN_DIR/refused.json, so a later lookup does not take it for the run. Anything else is
a ProviderError carrying sbatch's own message.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonshift import __version__
from carbonshift.config import LocationSetting, Settings
from carbonshift.config.slurm import SlurmCluster
from carbonshift.errors import UnknownLocationError, UserInputError
from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)
from carbonshift.providers.bootstrap import command_words, redact
from carbonshift.providers.local import ENV_ALLOWED, ENV_ALLOWED_PREFIXES
from carbonshift.providers.runfiles import flocked, read_json, write_json

log = logging.getLogger(__name__)

NAME = "slurm"
JOB_PREFIX = "cs-"
COMMENT_PREFIX = "carbonshift-run:"
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_ID = re.compile(r"^\d+$")
MOVE_SLACK_S = 5.0  # a launch now moves a queued job only when it would begin later than this
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,1024}$")  # what a here-document carries as one plain line
# names of the daemon's environment that Slurm's commands (and so the jobs, through sbatch) get
SLURM_ENV_ALLOWED = (*ENV_ALLOWED, "SLURM_CONF")

# sbatch refusals that say "not here, not now": (code, pattern over sbatch's error text)
CAPACITY_ERRORS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(rx, re.IGNORECASE))
    for code, rx in (
        ("NodeConfigUnavailable", r"Requested node configuration is not available"),
        ("InvalidPartition", r"Invalid partition (name )?specified"),
        ("PartitionUnavailable", r"partition .*(not available|down|inactive|drain)|PartitionDown"),
        ("InvalidGres", r"Invalid generic resource|Invalid GRES|gres.*not available"),
        ("MemoryUnavailable", r"Memory specification can not be satisfied"),
        ("CpuCountUnavailable", r"CPU count per node can not be satisfied|More processors requested"),
        ("NodeCountInvalid", r"Node count specification invalid"),
        ("TimeLimit", r"Requested time limit is invalid"),
        ("QOSLimit", r"QOS|Job violates accounting/QOS policy|job submit limit"),
        ("AssocLimit", r"Assoc(Grp|Max)\w*Limit|association.*limit"),
        ("SubmitLimit", r"MaxSubmit|submit limit|Slurm temporarily unable to accept job"),
    )
)

# pending reasons that no wait will clear: the job asks for more than the partition or QOS allows a job
NEVER_RUNNABLE = re.compile(
    r"^(PartitionConfig|PartitionTimeLimit|BadConstraints|InvalidAccount|InvalidQOS"
    r"|(QOS|Assoc)Max\w*PerJob\w*|QOSMin\w+)$"
)

# JobState -> what the scheduler sees
_RUNNING_STATES = frozenset(
    {"CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED"}
)
_PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
_FAILED_WHY = {
    "FAILED": "the job failed",
    "TIMEOUT": "the job reached its time limit",
    "DEADLINE": "Slurm dropped the job: it could not finish before its deadline",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "PREEMPTED": "the job was preempted",
    "SPECIAL_EXIT": "the job ended in a special exit state",
    "REVOKED": "the job was revoked (federation)",
}


# ---- settings -> catalog ----------------------------------------------------------------------------
def cluster_locations(settings: Settings) -> list[LocationSetting]:
    """Each configured cluster as a user location `slurm:NAME`, so the catalog (and the planner) knows
    it: its own zone, or the zone, country, coordinates and PUE of the catalog region it sits in. A
    `region` the bundled catalog does not know is an error naming the setting."""
    from carbonshift.catalog import load_catalog

    out: list[LocationSetting] = []
    for name, cluster in settings.slurm.clusters.items():
        if cluster.zone is not None:
            out.append(
                LocationSetting(
                    provider=NAME,
                    region=name,
                    zone=cluster.zone,
                    country=cluster.country,
                    location=f"Slurm cluster {name}",
                    pue=cluster.pue or 1.0,
                )
            )
            continue
        assert cluster.region is not None  # the settings allow exactly one of region and zone
        try:
            where = load_catalog().resolve(cluster.region)
        except UnknownLocationError as exc:
            raise UserInputError(f"slurm.clusters.{name}.region", str(exc)) from None
        country = cluster.country or (where.country or "")[:2] or None
        out.append(
            LocationSetting(
                provider=NAME,
                region=name,
                zone=where.zone,
                country=country,
                location=f"Slurm cluster {name} in {where.key} ({where.location})",
                lat=where.lat,
                lon=where.lon,
                pue=cluster.pue or min(max(where.pue, 1.0), 3.0),
                watttime_region=where.watttime_region,
            )
        )
    return out


# ---- the provider -----------------------------------------------------------------------------------
class SlurmProvider:
    """Submits runs to the configured Slurm clusters (see the module docstring)."""

    name = NAME
    starts_queued = True  # Queueing: Slurm itself starts a job submitted ahead at its --begin time

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clusters: Mapping[str, SlurmCluster] | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.clusters: dict[str, SlurmCluster] = dict(
            clusters if clusters is not None else self.settings.slurm.clusters
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        source = os.environ if environ is None else environ
        self._env = {
            k: v for k, v in source.items() if k in SLURM_ENV_ALLOWED or k.startswith(ENV_ALLOWED_PREFIXES)
        }

    # ---- the Provider protocol ------------------------------------------------------------------
    def regions(self) -> list[str]:
        return sorted(self.clusters)

    def launch(self, request: LaunchRequest) -> Handle:
        """Submit the run (idempotent by run id). A job of the run queued ahead (`prepare`) is returned;
        one still pending for a later start is moved to start now."""
        return self._ensure(request)

    def prepare(self, request: LaunchRequest) -> Handle:
        """Queueing: submit the run ahead of its planned start (`--begin` = `request.not_before`), so it
        waits `PENDING (BeginTime)` in the cluster and starts at its time even while no daemon runs.
        Called again with another `not_before` (a re-plan), the pending job is moved (`scontrol update
        JobId=N StartTime=...`; where Slurm refuses that, the job is cancelled and submitted again, the
        old one remembered so no lookup takes it for the run). A job already started is left alone."""
        return self._ensure(request)

    def _ensure(self, request: LaunchRequest) -> Handle:
        """The run's job, submitted when Slurm has none for it, its start moved when it is pending for
        another one (see `prepare`)."""
        cluster = self._cluster(request.region)
        region = request.region
        run_dir = self.run_dir(region, request.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        with flocked(run_dir / "launch.lock"):
            existing = self.find(request.run_id, region)
            if existing is None:
                return self._submit(request, region, cluster, run_dir)
            recorded = read_json(run_dir / "job.json") or {}
            if not self._moves(request, recorded.get("not_before")):
                log.info(
                    "run %s: already submitted to %s as job %s; not submitting it again",
                    request.run_id,
                    region,
                    existing.instance_id,
                )
                return existing
            job_id = existing.instance_id
            info = self._show_job(region, cluster, job_id)
            if info is None or info.get("JobState") != "PENDING":
                return existing  # started (or ended): Slurm has it, nothing to move
            want = request.not_before.isoformat() if request.not_before is not None else None
            begin, _ = self._begin(request)
            moved = self._slurm(
                region, cluster, "scontrol", ["update", f"JobId={job_id}", f"StartTime={begin}"]
            )
            if moved.returncode == 0:
                write_json(run_dir / "job.json", {**recorded, "job_id": job_id, "not_before": want})
                log.info("run %s: job %s on %s moved to begin at %s", request.run_id, job_id, region, begin)
                return existing
            log.info(
                "run %s: scontrol refused to move job %s (%s): submitting it again",
                request.run_id,
                job_id,
                _errors(moved),
            )
            refused = read_json(run_dir / "refused.json") or {}
            write_json(run_dir / "refused.json", {**refused, job_id: f"replaced: moved to begin at {begin}"})
            self._slurm(region, cluster, "scancel", [job_id])
            (run_dir / "job.json").unlink(missing_ok=True)
            return self._submit(request, region, cluster, run_dir)

    def _moves(self, request: LaunchRequest, recorded: Any) -> bool:
        """Whether the run's job, recorded as queued for `recorded` (ISO, or None: at once), must be moved
        for this request: to its other `not_before`, or (a launch now) from a start still ahead."""
        if request.not_before is not None:
            return bool(recorded != request.not_before.isoformat())
        if not isinstance(recorded, str):
            return False
        try:
            begins = datetime.fromisoformat(recorded)
        except ValueError:
            return False
        return begins > self._clock() + timedelta(seconds=MOVE_SLACK_S)

    def find(self, run_id: str, region: str) -> Handle | None:
        cluster = self._cluster(region)
        run_dir = self.run_dir(region, run_id)
        recorded = read_json(run_dir / "job.json")
        if recorded is not None and _JOB_ID.match(str(recorded.get("job_id", ""))):
            return self._handle(region, run_id, str(recorded["job_id"]))
        job_id = self._lookup(region, cluster, run_id)
        if job_id is None:
            return None
        log.info("run %s: found job %s on %s by its name (not recorded here)", run_id, job_id, region)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "job.json", {"job_id": job_id, "cluster": region, "found_by": "squeue --name"})
        return self._handle(region, run_id, job_id)

    def status(self, handle: Handle) -> InstanceStatus:
        region, job_id, run_dir = self._where(handle)
        cluster = self._cluster(region)
        report = read_json(run_dir / "report.json")
        info = self._show_job(region, cluster, job_id)
        if info is not None:
            return _status_from(info, report)
        accounted = self._sacct(region, cluster, job_id)
        if accounted is not None:
            return _status_from(accounted, report)
        ended = read_json(run_dir / "exit.json")
        if ended is not None and isinstance(ended.get("exit_code"), int):
            code = int(ended["exit_code"])
            state = InstanceState.SUCCEEDED if code == 0 else InstanceState.FAILED
            return InstanceStatus(state, code, f"job {job_id} exited with {code} (its exit.json)", report)
        return InstanceStatus(
            InstanceState.UNKNOWN,
            detail=f"{region} no longer knows job {job_id} (past MinJobAge, no accounting) and it left no "
            f"exit code in {run_dir}",
            report=report,
        )

    def terminate(self, handle: Handle) -> None:
        region, job_id, _ = self._where(handle)
        cluster = self._cluster(region)
        done = self._slurm(region, cluster, "scancel", [job_id])
        if done.returncode != 0:
            text = _errors(done)
            if re.search(r"already complet|Invalid job id|does not exist", text, re.IGNORECASE):
                return
            raise ProviderError(self.name, f"{region}: scancel {job_id} failed: {text}")
        log.info("run %s: asked %s to cancel job %s", handle.run_id, region, job_id)

    def gone(self, handle: Handle) -> bool:
        """A job holds nothing once it is neither pending nor running."""
        return self.status(handle).state not in (InstanceState.PENDING, InstanceState.RUNNING)

    def managed(self) -> list[Handle]:
        """The pending and running jobs of this user that carbonshift submitted (name cs-RUN and comment
        carbonshift-run:RUN), on every configured cluster, each once."""
        out: list[Handle] = []
        seen: set[str] = set()
        for region, cluster in sorted(self.clusters.items()):
            for job_id, state, partition, run_id, _ in self._squeue(region, cluster, None, None):
                if job_id in seen or not _in_partition(cluster, partition):
                    continue
                seen.add(job_id)
                handle = self._handle(region, run_id, job_id)
                handle.details["state"] = state.lower()
                out.append(handle)
        return out

    # ---- Slurm extras --------------------------------------------------------------------------------
    def run_dir(self, region: str, run_id: str) -> Path:
        cluster = self._cluster(region)
        if not _RUN_ID.match(run_id):
            raise ProviderError(self.name, f"run id {run_id!r} is not a safe job or directory name")
        base = cluster.work_dir or self.settings.resolved_data_dir() / "scheduler" / "slurm" / region
        path = Path(base).expanduser() / run_id
        if "%" in str(path) or "\n" in str(path):
            raise ProviderError(
                self.name, f"{region}: work dir {base} has '%' or a line break, which sbatch cannot take"
            )
        return path

    def node_run_dir(self, region: str, run_id: str) -> Path:
        """The run's directory as the job sees it: the run dir (shared with the nodes), or the run id
        under the cluster's `node_dir` on its node."""
        cluster = self._cluster(region)
        run_dir = self.run_dir(region, run_id)
        return run_dir if cluster.node_dir is None else cluster.node_dir / run_id

    def sbatch_args(self, request: LaunchRequest, region: str, run_dir: Path) -> list[str]:
        """sbatch's options for `request` (everything but the script's path)."""
        cluster = self._cluster(region)
        now = self._clock()
        begin, start = self._begin(request)
        deadline = request.deadline + timedelta(seconds=cluster.time_margin_s)
        if deadline <= start:
            raise ProviderError(
                self.name,
                f"{region}: the run's deadline {request.deadline.isoformat()} (plus the "
                f"{cluster.time_margin_s:.0f} s margin) is not after its start {start.isoformat()}",
            )
        limit = request.spec.duration + timedelta(seconds=cluster.time_margin_s)
        # where slurmd opens the output and starts the script: the run dir, or the nodes' own directory
        # (which exists on each; the script makes the run's directory under it)
        output, chdir = run_dir / "output.log", run_dir
        if cluster.node_dir is not None:
            output, chdir = cluster.node_dir / f"{JOB_PREFIX}{request.run_id}.log", cluster.node_dir
        args = [
            "--parsable",
            f"--job-name={JOB_PREFIX}{request.run_id}",
            f"--comment={COMMENT_PREFIX}{request.run_id}",
            f"--begin={begin}",
            f"--deadline=now+{math.floor((deadline - now).total_seconds())}",
            f"--time={slurm_duration(limit)}",
            f"--output={output}",
            "--open-mode=append",
            f"--chdir={chdir}",
        ]
        hw = request.spec.hardware
        if hw.gpus > 0:
            args.append(f"--gres=gpu:{hw.gpus}")
        if cluster.partition:
            args.append(f"--partition={cluster.partition}")
        if cluster.account:
            args.append(f"--account={cluster.account}")
        args.append(f"--cpus-per-task={hw.vcpus}")
        if hw.memory_gb > 0:
            args.append(f"--mem={math.ceil(hw.memory_gb * 1024)}M")
        return [*args, *cluster.extra_args]

    # ---- internals -------------------------------------------------------------------------------
    def _begin(self, request: LaunchRequest) -> tuple[str, datetime]:
        """The run's start as Slurm takes it (`now` or `now+SECONDS`: no time zone involved), and when."""
        now = self._clock()
        start = request.not_before if request.not_before is not None and request.not_before > now else now
        return ("now" if start <= now else f"now+{math.ceil((start - now).total_seconds())}"), start

    def _cluster(self, region: str) -> SlurmCluster:
        cluster = self.clusters.get(region)
        if cluster is None:
            known = ", ".join(sorted(self.clusters)) or "none (set slurm.clusters)"
            raise ProviderError(self.name, f"no Slurm cluster {region!r} is configured; known: {known}")
        return cluster

    def _where(self, handle: Handle) -> tuple[str, str, Path]:
        job_id = str(handle.details.get("job_id") or handle.instance_id)
        if not _JOB_ID.match(job_id):
            raise ProviderError(self.name, f"{handle.region}: {job_id!r} is not a Slurm job id")
        run_dir = Path(str(handle.details.get("run_dir") or self.run_dir(handle.region, handle.run_id)))
        return handle.region, job_id, run_dir

    def _submit(self, request: LaunchRequest, region: str, cluster: SlurmCluster, run_dir: Path) -> Handle:
        script = run_dir / "job.sh"
        text = render_script(request, region, cluster, self.node_run_dir(region, request.run_id))
        script.write_text(redact(text, request.report_token), encoding="utf-8")
        script.chmod(0o700)
        args = self.sbatch_args(request, region, run_dir)
        write_json(
            run_dir / "request.json",
            {
                "run_id": request.run_id,
                "job": request.spec.name,
                "cluster": region,
                "deadline": request.deadline.isoformat(),
                "not_before": request.not_before.isoformat() if request.not_before else None,
                "sbatch": [cluster.sbatch, *args],
                "script": f"{script} (on sbatch's stdin; there with the report token)",
            },
        )
        done = self._slurm(region, cluster, "sbatch", args, stdin=text)
        if done.returncode != 0:
            raise self._refusal(region, done)
        job_id = done.stdout.strip().split(";", 1)[0]
        if not _JOB_ID.match(job_id):
            raise ProviderError(self.name, f"{region}: sbatch answered {done.stdout.strip()!r}, not a job id")
        self._refuse_if_never_runnable(region, cluster, run_dir, job_id)
        write_json(
            run_dir / "job.json",
            {
                "job_id": job_id,
                "cluster": region,
                "submitted_at": self._clock().isoformat(),
                "not_before": request.not_before.isoformat() if request.not_before is not None else None,
            },
        )
        log.info("run %s: submitted to %s as job %s (output %s)", request.run_id, region, job_id, run_dir)
        return self._handle(region, request.run_id, job_id)

    def _refusal(self, region: str, done: subprocess.CompletedProcess[str]) -> ProviderError:
        text = _errors(done) or f"exit code {done.returncode}, no message"
        failed = re.search(r"Batch job submission failed:\s*(.+)", text)
        for code, pattern in CAPACITY_ERRORS:
            if pattern.search(failed.group(1) if failed else text) or pattern.search(text):
                return CapacityError(self.name, region, f"sbatch refused: {text}", code)
        return ProviderError(self.name, f"{region}: sbatch failed (exit {done.returncode}): {text}")

    def _refuse_if_never_runnable(
        self, region: str, cluster: SlurmCluster, run_dir: Path, job_id: str
    ) -> None:
        """A job Slurm took but can never start here (more CPUs than the partition's nodes have, a
        time limit over its MaxTime: clusters without EnforcePartLimits accept those and leave them
        pending) is cancelled, remembered as refused, and answered with CapacityError."""
        try:
            info = self._show_job(region, cluster, job_id) or {}
        except ProviderError:
            return  # it was submitted: the status polls will tell
        reason = info.get("Reason", "")
        if info.get("JobState") != "PENDING" or not NEVER_RUNNABLE.match(reason):
            return
        refused = read_json(run_dir / "refused.json") or {}
        write_json(run_dir / "refused.json", {**refused, job_id: reason})
        self._slurm(region, cluster, "scancel", [job_id])
        raise CapacityError(
            self.name, region, f"job {job_id} can never start here ({reason}): cancelled", reason
        )

    def _lookup(self, region: str, cluster: SlurmCluster, run_id: str) -> str | None:
        """The newest job Slurm still knows for this run (any state), by its name and comment; None if
        none. A job Slurm refused at submission (FAILED with BadConstraints: it never ran) is no launch."""
        found: list[int] = []
        refused = read_json(self.run_dir(region, run_id) / "refused.json") or {}
        for job_id, state, partition, jrun, reason in self._squeue(
            region, cluster, "all", f"{JOB_PREFIX}{run_id}"
        ):
            if jrun != run_id or not _in_partition(cluster, partition):
                continue
            if (state == "FAILED" and reason == "BadConstraints") or job_id in refused:
                continue
            found.append(int(job_id))
        return str(max(found)) if found else None

    def _squeue(
        self, region: str, cluster: SlurmCluster, states: str | None, name: str | None
    ) -> Iterator[tuple[str, str, str, str, str]]:
        """(job id, state, partition, run id, reason) of this user's carbonshift jobs."""
        args = ["--noheader", f"--user={os.getuid()}", "--format=%i|%T|%P|%r|%j|%k"]
        if states:
            args.append(f"--states={states}")
        if name:
            args.append(f"--name={name}")
        done = self._slurm(region, cluster, "squeue", args)
        if done.returncode != 0:
            raise ProviderError(self.name, f"{region}: squeue failed: {_errors(done)}")
        for line in done.stdout.splitlines():
            parts = line.strip().split("|", 5)
            if len(parts) != 6:
                continue
            job_id, state, partition, reason, job_name, comment = parts
            if not _JOB_ID.match(job_id) or not job_name.startswith(JOB_PREFIX):
                continue
            run_id = comment.strip().removeprefix(COMMENT_PREFIX)
            if not comment.startswith(COMMENT_PREFIX) or job_name != f"{JOB_PREFIX}{run_id}":
                continue
            yield job_id, state.strip().upper(), partition, run_id, reason.strip()

    def _show_job(self, region: str, cluster: SlurmCluster, job_id: str) -> dict[str, str] | None:
        """`scontrol show job`'s fields for the job; None when the controller no longer knows it."""
        done = self._slurm(region, cluster, "scontrol", ["show", "job", "--oneliner", job_id])
        if done.returncode != 0:
            text = _errors(done)
            if re.search(r"Invalid job id", text, re.IGNORECASE):
                return None
            raise ProviderError(self.name, f"{region}: scontrol show job {job_id} failed: {text}")
        return _fields(done.stdout)

    def _sacct(self, region: str, cluster: SlurmCluster, job_id: str) -> dict[str, str] | None:
        """The job's state and exit code from accounting, where the cluster keeps it; None otherwise."""
        try:
            done = self._slurm(
                region,
                cluster,
                "sacct",
                ["--noheader", "--parsable2", "-X", "-j", job_id, "-o", "State,ExitCode"],
            )
        except ProviderError:
            return None
        line = next((x for x in done.stdout.splitlines() if x.strip()), None)
        if done.returncode != 0 or line is None or "|" not in line:
            return None
        state, code = line.split("|", 1)
        return {"JobId": job_id, "JobState": state.split()[0], "Reason": "", "ExitCode": code.strip()}

    def _slurm(
        self, region: str, cluster: SlurmCluster, tool: str, args: list[str], stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one Slurm command; `stdin` is its standard input (sbatch's script), else nothing."""
        argv = [tool_path(cluster, tool), *args]
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=cluster.command_timeout_s,
                env=self._env,
                input=stdin if stdin is not None else "",
                check=False,
            )
        except FileNotFoundError:
            raise ProviderError(
                self.name,
                f"{region}: {argv[0]} not found (slurm.clusters.{region}.sbatch is {cluster.sbatch!r}; "
                "the other Slurm commands are taken from its directory)",
            ) from None
        except subprocess.TimeoutExpired:
            raise ProviderError(
                self.name, f"{region}: {tool} gave no answer in {cluster.command_timeout_s:.0f} s"
            ) from None
        except OSError as exc:
            raise ProviderError(self.name, f"{region}: cannot run {argv[0]}: {exc.strerror or exc}") from None

    def _handle(self, region: str, run_id: str, job_id: str) -> Handle:
        run_dir = self.run_dir(region, run_id)
        cluster = self._cluster(region)
        log_path = (
            run_dir / "output.log"
            if cluster.node_dir is None
            else cluster.node_dir / f"{JOB_PREFIX}{run_id}.log"  # on the node that ran it
        )
        return Handle(
            provider=self.name,
            region=region,
            run_id=run_id,
            instance_id=job_id,
            console_url=None,
            details={
                "job_id": job_id,
                "cluster": region,
                "job_name": f"{JOB_PREFIX}{run_id}",
                "run_dir": str(run_dir),
                "log_path": str(log_path),
            },
        )


# ---- the batch script -------------------------------------------------------------------------------
def tracker_words(cluster: SlurmCluster) -> list[str]:
    """The carbonshift command on the nodes, as argv words."""
    if cluster.carbonshift:
        return shlex.split(cluster.carbonshift)
    return [sys.executable, "-m", "carbonshift"]


def render_script(request: LaunchRequest, region: str, cluster: SlurmCluster, run_dir: Path) -> str:
    """The job's batch script (see the module docstring): every spec value is one quoted shell word."""
    q = shlex.quote
    env_words: list[str] = []
    # the spec's `env:`, then the scheduler's (request.env: a chunk's index, count and checkpoint dir)
    for name, value in {**request.spec.env, **request.env}.items():
        if not _ENV_NAME.match(name) or "\x00" in value:
            raise UserInputError("env", f"{name!r}: not a variable name, or a value with a NUL character")
        env_words.append(q(f"{name}={value}"))
    job = command_words(request.spec.command)
    if env_words:
        first = request.spec.command[0] if isinstance(request.spec.command, list) else "sh"
        # env would take a first word with '=' for one more assignment: exec it through sh instead
        via = "sh -c 'exec \"$@\"' sh " if "=" in first else ""
        job = "env " + " ".join(env_words) + " " + via + job
    report = ""
    if cluster.track:
        where = ["--region", cluster.region] if cluster.region else ["--zone", str(cluster.zone)]
        head = " ".join(q(w) for w in [*tracker_words(cluster), "track", *where])
        back = ""
        if request.report_url and request.report_token:
            report, back = report_block(request.report_url, request.report_token), ' "$@"'
        line = f'{head} --report "$RUN_DIR/report.json" --output-dir "$RUN_DIR"{back} -- {job}'
    else:
        line = job
    own_dir = 'mkdir -p "$RUN_DIR" && cd "$RUN_DIR" || exit 1\n' if cluster.node_dir is not None else ""
    return _SCRIPT.format(
        version=__version__,
        run_dir=q(str(run_dir)),
        run_id=q(request.run_id),
        report=own_dir + report,
        line=line,
    )


def report_block(url: str, token: str) -> str:
    """The script's lines that put the run's token in a private file on the node and the tracker's
    `--report-url URL --report-token-file FILE` in "$@" (see the module docstring). Without such a file
    the job still runs, its report only on disk."""
    if not url.startswith(("https://", "http://")) or "\n" in url:
        raise UserInputError("report_url", f"must be an http(s) URL, got {url!r}")
    if not _TOKEN.match(token):
        raise ProviderError(NAME, "the run's report token has characters a batch script cannot carry")
    return _REPORT.format(url=shlex.quote(url), token=token)


_SCRIPT = """\
#!/bin/sh
set -u
# carbonshift {version}: one run of a job, submitted by the Slurm provider. Every value taken from the
# job spec is one single-quoted word; the executable line above ends sbatch's reading of directives.
RUN_DIR={run_dir}
CARBONSHIFT_RUN_ID={run_id}
CARBONSHIFT_RUN_DIR="$RUN_DIR"
export CARBONSHIFT_RUN_ID CARBONSHIFT_RUN_DIR
{report}{line}
code=$?
printf '{{"exit_code": %d, "job_id": "%s"}}\\n' "$code" "${{SLURM_JOB_ID:-}}" > "$RUN_DIR/.exit.json.tmp" \\
  && mv -f "$RUN_DIR/.exit.json.tmp" "$RUN_DIR/exit.json"
exit "$code"
"""


_REPORT = """\
# The tracker sends the report to the scheduler itself, with this run's own token: written here into
# a file only this user can read, so it is on no command line and in no environment.
set --
if REPORT_TOKEN_FILE=$(umask 077 && mktemp "${{TMPDIR:-/tmp}}/carbonshift-report.XXXXXX"); then
  trap 'rm -f "$REPORT_TOKEN_FILE"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cat > "$REPORT_TOKEN_FILE" <<'CARBONSHIFT_REPORT_TOKEN'
{token}
CARBONSHIFT_REPORT_TOKEN
  set -- --report-url {url} --report-token-file "$REPORT_TOKEN_FILE"
else
  echo "carbonshift: no private file for the report token in ${{TMPDIR:-/tmp}}; the report is not sent" >&2
fi
"""


# ---- helpers ----------------------------------------------------------------------------------------
def slurm_duration(value: timedelta) -> str:
    """A Slurm time limit, D-HH:MM:SS, rounded up to whole minutes (Slurm's own unit), at least 1 min."""
    minutes = max(1, math.ceil(value.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00"


def tool_path(cluster: SlurmCluster, tool: str) -> str:
    """sbatch as configured; squeue, scontrol, scancel and sacct from its directory when it is a path."""
    if tool == "sbatch":
        return cluster.sbatch
    if "/" in cluster.sbatch:
        return str(Path(cluster.sbatch).with_name(tool))
    return tool


def _in_partition(cluster: SlurmCluster, partition: str) -> bool:
    if not cluster.partition:
        return True
    return partition in cluster.partition.split(",")


def _errors(done: subprocess.CompletedProcess[str]) -> str:
    """A command's error text on one line (sbatch's 'sbatch: error: ' prefixes dropped), bounded."""
    lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
    text = " / ".join(re.sub(r"^\w+: (error: )?", "", ln) for ln in lines)
    return text[:1000]


_FIELD = re.compile(
    r"(?:^|\s)(JobId|JobName|JobState|Reason|ExitCode|StartTime|EndTime|Comment|Partition)=(\S*)"
)


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _FIELD.findall(text):
        out.setdefault(key, value)
    return out


def _exit_code(text: str) -> tuple[int | None, int]:
    """Slurm's ExitCode 'N:S' as (exit code, signal)."""
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, 0


def _status_from(info: Mapping[str, str], report: dict[str, Any] | None) -> InstanceStatus:
    state = info.get("JobState", "").upper().rstrip("+")
    reason = info.get("Reason", "")
    job = f"job {info.get('JobId', '?')}"
    if state in _PENDING_STATES:
        when = info.get("StartTime", "")
        at = f"; expected start {when}" if when and when not in ("Unknown", "None") else ""
        return InstanceStatus(
            InstanceState.PENDING, detail=f"{job} {state.lower()} ({reason}){at}", report=report
        )
    if state in _RUNNING_STATES:
        return InstanceStatus(InstanceState.RUNNING, detail=f"{job} {state.lower()}", report=report)
    code, sig = _exit_code(info.get("ExitCode", ""))
    how = f"killed by signal {sig}" if sig else f"exit code {code}"
    if state == "COMPLETED":
        return InstanceStatus(
            InstanceState.SUCCEEDED, code if code is not None else 0, f"{job} completed", report
        )
    if state == "CANCELLED":
        return InstanceStatus(InstanceState.TERMINATED, code, f"{job} cancelled", report)
    if state in _FAILED_WHY:
        why = f" ({reason})" if reason and reason != "None" else ""
        return InstanceStatus(InstanceState.FAILED, code, f"{job}: {_FAILED_WHY[state]}{why}, {how}", report)
    return InstanceStatus(InstanceState.UNKNOWN, code, f"{job} in Slurm state {state or '?'}", report)


def _from_settings(settings: Settings, **kwargs: Any) -> SlurmProvider:
    """The registry's factory (`get_provider("slurm", settings)`)."""
    return SlurmProvider(settings, **kwargs)


def _register() -> None:
    from carbonshift.providers.registry import register_provider

    register_provider(NAME, _from_settings)


_register()
