"""Kubernetes clusters through the official `kubernetes` client (the `kubernetes` extra), imported only
when an adapter makes its first call.

A cluster configured under `kubernetes.clusters.NAME` (config/kubernetes.py) is the region `NAME` of
this provider: the catalog holds it as `kubernetes:NAME`, with the grid of the cloud region or zone it
sits in (`cluster_locations`), so the planner places specs on it like on any region. A run becomes one
`batch/v1` Job in the cluster's namespace:

- named from the run id (`cs-<slug>-<hash>`, a DNS-1123 label of at most 63 characters), so every retry
  of a launch addresses the same Job; labelled `carbonshift.io/run-id` (found by it) and annotated with
  the exact run id, the planned start and the deadline, so `kubectl get jobs` shows what waits and why;
- one container: the spec's image (or the cluster's `image`), the command under `carbonshift track
  --region <the cluster's grid region> --report /tmp/report.json --`, the spec's `env` plus
  CARBONSHIFT_RUN_ID, requests for the spec's vCPUs, memory and `nvidia.com/gpu`; no service account
  token mounted; `restartPolicy: Never`, `backoffLimit: 0`, `activeDeadlineSeconds` up to the deadline,
  `ttlSecondsAfterFinished` as a backstop to the scheduler's own release.

The report comes back over HTTP, as from a cloud VM: a pod shares no filesystem with the scheduler.
When the request carries the run's report URL and token, the tracker gets `--report-url URL` and the
token from CARBONSHIFT_REPORT_TOKEN, which the container takes from a per-run core/v1 Secret
(`secretKeyRef`; the Secret is named after the Job, labelled with the run id, and owned by the Job, so
the garbage collector removes it with the Job, and `terminate` deletes it at once). The token is thus
never in the Job, its pods' specs, labels, annotations, logs or errors; whoever may read Secrets in the
namespace can read it, and it allows nothing but posting this run's report. The Secret is made before
the Job (a pod never waits for it), then given the Job as its owner; a Job that cannot be created takes
its Secret with it.

`launch` runs the Job now: it creates it unsuspended, or resumes (`spec.suspend: false`) the Job that
`prepare` created suspended ahead of its planned start; both are idempotent (a Job that exists, or a
409 on create, is read and returned). Kubernetes has no "start at" for a Job, so a suspended Job waits
until the daemon resumes it at the planned start.

Errors: ResourceQuota refusals (403 "exceeded quota") are CapacityError, so the scheduler tries the
plan's next option; other 403s name the RBAC verb and resource that are missing; a missing namespace,
422 (the API's own message) and unreachable servers are ProviderErrors with the cluster's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from carbonshift.config import LocationSetting, Settings
from carbonshift.config.kubernetes import KubernetesCluster
from carbonshift.errors import ConfigError, UnknownLocationError
from carbonshift.providers.base import (
    HELD,
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)
from carbonshift.providers.common import import_sdk, resource_name, scrub
from carbonshift.timeutil import isoformat_z
from carbonshift.tracker.sendback import REPORT_TOKEN_ENV

log = logging.getLogger("carbonshift.providers")

PROVIDER = "kubernetes"
LABEL_RUN = "carbonshift.io/run-id"  # label (folded to a label value) and annotation (exact)
LABEL_JOB = "carbonshift.io/job"
LABEL_TEAM = "carbonshift.io/team"
LABEL_PROJECT = "carbonshift.io/project"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANN_PLANNED_START = "carbonshift.io/planned-start"
ANN_DEADLINE = "carbonshift.io/deadline"
ANN_REGION = "carbonshift.io/region"
ANN_RESUMED = "carbonshift.io/resumed-at"
CONTAINER = "job"
SECRET_KEY = "token"  # the report token's key in the run's Secret
_SECRET_METHODS = {"get": "read", "patch": "patch", "delete": "delete"}  # verb -> CoreV1Api method
REPORT_PATH = "/tmp/report.json"
GPU_RESOURCE = "nvidia.com/gpu"
REQUEST_TIMEOUT_S = 30.0
_LABEL_OK = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


# ---- names, labels and the Job body: pure functions of the request -------------------------------------


def job_name(run_id: str) -> str:
    """The Job's name for a run: the same on every retry, a DNS-1123 label (a-z, 0-9, '-', at most 63,
    starting with a letter), unique per run id (a hash of the exact id ends it)."""
    return resource_name(run_id)


def label_value(text: str) -> str:
    """A Kubernetes label value for `text`: at most 63 of A-Z, a-z, 0-9, '-', '_', '.', starting and ending
    with a letter or digit. Valid text is kept as is; anything else is folded the same way every time
    (the exact run id is in the annotation, which `find` checks)."""
    if _LABEL_OK.match(text) and text:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    folded = re.sub(r"[^A-Za-z0-9._-]", "-", text)
    folded = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", folded[:52])
    return f"{folded}-{digest}" if folded else digest


def secret_name(run_id: str) -> str:
    """The run's report-token Secret: the Job's name plus `-report` (a valid Secret name)."""
    return f"{job_name(run_id)}-report"


def sends_report(request: LaunchRequest, cluster: KubernetesCluster) -> bool:
    """Whether the run's tracker POSTs its report: it runs, and the request has a URL and a token."""
    return bool(cluster.track and request.report_url and request.report_token)


