"""Azure virtual machines through azure-mgmt-compute and azure-mgmt-network (the `azure` extra),
imported only when used.

Credentials: azure-identity's DefaultAzureCredential (environment, managed identity, `az login`);
subscription from CARBONSHIFT_AZURE_SUBSCRIPTION_ID (or AZURE_SUBSCRIPTION_ID); VMs go in the existing
resource group CARBONSHIFT_AZURE_RESOURCE_GROUP (default `carbonshift`). With CARBONSHIFT_AZURE_ENDPOINT
set (tests, emulators) the clients use it as base_url with a static token added by our own policy: the
SDK's bearer policy refuses plain http, and its default 30 s poll interval is lowered there.

What a launch creates: once per region a VNet `carbonshift-<region>` with one subnet (no public IPs;
default outbound access kept so the VM can reach PyPI and the scheduler), and per run a NIC and a VM
named from the run id (the name IS the idempotency key: a PUT of the same name updates, never
duplicates). The NIC and OS disk are deleted with the VM. Spot with eviction policy Delete when
interruptible. Azure has no terminate-on-shutdown: the bootstrap's power-off stops the VM, `status`
reports it ended, and the scheduler's `terminate` deletes it.
"""

from __future__ import annotations

import base64
import secrets
import threading
from datetime import UTC, datetime, timedelta
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

ADMIN_USER = "carbonshift"
VNET_PREFIX = "10.83.0.0/16"
SUBNET_NAME = "jobs"
SUBNET_PREFIX = "10.83.0.0/20"
STATIC_TOKEN = "carbonshift-static-endpoint-token"


def console_url(subscription: str, group: str, name: str) -> str:
    return (
        "https://portal.azure.com/#@/resource/subscriptions/"
        f"{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}/overview"
    )


def image_reference(image: str) -> dict[str, str]:
    """'publisher:offer:sku:version' (a marketplace URN) or a full resource id."""
    if image.startswith("/"):
        return {"id": image}
    parts = image.split(":")
    if len(parts) != 4:
        raise ProviderError("azure", f"image {image!r}: write publisher:offer:sku:version or a resource id")
    return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))


def _static_policy_class() -> Any:
    base: Any = import_sdk("azure", "azure.core.pipeline.policies").SansIOHTTPPolicy

    class StaticBearerPolicy(base):  # type: ignore[misc]
        """Adds a fixed bearer token: only for an explicitly configured (local) endpoint."""

        def on_request(self, request: Any) -> None:
            request.http_request.headers["Authorization"] = f"Bearer {STATIC_TOKEN}"

    return StaticBearerPolicy


