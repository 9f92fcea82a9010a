"""Amazon EC2 through boto3 (the `aws` extra), imported only when this adapter is used.

Credentials and endpoint come from boto3's own chain: AWS_PROFILE / AWS_ACCESS_KEY_ID / ~/.aws /
an instance role, and AWS_ENDPOINT_URL_EC2 (or AWS_ENDPOINT_URL) for moto, LocalStack or a private
endpoint. An instance is launched with `InstanceInitiatedShutdownBehavior=terminate`, so the
bootstrap's power-off ends the bill; with no instance profile, so the job gets no AWS credentials;
IMDSv2 only; tags `carbonshift-job`, `carbonshift-run` and `Name` on the instance and its volume.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from carbonshift.catalog.instances import InstanceType
from carbonshift.providers.base import (
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)
from carbonshift.providers.cloud import CloudProvider, LaunchPlan, ended_status, log
from carbonshift.providers.common import TAG_JOB, TAG_RUN, import_sdk, resource_name, scrub
from carbonshift.providers.errors_map import classify

_LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
_ALL_STATES = [*_LIVE_STATES, "terminated"]


_SESSION_LOCK = threading.Lock()
_SESSIONS: dict[str, Any] = {}


def _shared_session() -> Any:
    """One boto3 session per process: a new session reloads EC2's service model (a few tenths of a
    second each time), and clients made from one session under a lock are safe to share."""
    with _SESSION_LOCK:
        if "default" not in _SESSIONS:
            _SESSIONS["default"] = import_sdk("aws", "boto3").session.Session()
        return _SESSIONS["default"]


def console_url(region: str, instance_id: str) -> str:
    return f"https://{region}.console.aws.amazon.com/ec2/home?region={region}#InstanceDetails:instanceId={instance_id}"


class AwsProvider(CloudProvider):
    name = "aws"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    # ---- SDK -------------------------------------------------------------------------------------
    def _client(self, region: str) -> Any:
        with self._lock:
            if region not in self._clients:
                config = import_sdk("aws", "botocore.config")
                session = _shared_session()
                with _SESSION_LOCK:
                    self._clients[region] = session.client(
                        "ec2",
                        region_name=region,
                        config=config.Config(
                            retries={"max_attempts": 4, "mode": "standard"},
                            connect_timeout=5,
                            read_timeout=60,
                        ),
                    )
            return self._clients[region]

    def _call(
        self, region: str, action: str, fn: str, secrets: tuple[str | None, ...] = (), **kwargs: Any
    ) -> Any:
        """One EC2 call with its errors mapped: capacity codes -> CapacityError, the rest ->
        ProviderError, always without credentials."""
        exceptions = import_sdk("aws", "botocore.exceptions")
        try:
            return getattr(self._client(region), fn)(**kwargs)
        except exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            raise classify(
                "aws",
                region,
                str(err.get("Code", "")),
                str(err.get("Message", "")),
                action=action,
                secrets=secrets,
            ) from None
        except exceptions.NoCredentialsError:
            raise ProviderError(
                "aws",
                "no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, a role)",
            ) from None
        except exceptions.BotoCoreError as exc:
            raise ProviderError("aws", f"{action} in {region} failed: {scrub(str(exc), secrets)}") from None

    # ---- planning ----------------------------------------------------------------------------------
    def _plan(self, request: LaunchRequest, itype: InstanceType, image: str, script: str) -> LaunchPlan:
        tags = [
            {"Key": TAG_JOB, "Value": request.spec.name},
            {"Key": TAG_RUN, "Value": request.run_id},
            {"Key": "Name", "Value": resource_name(request.run_id)},
        ]
        body: dict[str, Any] = {
            "ImageId": image,
            "InstanceType": itype.name,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": resource_name(request.run_id, 64),
            "UserData": script,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        profile = self.settings.aws_instance_profile
        if profile:
            key = "Arn" if profile.startswith("arn:") else "Name"
            body["IamInstanceProfile"] = {key: profile}
        if request.interruptible:
            body["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
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
                "sent as ec2.run_instances(**request) in the region; boto3 base64-encodes UserData",
                f"IamInstanceProfile {profile}: the job has that role's permissions (aws_instance_profile)"
                if profile
                else "no IamInstanceProfile: the instance gets no AWS credentials",
            ),
        )

    def _create(self, plan: LaunchPlan, request: LaunchRequest) -> Handle:
        answer = self._call(plan.region, "launch", "run_instances", (plan.token,), **plan.body)
        instance = answer["Instances"][0]
        log.info("aws: launched %s for run %s in %s", instance["InstanceId"], plan.run_id, plan.region)
        return self._handle(plan.region, instance, plan.run_id)

    def _handle(self, region: str, instance: dict[str, Any], run_id: str | None = None) -> Handle:
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        iid = instance["InstanceId"]
        return Handle(
            provider=self.name,
            region=region,
            run_id=run_id or tags.get(TAG_RUN, ""),
            instance_id=iid,
            console_url=console_url(region, iid),
            details={
                "instance_type": instance.get("InstanceType"),
                "spot": instance.get("InstanceLifecycle") == "spot",
                "job": tags.get(TAG_JOB),
                "state": instance.get("State", {}).get("Name"),
                "launched_at": str(instance.get("LaunchTime", "")) or None,
            },
        )

    # ---- lookups ---------------------------------------------------------------------------------------
    def _instances(self, region: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters}
            if token:
                kwargs["NextToken"] = token
            page = self._call(region, "describe instances", "describe_instances", **kwargs)
            out.extend(i for r in page.get("Reservations", []) for i in r.get("Instances", []))
            token = page.get("NextToken")
            if not token:
                return out

    def find(self, run_id: str, region: str) -> Handle | None:
        """The run's instance by its `carbonshift-run` tag; a live one before a terminated one."""
        found = self._instances(
            region,
            [
                {"Name": f"tag:{TAG_RUN}", "Values": [run_id]},
                {"Name": "instance-state-name", "Values": _ALL_STATES},
            ],
        )
        if not found:
            return None
        found.sort(
            key=lambda i: (i.get("State", {}).get("Name") == "terminated", str(i.get("LaunchTime", "")))
        )
        return self._handle(region, found[0], run_id)

    def _described(self, handle: Handle) -> list[dict[str, Any]]:
        """The instance as DescribeInstances shows it: [] when EC2 does not know the id."""
        exceptions = import_sdk("aws", "botocore.exceptions")
        try:
            answer = self._client(handle.region).describe_instances(InstanceIds=[handle.instance_id])
        except exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code.startswith("InvalidInstanceID"):
                return []
            raise classify(
                "aws",
                handle.region,
                code,
                str(exc.response.get("Error", {}).get("Message", "")),
                action="status",
            ) from None
        return [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]

    def status(self, handle: Handle) -> InstanceStatus:
        instances = self._described(handle)
        if not instances:
            return InstanceStatus(InstanceState.UNKNOWN, None, f"instance {handle.instance_id} not found")
        instance = instances[0]
        state = instance.get("State", {}).get("Name", "")
        reason = instance.get("StateReason", {}) or {}
        reason_code = str(reason.get("Code", ""))
        if state == "pending":
            return InstanceStatus(InstanceState.PENDING, None, "pending")
        if state == "running":
            return InstanceStatus(InstanceState.RUNNING, None, "running")
        detail = f"{state} ({reason.get('Message') or reason_code or 'no reason given'})"
        if reason_code == "Client.UserInitiatedShutdown":
            return InstanceStatus(InstanceState.TERMINATED, None, detail)
        if reason_code == "Client.InstanceInitiatedShutdown":
            return ended_status(self._console(handle), detail)
        if reason_code.startswith("Server."):  # spot interruption, host failure
            return InstanceStatus(InstanceState.FAILED, None, detail)
        return ended_status(self._console(handle), detail)

    def gone(self, handle: Handle) -> bool:
        """Terminated (EC2 lists a terminated instance for a while; it no longer bills) or unknown."""
        instances = self._described(handle)
        return all(i.get("State", {}).get("Name") == "terminated" for i in instances)

    def _console(self, handle: Handle) -> str | None:
        try:
            out = self._client(handle.region).get_console_output(InstanceId=handle.instance_id)
        except Exception:  # best effort: the report is the primary record
            return None
        text = out.get("Output")
        return text if isinstance(text, str) else None

    def terminate(self, handle: Handle) -> None:
        exceptions = import_sdk("aws", "botocore.exceptions")
        try:
            self._client(handle.region).terminate_instances(InstanceIds=[handle.instance_id])
        except exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code.startswith("InvalidInstanceID"):
                return
            raise classify(
                "aws",
                handle.region,
                code,
                str(exc.response.get("Error", {}).get("Message", "")),
                action="terminate",
            ) from None

    def managed(self) -> list[Handle]:
        """Every live instance tagged `carbonshift-run`, across this provider's regions (in parallel;
        a region the account cannot use is skipped with a warning)."""
        filters = [
            {"Name": "tag-key", "Values": [TAG_RUN]},
            {"Name": "instance-state-name", "Values": _LIVE_STATES},
        ]

        def scan(region: str) -> list[Handle]:
            try:
                return [self._handle(region, i) for i in self._instances(region, filters)]
            except ProviderError as exc:
                log.warning("aws: skipped %s: %s", region, exc)
                return []

        regions = self.regions()
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(regions)))) as pool:
            return [h for hs in pool.map(scan, regions) for h in hs]