def _spec_labels(spec: Any) -> dict[str, str]:
    """team and project from the spec's `labels`, when the spec has them (a mapping or a model)."""
    labels = getattr(spec, "labels", None)
    out: dict[str, str] = {}
    for key, label in (("team", LABEL_TEAM), ("project", LABEL_PROJECT)):
        value = labels.get(key) if isinstance(labels, Mapping) else getattr(labels, key, None)
        if isinstance(value, str) and value:
            out[label] = label_value(value)
    return out


def _seconds_until(deadline: datetime, start: datetime) -> int:
    return max(1, math.ceil((deadline - start).total_seconds()))


def job_command(request: LaunchRequest, cluster: KubernetesCluster) -> list[str]:
    """The container's command: the job's argv (a string command through /bin/sh -c) under the tracker,
    which measures it against the grid of the cluster's region (or zone) and exits with its exit code."""
    spec_cmd = request.spec.command
    job = ["/bin/sh", "-c", spec_cmd] if isinstance(spec_cmd, str) else list(spec_cmd)
    if not cluster.track:
        return job
    where = ["--region", cluster.region] if cluster.region else ["--zone", str(cluster.zone)]
    back = ["--report-url", str(request.report_url)] if sends_report(request, cluster) else []
    return ["carbonshift", "track", *where, "--report", REPORT_PATH, *back, "--", *job]


def job_resources(request: LaunchRequest) -> dict[str, Any]:
    hw = request.spec.hardware
    requests: dict[str, str] = {"cpu": str(hw.vcpus)}
    if hw.memory_gb > 0:
        requests["memory"] = f"{math.ceil(hw.memory_gb * 1024)}Mi"
    resources: dict[str, Any] = {"requests": requests}
    if hw.gpus:
        # an extended resource: requested in limits (and requests, which must then be equal)
        requests[GPU_RESOURCE] = str(hw.gpus)
        resources["limits"] = {GPU_RESOURCE: str(hw.gpus)}
    return resources


def job_body(
    request: LaunchRequest,
    cluster_name: str,
    cluster: KubernetesCluster,
    *,
    suspend: bool,
    start: datetime,
) -> dict[str, Any]:
    """The batch/v1 Job for a run that starts at `start` (suspended until then when `suspend`)."""
    spec = request.spec
    image = getattr(spec, "image", None) or cluster.image
    if not image:
        raise ProviderError(
            PROVIDER,
            f"cluster {cluster_name}: no container image: give the job spec an image, or set "
            f"kubernetes.clusters.{cluster_name}.image",
        )
    labels = {
        LABEL_RUN: label_value(request.run_id),
        LABEL_JOB: label_value(spec.name),
        LABEL_MANAGED_BY: "carbonshift",
        **_spec_labels(spec),
    }
    annotations = {
        LABEL_RUN: request.run_id,
        ANN_PLANNED_START: isoformat_z(start),
        ANN_DEADLINE: isoformat_z(request.deadline),
        ANN_REGION: cluster.region or str(cluster.zone),
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in spec.env.items()]
    env.append({"name": "CARBONSHIFT_RUN_ID", "value": request.run_id})
    if sends_report(request, cluster):
        ref = {"name": secret_name(request.run_id), "key": SECRET_KEY}
        env.append({"name": REPORT_TOKEN_ENV, "valueFrom": {"secretKeyRef": ref}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(request.run_id),
            "namespace": cluster.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            # counted from when the Job (re)starts: a resume sets it again from the time left
            "activeDeadlineSeconds": _seconds_until(request.deadline, start),
            "ttlSecondsAfterFinished": cluster.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {LABEL_RUN: request.run_id}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image,
                            "command": job_command(request, cluster),
                            "env": env,
                            "resources": job_resources(request),
                        }
                    ],
                },
            },
        },
    }


