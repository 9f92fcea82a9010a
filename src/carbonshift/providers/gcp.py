"""Google Compute Engine through google-cloud-compute (the `gcp` extra), imported only when used: the
library alone costs over a second to import.

Credentials: Application Default Credentials (`gcloud auth application-default login`,
GOOGLE_APPLICATION_CREDENTIALS, the metadata server); project from CARBONSHIFT_GCP_PROJECT or ADC. With
CARBONSHIFT_GCP_ENDPOINT set (tests, emulators) the clients talk to that endpoint with anonymous
credentials. Operations are polled with our own ZoneOperationsClient, because the SDK's
`operation.result()` polls the default endpoint whatever the client was given.

Instances are zonal: a launch tries the region's zones in order, moving on when a zone has no capacity
for the type, and is a CapacityError only when every zone refused. The requestId is a UUID derived
from the run id (and the zone), and the instance name is derived from the run id, so a retried insert
is answered with the first one's operation or an "already exists". Scheduling: SPOT when
interruptible; `terminationTime` = deadline + margin with `instanceTerminationAction: DELETE` in both
cases, so Compute Engine itself deletes a VM that outlives its deadline; no service account, so the
job gets no Google credentials.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from carbonshift.catalog.instances import InstanceType
from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)
from carbonshift.providers.bootstrap import DEFAULT_MARGIN
from carbonshift.providers.cloud import CloudProvider, LaunchPlan, ended_status, log
from carbonshift.providers.common import (
    TAG_JOB,
    TAG_RUN,
    import_sdk,
    label_value,
    request_uuid,
    resource_name,
    scrub,
)
from carbonshift.providers.errors_map import classify, is_capacity
from carbonshift.timeutil import isoformat_z

ZONE_PLACEHOLDER = "{zone}"
OPERATION_TIMEOUT_S = 600.0
PREEMPTED_OP = "compute.instances.preempted"  # the system operation on a Spot VM Compute Engine reclaims
_PENDING = {"PROVISIONING", "STAGING", "PENDING"}
_ENDED = {"STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED"}


def console_url(project: str, zone: str, name: str) -> str:
    return f"https://console.cloud.google.com/compute/instancesDetail/zones/{zone}/instances/{name}?project={project}"


def _basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _with_zone(value: Any, zone: str) -> Any:
    if isinstance(value, str):
        return value.replace(ZONE_PLACEHOLDER, zone)
    if isinstance(value, dict):
        return {k: _with_zone(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_zone(v, zone) for v in value]
    return value


class GcpProvider(CloudProvider):
    name = "gcp"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._project: str | None = self.settings.gcp_project
        self.poll_interval_s = 0.05 if self.settings.gcp_endpoint else 2.0
        self.operation_timeout_s = OPERATION_TIMEOUT_S  # how long one launch waits for its operation

    # ---- SDK -----------------------------------------------------------------------------------------
    def _sdk(self) -> Any:
        return import_sdk("gcp", "google.cloud.compute_v1")

    def _client(self, kind: str) -> Any:
        """InstancesClient / ZoneOperationsClient / RegionsClient, built once, all on one endpoint."""
        with self._lock:
            if kind not in self._clients:
                compute = self._sdk()
                kwargs: dict[str, Any] = {}
                if self.settings.gcp_endpoint:
                    credentials = import_sdk("gcp", "google.auth.credentials")
                    kwargs["client_options"] = {"api_endpoint": self.settings.gcp_endpoint}
                    kwargs["credentials"] = credentials.AnonymousCredentials()
                try:
                    self._clients[kind] = getattr(compute, kind)(**kwargs)
                except Exception as exc:
                    raise self._error(exc, "", "connect") from None
            return self._clients[kind]

    def project(self) -> str:
        if self._project:
            return self._project
        if self.settings.gcp_endpoint:
            raise ProviderError(
                "gcp", "set CARBONSHIFT_GCP_PROJECT (an endpoint is set, so there is no ADC project)"
            )
        auth = import_sdk("gcp", "google.auth")
        try:
            _, project = auth.default()
        except Exception as exc:
            raise self._error(exc, "", "find credentials") from None
        if not project:
            raise ProviderError(
                "gcp", "no project: set CARBONSHIFT_GCP_PROJECT or `gcloud config set project`"
            )
        self._project = str(project)
        return self._project

    def _error(
        self, exc: BaseException, region: str, action: str, secrets: tuple[str | None, ...] = ()
    ) -> ProviderError:
        """A google.api_core / google.auth exception as CapacityError or ProviderError."""
        auth_exc = import_sdk("gcp", "google.auth.exceptions")
        if isinstance(exc, auth_exc.DefaultCredentialsError):
            return ProviderError(
                "gcp",
                "no Google credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)",
            )
        codes = [str(getattr(exc, "reason", "") or "")]
        for item in getattr(exc, "errors", None) or ():
            if isinstance(item, dict):
                codes.append(str(item.get("reason", "")))
        message = str(getattr(exc, "message", "") or exc)
        for code in codes:
            if code and is_capacity("gcp", code, message):
                return classify("gcp", region, code, message, action=action, secrets=secrets)
        for code in ("ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED"):
            if code in message:
                return classify("gcp", region, code, message, action=action, secrets=secrets)
        http = getattr(exc, "code", None)
        label = next((c for c in codes if c), f"HTTP {http}" if http else type(exc).__name__)
        if http == 403 and "quota" in message.lower():
            return classify("gcp", region, "QUOTA_EXCEEDED", message, action=action, secrets=secrets)
        return classify("gcp", region, label, message, action=action, secrets=secrets)

    # ---- planning ------------------------------------------------------------------------------------
    def _plan(self, request: LaunchRequest, itype: InstanceType, image: str, script: str) -> LaunchPlan:
        name = resource_name(request.run_id)
        zone_path = f"zones/{ZONE_PLACEHOLDER}"
        scheduling: dict[str, Any] = {
            "provisioningModel": "SPOT" if request.interruptible else "STANDARD",
            "instanceTerminationAction": "DELETE",
            "terminationTime": isoformat_z(request.deadline + DEFAULT_MARGIN),
            "automaticRestart": False,
            "onHostMaintenance": "TERMINATE" if (itype.gpus or request.interruptible) else "MIGRATE",
        }
        if request.interruptible:
            scheduling["preemptible"] = True
        body: dict[str, Any] = {
            "name": name,
            "machineType": f"{zone_path}/machineTypes/{itype.name}",
            "labels": {TAG_JOB: label_value(request.spec.name), TAG_RUN: label_value(request.run_id)},
            "metadata": {
                "items": [
                    {"key": "startup-script", "value": script},
                    {"key": TAG_RUN, "value": request.run_id},
                ]
            },
            "disks": [
                {
                    "boot": True,
                    "autoDelete": True,
                    "initializeParams": {"sourceImage": image, "diskSizeGb": "100" if itype.gpus else "20"},
                }
            ],
            "networkInterfaces": [
                {
                    "network": "global/networks/default",
                    "accessConfigs": [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}],
                }
            ],
            "scheduling": scheduling,
            "serviceAccounts": (
                [{"email": account, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]
                if (account := self.settings.gcp_service_account)
                else []
            ),
        }
        if itype.accelerator:
            body["guestAccelerators"] = [
                {
                    "acceleratorType": f"{zone_path}/acceleratorTypes/{itype.accelerator}",
                    "acceleratorCount": itype.gpus,
                }
            ]
        return LaunchPlan(
            provider=self.name,
            region=request.region,
            run_id=request.run_id,
            instance_type=itype,
            image=image,
            interruptible=request.interruptible,
            script=script,
            body=body,
            token=request.report_token,
            notes=(
                "sent as instances.insert(project, zone, Instance(request), requestId=uuid5(run id, zone))",
                f"{ZONE_PLACEHOLDER}: the region's zones are tried in order until one has capacity",
                f"service account {account}: the job has its IAM roles (gcp_service_account)"
                if account
                else "serviceAccounts is empty: the VM gets no Google credentials",
            ),
        )

    def _zones(self, region: str) -> list[str]:
        try:
            answer = self._client("RegionsClient").get(project=self.project(), region=region, timeout=30)
        except Exception as exc:
            raise self._error(exc, region, "list zones") from None
        return sorted(_basename(z) for z in answer.zones)

    def _create(self, plan: LaunchPlan, request: LaunchRequest) -> Handle:
        compute = self._sdk()
        project = self.project()
        refusals: list[CapacityError] = []
        for zone in self._zones(plan.region):
            instance = compute.Instance.from_json(json.dumps(_with_zone(plan.body, zone)))
            try:
                op = self._client("InstancesClient").insert(
                    request=compute.InsertInstanceRequest(
                        project=project,
                        zone=zone,
                        instance_resource=instance,
                        request_id=request_uuid(plan.run_id, zone),
                    ),
                    timeout=60,
                )
                self._wait(project, zone, op.name, plan)
            except CapacityError as exc:
                log.info("gcp: %s refused run %s: %s", zone, plan.run_id, exc)
                refusals.append(exc)
                continue
            except ProviderError:
                raise
            except Exception as exc:
                err = self._error(exc, plan.region, "launch", (plan.token,))
                if isinstance(err, CapacityError):
                    refusals.append(err)
                    continue
                if "already exists" in str(exc).lower():  # a retry that raced the first insert
                    found = self.find(plan.run_id, plan.region)
                    if found is not None:
                        return found
                raise err from None
            found = self._get(project, zone, str(plan.body["name"]), plan.run_id)
            log.info("gcp: launched %s in %s for run %s", plan.body["name"], zone, plan.run_id)
            return found
        if not refusals:
            raise ProviderError("gcp", f"region {plan.region} lists no zones")
        codes = sorted({r.code for r in refusals if r.code})
        raise CapacityError(
            "gcp",
            plan.region,
            f"every zone refused {plan.instance_type.key}: " + "; ".join(r.reason for r in refusals),
            codes[0] if len(codes) == 1 else ",".join(codes),
        )

    def _wait(self, project: str, zone: str, name: str, plan: LaunchPlan) -> None:
        """Poll the zone operation on OUR endpoint until DONE; its errors become exceptions."""
        ops = self._client("ZoneOperationsClient")
        deadline = time.monotonic() + self.operation_timeout_s
        while True:
            try:
                op = ops.wait(project=project, zone=zone, operation=name, timeout=120)
            except Exception as exc:
                raise self._error(exc, plan.region, "wait for the launch", (plan.token,)) from None
            if str(op.status) in ("DONE", "Status.DONE") or getattr(op.status, "name", "") == "DONE":
                break
            if time.monotonic() > deadline:
                raise ProviderError(
                    "gcp",
                    f"launch in {zone}: operation {name} not done after {self.operation_timeout_s:.0f} s",
                )
            time.sleep(self.poll_interval_s)
        errors = list(op.error.errors) if op.error else []
        if errors:
            first = errors[0]
            message = "; ".join(str(e.message) for e in errors)
            raise classify("gcp", f"{plan.region} ({zone})", str(first.code), message, secrets=(plan.token,))

    # ---- lookups ------------------------------------------------------------------------------------------
    def _get(self, project: str, zone: str, name: str, run_id: str | None = None) -> Handle:
        try:
            inst = self._client("InstancesClient").get(project=project, zone=zone, instance=name, timeout=30)
        except Exception as exc:
            raise self._error(exc, zone, "get instance") from None
        return self._handle(project, zone, inst, run_id)

    def _handle(self, project: str, zone: str, inst: Any, run_id: str | None = None) -> Handle:
        meta = {i.key: i.value for i in inst.metadata.items} if inst.metadata else {}
        labels = dict(inst.labels)
        region = zone.rsplit("-", 1)[0]
        return Handle(
            provider=self.name,
            region=region,
            run_id=run_id or meta.get(TAG_RUN) or labels.get(TAG_RUN, ""),
            instance_id=inst.name,
            console_url=console_url(project, zone, inst.name),
            details={
                "zone": zone,
                "project": project,
                "id": str(inst.id) if inst.id else None,
                "machine_type": _basename(inst.machine_type) if inst.machine_type else None,
                "spot": inst.scheduling.provisioning_model == "SPOT" if inst.scheduling else False,
                "job": labels.get(TAG_JOB),
                "state": inst.status,
            },
        )

    def _aggregated(self, label_filter: str) -> list[tuple[str, Any]]:
        project = self.project()
        try:
            pager = self._client("InstancesClient").aggregated_list(
                request={"project": project, "filter": label_filter}, timeout=60
            )
            out = []
            for scope, scoped in pager:
                for inst in scoped.instances:
                    out.append((_basename(scope), inst))
            return out
        except Exception as exc:
            raise self._error(exc, "", "list instances") from None

    def find(self, run_id: str, region: str) -> Handle | None:
        """The run's instance by its label (then its exact `carbonshift-run` metadata), in the region."""
        label = label_value(run_id)
        project = self.project()
        for zone, inst in self._aggregated(f'labels.{TAG_RUN} = "{label}"'):
            meta = {i.key: i.value for i in inst.metadata.items} if inst.metadata else {}
            if inst.labels.get(TAG_RUN) != label or meta.get(TAG_RUN, run_id) != run_id:
                continue  # the server may ignore the filter (a fake); the exact id decides
            if zone.startswith(region + "-"):
                return self._handle(project, zone, inst, run_id)
        return None

    def status(self, handle: Handle) -> InstanceStatus:
        project = str(handle.details.get("project") or self.project())
        zone = str(handle.details.get("zone", ""))
        exceptions = import_sdk("gcp", "google.api_core.exceptions")
        try:
            inst = self._client("InstancesClient").get(
                project=project, zone=zone, instance=handle.instance_id, timeout=30
            )
        except exceptions.NotFound:
            preempted = self._preempted(handle, project, zone)
            if preempted is not None:
                return preempted
            return InstanceStatus(
                InstanceState.UNKNOWN,
                None,
                "instance gone (deleted after it ended, at its termination time, or preempted)",
            )
        except Exception as exc:
            raise self._error(exc, handle.region, "status") from None
        state = str(inst.status)
        if state in _PENDING:
            return InstanceStatus(InstanceState.PENDING, None, state.lower())
        if state == "RUNNING":
            return InstanceStatus(InstanceState.RUNNING, None, "running")
        if state in _ENDED:
            return self._preempted(handle, project, zone) or ended_status(
                self._console(project, zone, handle.instance_id), state.lower()
            )
        return InstanceStatus(InstanceState.UNKNOWN, None, f"unexpected state {state}")

    def _preempted(self, handle: Handle, project: str, zone: str) -> InstanceStatus | None:
        """A Spot VM that Compute Engine reclaimed: its zone has a `compute.instances.preempted`
        operation on the instance (the VM is then deleted, its termination action). FAILED with no
        exit code and the word 'preempted', which the scheduler re-plans for an interruptible job
        instead of failing it. None for a VM that is not Spot, or not preempted (best effort: the
        operations being unreadable is no preemption)."""
        if not handle.details.get("spot"):
            return None
        try:
            pager = self._client("ZoneOperationsClient").list(
                request={"project": project, "zone": zone, "filter": f'operationType = "{PREEMPTED_OP}"'},
                timeout=30,
            )
            for op in pager:
                if (
                    str(op.operation_type) == PREEMPTED_OP
                    and _basename(str(op.target_link)) == handle.instance_id
                ):
                    when = str(op.end_time or op.insert_time or "") or "an unknown time"
                    return InstanceStatus(
                        InstanceState.FAILED,
                        None,
                        f"preempted: Compute Engine reclaimed the Spot VM ({PREEMPTED_OP} at {when})",
                    )
        except Exception as exc:
            log.warning("gcp: cannot read the operations of %s in %s: %s", handle.instance_id, zone, exc)
        return None

    def gone(self, handle: Handle) -> bool:
        """Deleted: a stopped (TERMINATED) instance still exists, with its disk."""
        project = str(handle.details.get("project") or self.project())
        zone = str(handle.details.get("zone", ""))
        exceptions = import_sdk("gcp", "google.api_core.exceptions")
        try:
            self._client("InstancesClient").get(
                project=project, zone=zone, instance=handle.instance_id, timeout=30
            )
        except exceptions.NotFound:
            return True
        except Exception as exc:
            raise self._error(exc, handle.region, "status") from None
        return False

    def _console(self, project: str, zone: str, name: str) -> str | None:
        try:
            out = self._client("InstancesClient").get_serial_port_output(
                project=project, zone=zone, instance=name, timeout=30
            )
        except Exception:  # best effort: the report is the primary record
            return None
        return str(out.contents)

    def terminate(self, handle: Handle) -> None:
        project = str(handle.details.get("project") or self.project())
        zone = str(handle.details.get("zone", ""))
        exceptions = import_sdk("gcp", "google.api_core.exceptions")
        try:
            self._client("InstancesClient").delete(
                project=project, zone=zone, instance=handle.instance_id, timeout=60
            )
        except exceptions.NotFound:
            return
        except Exception as exc:
            raise self._error(exc, handle.region, "terminate") from None

    def managed(self) -> list[Handle]:
        """Every instance labelled `carbonshift-run`, in one aggregated call over all zones."""
        project = self.project()
        wanted = set(self.regions()) if self._regions is not None else None
        out = []
        for zone, inst in self._aggregated(f"labels.{TAG_RUN}:*"):
            if TAG_RUN not in inst.labels:
                continue
            handle = self._handle(project, zone, inst)
            if wanted is None or handle.region in wanted:
                out.append(handle)
        return out


__all__ = ["GcpProvider", "console_url", "scrub"]