class _StaticCredential:
    """A TokenCredential that never calls Azure AD (the endpoint override only)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        credentials = import_sdk("azure", "azure.core.credentials")
        expires = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
        return credentials.AccessToken(STATIC_TOKEN, expires)


class AzureProvider(CloudProvider):
    name = "azure"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self.poll_interval_s = 0.05 if self.settings.azure_endpoint else 5.0

    @property
    def group(self) -> str:
        return self.settings.azure_resource_group

    def subscription(self) -> str:
        import os

        sub = self.settings.azure_subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID")
        if not sub:
            raise ProviderError("azure", "set CARBONSHIFT_AZURE_SUBSCRIPTION_ID (or AZURE_SUBSCRIPTION_ID)")
        return sub

    # ---- SDK -------------------------------------------------------------------------------------------
    def _client(self, kind: str) -> Any:
        with self._lock:
            if kind not in self._clients:
                module, cls = {
                    "compute": ("azure.mgmt.compute", "ComputeManagementClient"),
                    "network": ("azure.mgmt.network", "NetworkManagementClient"),
                }[kind]
                sdk = import_sdk("azure", module)
                kwargs: dict[str, Any] = {"polling_interval": self.poll_interval_s}
                if self.settings.azure_endpoint:
                    credential: Any = _StaticCredential()
                    kwargs["base_url"] = self.settings.azure_endpoint
                    kwargs["authentication_policy"] = _static_policy_class()()
                else:
                    identity = import_sdk("azure", "azure.identity")
                    credential = identity.DefaultAzureCredential()
                self._clients[kind] = getattr(sdk, cls)(credential, self.subscription(), **kwargs)
            return self._clients[kind]

    def _error(
        self, exc: BaseException, region: str, action: str, secrets_: tuple[str | None, ...] = ()
    ) -> ProviderError:
        """An azure-core HttpResponseError (or credential error) as CapacityError / ProviderError."""
        error = getattr(exc, "error", None)
        code = str(getattr(error, "code", "") or "")
        message = str(getattr(error, "message", "") or getattr(exc, "message", "") or exc)
        if not code and "ClientAuthenticationError" in type(exc).__name__ + "".join(
            c.__name__ for c in type(exc).__mro__
        ):
            return ProviderError(
                "azure", "no Azure credentials (az login, AZURE_CLIENT_ID/..., or a managed identity)"
            )
        if not code:
            code = type(exc).__name__
        return classify("azure", region, code, message, action=action, secrets=secrets_)

    # ---- planning --------------------------------------------------------------------------------------
    def _ids(self, region: str, vm: str) -> dict[str, str]:
        sub = self.settings.azure_subscription_id or "{subscription}"
        base = f"/subscriptions/{sub}/resourceGroups/{self.group}/providers"
        vnet = f"carbonshift-{region}"
        return {
            "vnet": vnet,
            "subnet_id": f"{base}/Microsoft.Network/virtualNetworks/{vnet}/subnets/{SUBNET_NAME}",
            "nic": f"{vm}-nic",
            "nic_id": f"{base}/Microsoft.Network/networkInterfaces/{vm}-nic",
        }

    def _plan(self, request: LaunchRequest, itype: InstanceType, image: str, script: str) -> LaunchPlan:
        vm = resource_name(request.run_id)
        ids = self._ids(request.region, vm)
        tags = {TAG_JOB: request.spec.name, TAG_RUN: request.run_id}
        os_profile: dict[str, Any] = {
            "computerName": vm,
            "adminUsername": ADMIN_USER,
            "customData": base64.b64encode(script.encode("utf-8")).decode("ascii"),
        }
        hidden: tuple[str, ...] = ()
        if self.settings.azure_ssh_public_key:
            os_profile["linuxConfiguration"] = {
                "disablePasswordAuthentication": True,
                "ssh": {
                    "publicKeys": [
                        {
                            "path": f"/home/{ADMIN_USER}/.ssh/authorized_keys",
                            "keyData": self.settings.azure_ssh_public_key,
                        }
                    ]
                },
            }
        else:
            # Azure wants a way in; nobody gets one: a random password that is never stored or shown
            password = "Cs1!" + secrets.token_urlsafe(24)
            os_profile["adminPassword"] = password
            os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": False}
            hidden = (password,)
        properties: dict[str, Any] = {
            "hardwareProfile": {"vmSize": itype.name},
            "storageProfile": {
                "imageReference": image_reference(image),
                "osDisk": {
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                    "diskSizeGB": 128 if itype.gpus else 32,
                    "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                },
            },
            "osProfile": os_profile,
            "networkProfile": {
                "networkInterfaces": [
                    {"id": ids["nic_id"], "properties": {"primary": True, "deleteOption": "Delete"}}
                ]
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
        }
        if request.interruptible:
            properties["priority"] = "Spot"
            properties["evictionPolicy"] = "Delete"
            properties["billingProfile"] = {"maxPrice": -1}
        else:
            properties["priority"] = "Regular"
        identity = self.settings.azure_identity_id
        vm_body: dict[str, Any] = {"location": request.region, "tags": tags, "properties": properties}
        if identity:
            vm_body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
        body = {
            "virtual_network": {
                "name": ids["vnet"],
                "body": {
                    "location": request.region,
                    "tags": {"carbonshift": "network"},
                    "properties": {
                        "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                        "subnets": [
                            {
                                "name": SUBNET_NAME,
                                "properties": {"addressPrefix": SUBNET_PREFIX, "defaultOutboundAccess": True},
                            }
                        ],
                    },
                },
            },
            "network_interface": {
                "name": ids["nic"],
                "body": {
                    "location": request.region,
                    "tags": tags,
                    "properties": {
                        "ipConfigurations": [
                            {
                                "name": "ipconfig1",
                                "properties": {
                                    "subnet": {"id": ids["subnet_id"]},
                                    "privateIPAllocationMethod": "Dynamic",
                                },
                            }
                        ]
                    },
                },
            },
            "virtual_machine": {"name": vm, "body": vm_body},
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
            hidden=hidden,
            notes=(
                f"PUT in resource group {self.group!r}: the virtual network (only if missing), the NIC, then the VM",
                "customData is the bootstrap in base64 (shown here with the token redacted; plain under `bootstrap`)",
                f"no public IP; managed identity {identity.rsplit('/', 1)[-1]} (azure_identity_id): the job has its roles"
                if identity
                else "no public IP and no managed identity: the VM gets no Azure credentials",
            ),
        )

    def _create(self, plan: LaunchPlan, request: LaunchRequest) -> Handle:
        body = plan.body
        secrets_ = (plan.token, *plan.hidden)
        network = self._client("network")
        compute = self._client("compute")
        exceptions = import_sdk("azure", "azure.core.exceptions")
        vnet = body["virtual_network"]
        try:
            try:
                network.virtual_networks.get(self.group, vnet["name"])
            except exceptions.ResourceNotFoundError:
                network.virtual_networks.begin_create_or_update(
                    self.group, vnet["name"], vnet["body"]
                ).result()
            nic = body["network_interface"]
            network.network_interfaces.begin_create_or_update(self.group, nic["name"], nic["body"]).result()
            vm = body["virtual_machine"]
            result = compute.virtual_machines.begin_create_or_update(
                self.group, vm["name"], vm["body"]
            ).result()
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, plan.region, "launch", secrets_) from None
        log.info("azure: launched %s for run %s in %s", vm["name"], plan.run_id, plan.region)
        return self._handle(result, plan.run_id)

    def _handle(self, vm: Any, run_id: str | None = None) -> Handle:
        tags = dict(vm.tags or {})
        return Handle(
            provider=self.name,
            region=str(vm.location),
            run_id=run_id or tags.get(TAG_RUN, ""),
            instance_id=str(vm.name),
            console_url=console_url(self.subscription(), self.group, str(vm.name)),
            details={
                "resource_group": self.group,
                "id": vm.id,
                "vm_size": getattr(getattr(vm, "hardware_profile", None), "vm_size", None),
                "spot": _is_spot(getattr(vm, "priority", None)),
                "job": tags.get(TAG_JOB),
            },
        )

    # ---- lookups ------------------------------------------------------------------------------------------
    def find(self, run_id: str, region: str) -> Handle | None:
        """The run's VM by its deterministic name (checked against its `carbonshift-run` tag)."""
        exceptions = import_sdk("azure", "azure.core.exceptions")
        try:
            vm = self._client("compute").virtual_machines.get(self.group, resource_name(run_id))
        except exceptions.ResourceNotFoundError:
            return None
        except Exception as exc:
            raise self._error(exc, region, "find") from None
        if (vm.tags or {}).get(TAG_RUN) != run_id:
            raise ProviderError("azure", f"VM {vm.name} exists but is not tagged for run {run_id!r}")
        return self._handle(vm, run_id)

    def status(self, handle: Handle) -> InstanceStatus:
        exceptions = import_sdk("azure", "azure.core.exceptions")
        try:
            view = self._client("compute").virtual_machines.instance_view(self.group, handle.instance_id)
        except exceptions.ResourceNotFoundError:
            if handle.details.get("spot"):
                # Azure deletes a Spot VM it evicts (our eviction policy): FAILED with no exit code and
                # 'evicted', which the scheduler re-plans for an interruptible job unless it stopped
                # the run itself (a cancel, a chunk's end)
                return InstanceStatus(
                    InstanceState.FAILED, None, "Spot VM gone: evicted by Azure (eviction policy Delete)"
                )
            return InstanceStatus(InstanceState.UNKNOWN, None, "VM gone (deleted)")
        except Exception as exc:
            raise self._error(exc, handle.region, "status") from None
        codes = [str(s.code) for s in (view.statuses or [])]
        power = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "")
        if handle.details.get("spot") and power in ("deallocated", "deallocating"):
            # a guest power-off (the bootstrap's, at the job's end) stops a VM; only Azure deallocates
            # it on its own: a Spot eviction with policy Deallocate
            return InstanceStatus(
                InstanceState.FAILED, None, f"Spot VM evicted by Azure (PowerState/{power})"
            )
        provisioning = next((c.split("/", 1)[1] for c in codes if c.startswith("ProvisioningState/")), "")
        if provisioning.startswith("failed"):
            return InstanceStatus(InstanceState.FAILED, None, f"provisioning {provisioning}")
        if power == "running":
            return InstanceStatus(InstanceState.RUNNING, None, "running")
        if power in ("stopped", "deallocated", "stopping", "deallocating"):
            return ended_status(self._console(handle), f"VM {power}")
        return InstanceStatus(InstanceState.PENDING, None, power or provisioning or "creating")

    def _console(self, handle: Handle) -> str | None:
        """The serial log through boot diagnostics (a short-lived SAS URL); best effort."""
        try:
            data = self._client("compute").virtual_machines.retrieve_boot_diagnostics_data(
                self.group, handle.instance_id, sas_uri_expiration_time_in_minutes=5
            )
            url = data.serial_console_log_blob_uri
            if not url:
                return None
            import requests

            response = requests.get(url, timeout=20)
            response.raise_for_status()
            return response.text
        except Exception:
            return None

    def terminate(self, handle: Handle) -> None:
        exceptions = import_sdk("azure", "azure.core.exceptions")
        try:
            self._client("compute").virtual_machines.begin_delete(self.group, handle.instance_id).result()
        except exceptions.ResourceNotFoundError:
            return
        except Exception as exc:
            raise self._error(exc, handle.region, "terminate") from None

    def gone(self, handle: Handle) -> bool:
        """Deleted: a stopped or deallocated VM still exists (and a stopped one still bills)."""
        exceptions = import_sdk("azure", "azure.core.exceptions")
        try:
            self._client("compute").virtual_machines.get(self.group, handle.instance_id)
        except exceptions.ResourceNotFoundError:
            return True
        except Exception as exc:
            raise self._error(exc, handle.region, "status") from None
        return False

    def managed(self) -> list[Handle]:
        """Every VM in the resource group tagged `carbonshift-run`."""
        try:
            vms = list(self._client("compute").virtual_machines.list(self.group))
        except Exception as exc:
            raise self._error(exc, "", "list VMs") from None
        wanted = set(self.regions()) if self._regions is not None else None
        return [
            self._handle(vm)
            for vm in vms
            if TAG_RUN in (vm.tags or {}) and (wanted is None or vm.location in wanted)
        ]


def _is_spot(priority: Any) -> bool:
    """The SDK gives the VM's priority as an enum (whose str() is its Python name, not 'Spot')."""
    return str(getattr(priority, "value", priority) or "").lower() == "spot"


__all__ = ["AzureProvider", "image_reference", "scrub"]
