"""The Azure adapter with the real azure-mgmt-compute / azure-mgmt-network clients over plain HTTP
against a local ARM fake (base_url, a static token through our own policy, a short poll interval)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from carbonshift.config import Settings
from carbonshift.providers.azure import STATIC_TOKEN, AzureProvider, image_reference
from carbonshift.providers.base import CapacityError, InstanceState, ProviderError
from carbonshift.providers.bootstrap import EXIT_MARKER
from carbonshift.providers.common import TAG_JOB, TAG_RUN, resource_name
from tests.providers.conftest import NOW, make_request, make_spec
from tests.providers.fakes import FakeArm

REGION = "westeurope"
SUB = "00000000-0000-0000-0000-000000000001"


def provider(fake: FakeArm, **settings: Any) -> AzureProvider:
    return AzureProvider(
        Settings(
            azure_endpoint=fake.url, azure_subscription_id=SUB, azure_resource_group="rg-jobs", **settings
        ),
        regions=[REGION],
        clock=lambda: NOW,
    )


def puts(fake: FakeArm, kind: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "PUT" and f"/{kind}/" in r.path]


def test_launch_creates_network_nic_and_spot_vm(arm: FakeArm) -> None:
    spec = make_spec(hardware={"gpu": "T4", "gpus": 1, "vcpus": 4, "memory_gb": 16}, interruptible=True)
    request = make_request(REGION, run_id="run-az-1", spec=spec, interruptible=True, report_token="tok-az")
    started = time.monotonic()
    handle = provider(arm).launch(request)
    # the SDK's default would wait 30 s before its one poll (the first import alone can take seconds)
    assert time.monotonic() - started < 25
    vm_name = resource_name("run-az-1")
    assert handle.provider == "azure" and handle.instance_id == vm_name and handle.region == REGION
    assert handle.run_id == "run-az-1" and handle.details["resource_group"] == "rg-jobs"
    (vnet,) = puts(arm, "virtualNetworks")
    assert vnet.path.endswith(
        f"/resourceGroups/rg-jobs/providers/Microsoft.Network/virtualNetworks/carbonshift-{REGION}"
    )
    subnet = vnet.body["properties"]["subnets"][0]
    assert subnet["properties"]["defaultOutboundAccess"] is True
    (nic,) = puts(arm, "networkInterfaces")
    ipconf = nic.body["properties"]["ipConfigurations"][0]["properties"]
    assert ipconf["subnet"]["id"].endswith(f"virtualNetworks/carbonshift-{REGION}/subnets/jobs")
    assert "publicIPAddress" not in ipconf
    (vm,) = puts(arm, "virtualMachines")
    props = vm.body["properties"]
    assert props["hardwareProfile"]["vmSize"] == "Standard_NC4as_T4_v3"
    assert vm.body["tags"] == {TAG_JOB: "train-model", TAG_RUN: "run-az-1"}
    assert props["priority"] == "Spot" and props["evictionPolicy"] == "Delete"
    assert props["billingProfile"] == {"maxPrice": -1}
    script = base64.b64decode(props["osProfile"]["customData"]).decode()
    assert (
        script.startswith("#!/bin/sh")
        and "REGION=azure:westeurope" in script
        and "REPORT_TOKEN=tok-az" in script
    )
    assert props["networkProfile"]["networkInterfaces"][0]["id"].endswith(f"/networkInterfaces/{vm_name}-nic")
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert props["storageProfile"]["imageReference"]["publisher"] == "microsoft-dsvm"
    assert all(r.headers.get("authorization") == f"Bearer {STATIC_TOKEN}" for r in arm.requests)
    # the async create was polled until it succeeded
    assert any(r.path.startswith("/operations/") for r in arm.requests)


def test_cpu_vm_is_regular_and_the_existing_network_is_reused(arm: FakeArm) -> None:
    az = provider(arm)
    az.launch(make_request(REGION, run_id="run-a"))
    az.launch(make_request(REGION, run_id="run-b"))
    assert len(puts(arm, "virtualNetworks")) == 1
    vms = puts(arm, "virtualMachines")
    assert [v.body["properties"]["priority"] for v in vms] == ["Regular", "Regular"]
    assert vms[0].body["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    assert vms[0].body["properties"]["storageProfile"]["imageReference"] == image_reference(
        "Canonical:ubuntu-24_04-lts:server:latest"
    )


def test_sku_not_available_is_capacity_error(arm: FakeArm) -> None:
    arm.sku_not_available = {"Standard_D4s_v5"}
    with pytest.raises(CapacityError) as info:
        provider(arm).launch(make_request(REGION, run_id="run-sku"))
    assert info.value.code == "SkuNotAvailable" and info.value.region == REGION


def test_async_allocation_failure_is_capacity_error(arm: FakeArm) -> None:
    arm.allocation_failed = {"Standard_D4s_v5"}
    with pytest.raises(CapacityError) as info:
        provider(arm).launch(make_request(REGION, run_id="run-alloc"))
    assert info.value.code == "AllocationFailed"


def test_launch_is_idempotent_by_the_vm_name(arm: FakeArm) -> None:
    first = provider(arm).launch(make_request(REGION, run_id="run-idem"))
    second = provider(arm).launch(make_request(REGION, run_id="run-idem"))
    assert first.instance_id == second.instance_id
    assert len(puts(arm, "virtualMachines")) == 1


def test_password_is_never_shown_and_ssh_key_disables_it(arm: FakeArm) -> None:
    plan = provider(arm).plan(make_request(REGION, run_id="run-pw"))
    password = plan.body["virtual_machine"]["body"]["properties"]["osProfile"]["adminPassword"]
    assert password not in str(plan.public())
    keyed = provider(arm, azure_ssh_public_key="ssh-ed25519 AAAAC3Nz test").plan(make_request(REGION))
    os_profile = keyed.body["virtual_machine"]["body"]["properties"]["osProfile"]
    assert "adminPassword" not in os_profile
    assert os_profile["linuxConfiguration"]["disablePasswordAuthentication"] is True


def test_status_from_power_state_and_serial_log_then_terminate(arm: FakeArm) -> None:
    az = provider(arm)
    handle = az.launch(make_request(REGION, run_id="run-life"))
    assert az.status(handle).state is InstanceState.RUNNING
    assert [h.run_id for h in az.managed()] == ["run-life"]
    arm.power[handle.instance_id] = "stopped"
    arm.serial[handle.instance_id] = f"[ 10.1] cloud-init...\n{EXIT_MARKER} 0\n"
    status = az.status(handle)
    assert status.state is InstanceState.SUCCEEDED and status.exit_code == 0
    az.terminate(handle)
    assert az.status(handle).state is InstanceState.UNKNOWN
    az.terminate(handle)  # already gone: no error
    assert az.managed() == []


def test_missing_subscription_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    az = AzureProvider(Settings(azure_endpoint="http://127.0.0.1:9"), clock=lambda: NOW)
    with pytest.raises(ProviderError, match="SUBSCRIPTION_ID"):
        az.launch(make_request(REGION))


# ---- Spot eviction --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["Delete", "Deallocate"])
def test_an_evicted_spot_vm_is_failed_as_evicted_not_lost(arm: FakeArm, policy: str) -> None:
    """Azure evicts a Spot VM (deleted, carbonshift's policy, or deallocated): FAILED with no exit code
    and 'evicted', what the scheduler re-plans for an interruptible job, not 'gone' (lost)."""
    az = provider(arm)
    spec = make_spec(interruptible=True)
    handle = az.launch(make_request(REGION, run_id=f"run-evict-{policy}", spec=spec, interruptible=True))
    assert handle.details["spot"] is True
    assert az.status(handle).state is InstanceState.RUNNING
    arm.evict(handle.instance_id, policy)
    status = az.status(handle)
    assert status.state is InstanceState.FAILED and status.exit_code is None, status
    assert "evicted" in status.detail


def test_a_regular_vm_deleted_or_deallocated_is_not_taken_for_evicted(arm: FakeArm) -> None:
    az = provider(arm)
    handle = az.launch(make_request(REGION, run_id="run-regular"))
    assert handle.details["spot"] is False
    arm.power[handle.instance_id] = "deallocated"
    status = az.status(handle)
    assert "evicted" not in status.detail and status.state is not InstanceState.RUNNING
    arm.evict(handle.instance_id, "Delete")
    status = az.status(handle)
    assert status.state is InstanceState.UNKNOWN and "evicted" not in status.detail