def secret_body(request: LaunchRequest, cluster: KubernetesCluster) -> dict[str, Any]:
    """The run's core/v1 Secret holding its report token (the only place the token goes)."""
    token = str(request.report_token or "")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(request.run_id),
            "namespace": cluster.namespace,
            "labels": {LABEL_RUN: label_value(request.run_id), LABEL_MANAGED_BY: "carbonshift"},
            "annotations": {LABEL_RUN: request.run_id},
        },
        "data": {SECRET_KEY: base64.b64encode(token.encode("utf-8")).decode("ascii")},
    }


def _owner_reference(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Job as the owner of its Secret (None without a uid, as from a fake or a stale read)."""
    meta = job.get("metadata") or {}
    if not meta.get("uid"):
        return None
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta.get("name"), "uid": meta["uid"]}


# ---- the catalog: a location per cluster ---------------------------------------------------------------------


def cluster_locations(settings: Settings) -> list[LocationSetting]:
    """One `kubernetes:NAME` location per configured cluster, with the grid zone, country, coordinates
    and PUE of the catalog region it sits in (or its own zone), for the catalog to place specs on. A
    `locations:` entry with provider kubernetes and the same region replaces it (it comes later)."""
    clusters = settings.kubernetes.clusters
    if not clusters:
        return []
    from carbonshift.catalog import load_catalog

    catalog = load_catalog(settings.locations)
    out: list[LocationSetting] = []
    for name, cluster in clusters.items():
        if cluster.region is None:
            out.append(
                LocationSetting(
                    provider=PROVIDER,
                    region=name,
                    zone=str(cluster.zone),
                    country=cluster.country,
                    location=f"Kubernetes cluster {name}",
                    pue=cluster.pue or 1.0,
                )
            )
            continue
        provider, _, region_id = cluster.region.partition(":")
        try:
            region = catalog.region(provider, region_id)
        except UnknownLocationError as exc:
            raise ConfigError(f"kubernetes.clusters.{name}.region", exc.problem) from None
        out.append(
            LocationSetting(
                provider=PROVIDER,
                region=name,
                zone=region.zone,
                country=cluster.country or region.country,
                location=f"Kubernetes cluster {name} in {region.key}",
                lat=region.lat,
                lon=region.lon,
                pue=cluster.pue or min(3.0, max(1.0, region.pue)),
                watttime_region=region.watttime_region,
            )
        )
    return out


# ---- the adapter ------------------------------------------------------------------------------------------


class _HttpError(Exception):
    """An answer of the API server other than 2xx: its status and the message of its Status object."""

    def __init__(self, status: int, reason: str, message: str, details: dict[str, Any]) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details
        super().__init__(f"HTTP {status} {reason}: {message}")


def _suspended(job: dict[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def _annotations(job: dict[str, Any]) -> dict[str, str]:
    return dict((job.get("metadata") or {}).get("annotations") or {})


def _check_run(cluster_name: str, kind: str, obj: dict[str, Any], run_id: str) -> None:
    """An object of the run's name that is not the run's (its run-id annotation) is not taken over."""
    owner = _annotations(obj).get(LABEL_RUN)
    if owner != run_id:
        meta = obj.get("metadata") or {}
        raise ProviderError(
            PROVIDER,
            f"launch on cluster {cluster_name}: {kind} {meta.get('namespace')}/{meta.get('name')} exists "
            f"but is not this run's (its {LABEL_RUN} annotation is {owner!r}); delete it or use another "
            "namespace",
        )


class KubernetesProvider:
    """Runs each run as a batch/v1 Job on one of `kubernetes.clusters` (the region is the cluster name)."""

    name = PROVIDER
    starts_queued = False  # Queueing: a prepared Job is suspended until `launch` resumes it

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self.request_timeout_s = request_timeout_s
        self._lock = threading.Lock()
        self._apis: dict[str, tuple[Any, Any]] = {}  # cluster -> (BatchV1Api, CoreV1Api)

    # ---- the Provider protocol ------------------------------------------------------------------
    def regions(self) -> list[str]:
        return sorted(self.settings.kubernetes.clusters)

    def launch(self, request: LaunchRequest) -> Handle:
        """Run the Job now: create it unsuspended, or resume the one `prepare` made (idempotent)."""
        return self._ensure(request, suspend=False, start=self._clock())

    def prepare(self, request: LaunchRequest) -> Handle:
        """Create the run's Job ahead of its planned start (`request.not_before`), suspended, so the
        cluster shows the waiting job; `launch` at the planned start resumes it. At or after the planned
        start this is `launch`. Idempotent: a suspended Job of the run gets the new planned start and
        deadline (a re-plan), one already running is left alone."""
        start = request.not_before
        if start is None or start <= self._clock():
            return self.launch(request)
        return self._ensure(request, suspend=True, start=start)

    def find(self, run_id: str, region: str) -> Handle | None:
        """The run's Job by its label, checked against the exact run id in its annotation."""
        cluster = self._cluster(region)
        for job in self._list_jobs(region, cluster, f"{LABEL_RUN}={label_value(run_id)}", "find the run"):
            if _annotations(job).get(LABEL_RUN) == run_id:
                return self._handle(region, cluster, job)
        return None

    def status(self, handle: Handle) -> InstanceStatus:
        _, namespace, name = self._where(handle)
        job = self._read(handle.region, namespace, name, "read the Job's status")
        if job is None:
            return InstanceStatus(
                InstanceState.UNKNOWN,
                None,
                f"Job {namespace}/{name} is gone (released, deleted after ttlSecondsAfterFinished, or by hand)",
            )
        if (job.get("metadata") or {}).get("deletionTimestamp"):
            return InstanceStatus(InstanceState.TERMINATED, None, f"Job {namespace}/{name} is being deleted")
        status = job.get("status") or {}
        conditions = {
            str(c.get("type")): c for c in status.get("conditions") or () if str(c.get("status")) == "True"
        }
        for kind in ("Complete", "SuccessCriteriaMet"):
            if kind in conditions:
                return InstanceStatus(InstanceState.SUCCEEDED, 0, f"Job {kind}")
        for kind in ("Failed", "FailureTarget"):
            if kind in conditions:
                cond = conditions[kind]
                reason = str(cond.get("reason") or kind)
                message = scrub(str(cond.get("message") or ""))
                code = self._exit_code(handle.region, namespace, handle.run_id)
                detail = f"{reason}: {message}" if message else reason
                if code is not None:
                    detail += f" (exit code {code})"
                return InstanceStatus(InstanceState.FAILED, code, detail)
        if _suspended(job):
            start = _annotations(job).get(ANN_PLANNED_START, "its planned start")
            return InstanceStatus(InstanceState.PENDING, None, f"suspended until {start}")
        active, ready = int(status.get("active") or 0), status.get("ready")
        if active and ready is not None and int(ready) == 0:
            return InstanceStatus(
                InstanceState.PENDING, None, "pod not running yet (waiting for a node, or pulling the image)"
            )
        if active:
            return InstanceStatus(InstanceState.RUNNING, None, f"{active} pod(s) active")
        return InstanceStatus(InstanceState.PENDING, None, "no pod yet")

    def terminate(self, handle: Handle) -> None:
        """Delete the Job with foreground propagation: the Job stays visible (being deleted) until its
        pods are gone, so `gone` (404) means nothing of the run is left. No error if it is gone. The
        run's report-token Secret goes too (the garbage collector would remove it with the Job)."""
        cluster, namespace, name = self._where(handle)
        batch, _ = self._client(handle.region, cluster)
        try:
            self._request(
                handle.region,
                cluster,
                batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Foreground",
            )
        except _HttpError as exc:
            if exc.status != 404:
                raise self._mapped(exc, handle.region, namespace, "terminate", "delete", "jobs") from None
        else:
            log.info(
                "kubernetes: deleting Job %s/%s on %s (run %s)", namespace, name, handle.region, handle.run_id
            )
        self._drop_secret(handle.region, cluster, namespace, handle.run_id)

    def gone(self, handle: Handle) -> bool:
        _, namespace, name = self._where(handle)
        return self._read(handle.region, namespace, name, "check the Job is gone") is None

    def managed(self) -> list[Handle]:
        """Every Job labelled `carbonshift.io/run-id` in the clusters' namespaces."""
        out: list[Handle] = []
        for name, cluster in sorted(self.settings.kubernetes.clusters.items()):
            for job in self._list_jobs(name, cluster, LABEL_RUN, "list the Jobs"):
                if _annotations(job).get(LABEL_RUN):
                    out.append(self._handle(name, cluster, job))
        return out

    # ---- launching ---------------------------------------------------------------------------------
    def _ensure(self, request: LaunchRequest, *, suspend: bool, start: datetime) -> Handle:
        cluster_name = request.region
        cluster = self._cluster(cluster_name)
        namespace, name = cluster.namespace, job_name(request.run_id)
        job = self._read(cluster_name, namespace, name, "look the run up")
        if job is not None:
            _check_run(cluster_name, "Job", job, request.run_id)
        # the token's Secret first: the Job's pod must find it when it starts
        secret = self._put_secret(cluster_name, cluster, request) if sends_report(request, cluster) else None
        if job is None:
            body = job_body(request, cluster_name, cluster, suspend=suspend, start=start)
            batch, _ = self._client(cluster_name, cluster)
            try:
                job = self._request(
                    cluster_name,
                    cluster,
                    batch.create_namespaced_job,
                    namespace,
                    body,
                )
                log.info(
                    "kubernetes: created Job %s/%s on %s for run %s%s",
                    namespace,
                    name,
                    cluster_name,
                    request.run_id,
                    f", suspended until {isoformat_z(start)}" if suspend else "",
                )
            except _HttpError as exc:
                if exc.status != 409:
                    if secret is not None:  # no Job to own it: it would stay behind
                        self._drop_secret(cluster_name, cluster, namespace, request.run_id)
                    raise self._mapped(exc, cluster_name, namespace, "launch", "create", "jobs") from None
                # a retry that raced the first create (another daemon, an earlier call that timed out)
                job = self._read(cluster_name, namespace, name, "read the existing Job")
                if job is None:
                    raise ProviderError(
                        PROVIDER,
                        f"launch on cluster {cluster_name}: Job {namespace}/{name} already exists, "
                        "yet cannot be read",
                    ) from None
        _check_run(cluster_name, "Job", job, request.run_id)
        if secret is not None:
            self._adopt_secret(cluster_name, cluster, secret, job)
        if _suspended(job):
            if not suspend:
                job = self._resume(cluster_name, cluster, namespace, name, request)
            else:
                job = self._replan(cluster_name, cluster, namespace, name, job, request, start)
        return self._handle(cluster_name, cluster, job)

    def _resume(
        self, cluster_name: str, cluster: KubernetesCluster, namespace: str, name: str, request: LaunchRequest
    ) -> dict[str, Any]:
        now = self._clock()
        patch = {
            "metadata": {"annotations": {ANN_RESUMED: isoformat_z(now)}},
            "spec": {"suspend": False, "activeDeadlineSeconds": _seconds_until(request.deadline, now)},
        }
        job = self._patch(cluster_name, cluster, namespace, name, patch, "resume")
        log.info(
            "kubernetes: resumed Job %s/%s on %s (run %s)", namespace, name, cluster_name, request.run_id
        )
        return job

    def _replan(
        self,
        cluster_name: str,
        cluster: KubernetesCluster,
        namespace: str,
        name: str,
        job: dict[str, Any],
        request: LaunchRequest,
        start: datetime,
    ) -> dict[str, Any]:
        """A suspended Job prepared again: carry the new planned start and deadline, if they moved."""
        want = {ANN_PLANNED_START: isoformat_z(start), ANN_DEADLINE: isoformat_z(request.deadline)}
        have = _annotations(job)
        if all(have.get(k) == v for k, v in want.items()):
            return job
        patch = {
            "metadata": {"annotations": want},
            "spec": {"activeDeadlineSeconds": _seconds_until(request.deadline, start)},
        }
        return self._patch(cluster_name, cluster, namespace, name, patch, "re-plan")

    def _patch(
        self,
        cluster_name: str,
        cluster: KubernetesCluster,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        action: str,
    ) -> dict[str, Any]:
        batch, _ = self._client(cluster_name, cluster)
        try:
            return self._request(
                cluster_name,
                cluster,
                batch.patch_namespaced_job,
                name,
                namespace,
                patch,
            )
        except _HttpError as exc:
            raise self._mapped(exc, cluster_name, namespace, action, "patch", "jobs") from None

    # ---- the report token's Secret ------------------------------------------------------------------------
    def _put_secret(
        self, cluster_name: str, cluster: KubernetesCluster, request: LaunchRequest
    ) -> dict[str, Any]:
        """The run's Secret with its current token: created, or the existing one (a relaunch) reused,
        its token replaced only if it changed. Someone else's Secret of that name is not taken over."""
        namespace, name = cluster.namespace, secret_name(request.run_id)
        body = secret_body(request, cluster)
        secret = self._secret_call(cluster_name, cluster, namespace, "get", name)
        if secret is None:
            _, core = self._client(cluster_name, cluster)
            try:
                created = self._request(cluster_name, cluster, core.create_namespaced_secret, namespace, body)
            except _HttpError as exc:
                if exc.status != 409:
                    raise self._mapped(exc, cluster_name, namespace, "launch", "create", "secrets") from None
            else:
                log.info("kubernetes: created Secret %s/%s for run %s", namespace, name, request.run_id)
                return created
            # a create that raced another: use that one
            secret = self._secret_call(cluster_name, cluster, namespace, "get", name)
            if secret is None:
                raise ProviderError(
                    PROVIDER,
                    f"launch on cluster {cluster_name}: Secret {namespace}/{name} exists, yet cannot be read",
                )
        _check_run(cluster_name, "Secret", secret, request.run_id)
        have = str((secret.get("data") or {}).get(SECRET_KEY) or "")
        if hmac.compare_digest(have, body["data"][SECRET_KEY]):
            return secret
        patched = self._secret_call(cluster_name, cluster, namespace, "patch", name, {"data": body["data"]})
        return patched if patched is not None else secret

    def _adopt_secret(
        self, cluster_name: str, cluster: KubernetesCluster, secret: dict[str, Any], job: dict[str, Any]
    ) -> None:
        """Make the Job the Secret's owner (once), so the garbage collector deletes the Secret with the
        Job, whoever deletes it (the scheduler, ttlSecondsAfterFinished, a person)."""
        owner = _owner_reference(job)
        meta = secret.get("metadata") or {}
        if owner is None or any(ref.get("uid") == owner["uid"] for ref in meta.get("ownerReferences") or ()):
            return
        patch = {"metadata": {"ownerReferences": [owner]}}
        self._secret_call(cluster_name, cluster, cluster.namespace, "patch", str(meta.get("name")), patch)

    def _drop_secret(
        self, cluster_name: str, cluster: KubernetesCluster, namespace: str, run_id: str
    ) -> None:
        """Delete the run's Secret, if any. Best effort: its owner reference has the garbage collector
        remove it with the Job anyway, so a refusal here is logged, not raised."""
        try:
            self._secret_call(cluster_name, cluster, namespace, "delete", secret_name(run_id))
        except ProviderError as exc:
            log.warning("kubernetes: the report Secret of run %s was not deleted: %s", run_id, exc)

    def _secret_call(
        self, cluster_name: str, cluster: KubernetesCluster, namespace: str, verb: str, name: str, *body: Any
    ) -> dict[str, Any] | None:
        """get, patch or delete the Secret `name`; None when there is no such Secret."""
        _, core = self._client(cluster_name, cluster)
        method = getattr(core, f"{_SECRET_METHODS[verb]}_namespaced_secret")
        try:
            return self._request(cluster_name, cluster, method, name, namespace, *body)
        except _HttpError as exc:
            if exc.status == 404 and exc.details.get("kind") != "namespaces":
                return None
            action = f"{verb} the report Secret {name}"
            raise self._mapped(exc, cluster_name, namespace, action, verb, "secrets") from None

    # ---- lookups ----------------------------------------------------------------------------------------
    def _read(self, cluster_name: str, namespace: str, name: str, action: str) -> dict[str, Any] | None:
        cluster = self._cluster(cluster_name)
        batch, _ = self._client(cluster_name, cluster)
        try:
            return self._request(cluster_name, cluster, batch.read_namespaced_job, name, namespace)
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise self._mapped(exc, cluster_name, namespace, action, "get", "jobs") from None

    def _list_jobs(
        self, cluster_name: str, cluster: KubernetesCluster, selector: str, action: str
    ) -> list[dict[str, Any]]:
        batch, _ = self._client(cluster_name, cluster)
        try:
            answer = self._request(
                cluster_name, cluster, batch.list_namespaced_job, cluster.namespace, label_selector=selector
            )
        except _HttpError as exc:
            raise self._mapped(exc, cluster_name, cluster.namespace, action, "list", "jobs") from None
        return [item for item in answer.get("items") or () if isinstance(item, dict)]

    def _exit_code(self, cluster_name: str, namespace: str, run_id: str) -> int | None:
        """The job container's exit code from the run's newest pod, when the pods can be read (best
        effort: RBAC may not grant pods, or the pod was already removed)."""
        cluster = self._cluster(cluster_name)
        _, core = self._client(cluster_name, cluster)
        try:
            answer = self._request(
                cluster_name,
                cluster,
                core.list_namespaced_pod,
                namespace,
                label_selector=f"{LABEL_RUN}={label_value(run_id)}",
            )
        except (_HttpError, ProviderError) as exc:
            log.debug("kubernetes: no exit code for run %s: %s", run_id, exc)
            return None
        pods = [p for p in answer.get("items") or () if isinstance(p, dict)]
        pods.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
        for pod in pods:
            if (pod.get("metadata") or {}).get("annotations", {}).get(LABEL_RUN, run_id) != run_id:
                continue
            for container in (pod.get("status") or {}).get("containerStatuses") or ():
                if container.get("name") != CONTAINER:
                    continue
                for key in ("state", "lastState"):
                    ended = (container.get(key) or {}).get("terminated")
                    if ended and ended.get("exitCode") is not None:
                        return int(ended["exitCode"])
        return None

    # ---- clients and errors -----------------------------------------------------------------------------
    def _cluster(self, name: str) -> KubernetesCluster:
        cluster = self.settings.kubernetes.clusters.get(name)
        if cluster is None:
            known = ", ".join(sorted(self.settings.kubernetes.clusters)) or "none"
            raise ProviderError(
                PROVIDER, f"no cluster {name!r} under kubernetes.clusters in the config (configured: {known})"
            )
        return cluster

    def _where(self, handle: Handle) -> tuple[KubernetesCluster, str, str]:
        cluster = self._cluster(handle.region)
        namespace, _, name = handle.instance_id.rpartition("/")
        return (
            cluster,
            str(handle.details.get("namespace") or namespace or cluster.namespace),
            str(handle.details.get("job") or name),
        )

    def _how(self, name: str, cluster: KubernetesCluster) -> str:
        if cluster.server:
            return f"server {cluster.server}"
        if cluster.in_cluster:
            return "the pod's service account"
        where = f"context {cluster.context}" if cluster.context else "the current context"
        return where + (f" of {cluster.kubeconfig}" if cluster.kubeconfig else "")

    def _client(self, name: str, cluster: KubernetesCluster) -> tuple[Any, Any]:
        """BatchV1Api and CoreV1Api on one ApiClient per cluster, built once. Each cluster gets its own
        Configuration: the SDK's global default is never touched, so clusters do not mix credentials."""
        with self._lock:
            if name not in self._apis:
                client = import_sdk(PROVIDER, "kubernetes.client")
                cfg = client.Configuration()
                try:
                    if cluster.server:
                        cfg.host = cluster.server
                    elif cluster.in_cluster:
                        import_sdk(PROVIDER, "kubernetes.config").load_incluster_config(
                            client_configuration=cfg
                        )
                    else:
                        import_sdk(PROVIDER, "kubernetes.config").load_kube_config(
                            config_file=str(cluster.kubeconfig) if cluster.kubeconfig else None,
                            context=cluster.context,
                            client_configuration=cfg,
                            persist_config=False,
                        )
                except Exception as exc:
                    raise ProviderError(
                        PROVIDER,
                        f"cluster {name}: cannot load the credentials of {self._how(name, cluster)}: "
                        f"{scrub(str(exc))}",
                    ) from None
                api = client.ApiClient(configuration=cfg)
                self._apis[name] = (client.BatchV1Api(api), client.CoreV1Api(api))
            return self._apis[name]

    def _request(
        self, cluster_name: str, cluster: KubernetesCluster, method: Any, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """One API call, its answer as the JSON the server sent (no SDK models: the same on every client
        version). Non-2xx answers raise _HttpError; a server that cannot be reached, ProviderError."""
        client = import_sdk(PROVIDER, "kubernetes.client")
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self.request_timeout_s, **kwargs
            )
        except client.ApiException as exc:
            raise _http_error(exc) from None
        except Exception as exc:
            raise ProviderError(
                PROVIDER,
                f"cannot reach the API server of cluster {cluster_name} ({self._how(cluster_name, cluster)}): "
                f"{scrub(str(exc))}",
            ) from None
        raw = response.data
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise ProviderError(
                PROVIDER, f"cluster {cluster_name}: the API server answered something that is not JSON"
            ) from None
        return data if isinstance(data, dict) else {}

    def _mapped(
        self, exc: _HttpError, cluster_name: str, namespace: str, action: str, verb: str, resource: str
    ) -> ProviderError:
        """An API refusal as CapacityError (a ResourceQuota is used up) or a ProviderError that says
        what to fix."""
        message = scrub(exc.message or exc.reason)
        group = "batch" if resource == "jobs" else "core"
        kind = {"jobs": "Job", "secrets": "Secret"}.get(resource, resource)
        where = f"namespace {namespace} of cluster {cluster_name}"
        if exc.status == 403 and "exceeded quota" in message.lower():
            return CapacityError(PROVIDER, cluster_name, message, "ExceededQuota")
        if exc.status == 403:
            return ProviderError(
                PROVIDER,
                f"{action}: RBAC forbids {verb} on {resource} (API group {group}) in {where}; grant the "
                f"daemon's identity ({self._how(cluster_name, self._cluster(cluster_name))}) a Role with "
                f"verbs create, get, list, patch, delete on jobs, get, list on pods and create, get, patch, "
                f"delete on secrets (the runs' report tokens): {message}",
            )
        if exc.status == 401:
            return ProviderError(
                PROVIDER,
                f"{action}: cluster {cluster_name} refused the credentials of "
                f"{self._how(cluster_name, self._cluster(cluster_name))} (expired token?): {message}",
            )
        if exc.status == 404 and (exc.details.get("kind") == "namespaces" or verb in ("create", "list")):
            return ProviderError(
                PROVIDER,
                f"{action}: namespace {namespace} does not exist on cluster {cluster_name}: create it, or "
                f"set kubernetes.clusters.{cluster_name}.namespace ({message})",
            )
        if exc.status == 422:
            return ProviderError(
                PROVIDER, f"{action} in {where}: the API server refused the {kind} as invalid: {message}"
            )
        return ProviderError(
            PROVIDER, f"{action} in {where} failed: HTTP {exc.status} {exc.reason}: {message}"
        )

    def _handle(self, cluster_name: str, cluster: KubernetesCluster, job: dict[str, Any]) -> Handle:
        meta = job.get("metadata") or {}
        annotations = _annotations(job)
        namespace = str(meta.get("namespace") or cluster.namespace)
        name = str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        return Handle(
            provider=PROVIDER,
            region=cluster_name,
            run_id=str(annotations.get(LABEL_RUN) or labels.get(LABEL_RUN) or ""),
            instance_id=f"{namespace}/{name}",
            console_url=None,
            details={
                "cluster": cluster_name,
                "namespace": namespace,
                "job": name,
                "uid": meta.get("uid"),
                "suspended": _suspended(job),
                HELD: _suspended(job),
                "planned_start": annotations.get(ANN_PLANNED_START),
                "deadline": annotations.get(ANN_DEADLINE),
                "context": cluster.context,
            },
        )


def _http_error(exc: Any) -> _HttpError:
    """The SDK's ApiException as status, reason and the message of the API's Status object."""
    status = int(getattr(exc, "status", 0) or 0)
    reason = str(getattr(exc, "reason", "") or "")
    body = getattr(exc, "body", None)
    message = reason
    details: dict[str, Any] = {}
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or reason)
            found = parsed.get("details")
            details = found if isinstance(found, dict) else {}
            reason = str(parsed.get("reason") or reason)
        else:
            message = body
    return _HttpError(status, reason, message, details)


def _from_settings(settings: Settings, **kwargs: Any) -> KubernetesProvider:
    """The registry's factory (`get_provider("kubernetes", settings)`)."""
    return KubernetesProvider(settings, **kwargs)


def _register() -> None:
    from carbonshift.providers.registry import register_provider

    register_provider(PROVIDER, _from_settings)


_register()

__all__ = [
    "KubernetesProvider",
    "cluster_locations",
    "job_body",
    "job_name",
    "label_value",
    "secret_body",
    "secret_name",
]
