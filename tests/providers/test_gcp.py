"""The Compute Engine adapter with the real google-cloud-compute clients over HTTP against a local fake
(api_endpoint + AnonymousCredentials), which checks the request bodies and can refuse a zone."""

from __future__ import annotations

from typing import Any

import pytest

from carbonshift.config import Settings
from carbonshift.providers.base import CapacityError, InstanceState, ProviderError
from carbonshift.providers.bootstrap import EXIT_MARKER
from carbonshift.providers.common import TAG_JOB, TAG_RUN, request_uuid
from carbonshift.providers.gcp import GcpProvider
from tests.providers.conftest import NOW, make_request, make_spec
from tests.providers.fakes import FakeComputeEngine

REGION = "us-central1"
PROJECT = "test-project"


def provider(fake: FakeComputeEngine, **settings: Any) -> GcpProvider:
    return GcpProvider(
        Settings(gcp_endpoint=fake.url, gcp_project=PROJECT, **settings), regions=[REGION], clock=lambda: NOW
    )


def inserts(fake: FakeComputeEngine) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/instances")]


def test_launch_sends_machine_type_accelerators_labels_script_and_spot(gce: FakeComputeEngine) -> None:
    spec = make_spec(hardware={"gpu": "T4", "gpus": 1, "vcpus": 8, "memory_gb": 30}, interruptible=True)
    request = make_request(REGION, run_id="run-gcp-1", spec=spec, interruptible=True, report_token="tok-1")
    handle = provider(gce).launch(request)
    assert handle.provider == "gcp" and handle.region == REGION and handle.run_id == "run-gcp-1"
    assert handle.details["zone"] == "us-central1-a"
    assert handle.console_url and "us-central1-a" in handle.console_url and PROJECT in handle.console_url
    (sent,) = inserts(gce)
    assert sent.query["requestId"] == [request_uuid("run-gcp-1", "us-central1-a")]
    body = sent.body
    assert body["machineType"] == "zones/us-central1-a/machineTypes/n1-standard-8"
    assert body["guestAccelerators"] == [
        {"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}
    ]
    assert body["labels"] == {TAG_JOB: "train-model", TAG_RUN: "run-gcp-1"}
    items = {i["key"]: i["value"] for i in body["metadata"]["items"]}
    assert items["startup-script"].startswith("#!/bin/sh")
    assert "REGION=gcp:us-central1" in items["startup-script"]
    assert "REPORT_TOKEN=tok-1" in items["startup-script"]
    assert items[TAG_RUN] == "run-gcp-1"
    sched = body["scheduling"]
    assert sched["provisioningModel"] == "SPOT" and sched["preemptible"] is True
    assert sched["instanceTerminationAction"] == "DELETE"
    assert sched["terminationTime"] == "2026-11-24T18:15:00Z"  # deadline + 15 min margin
    assert sched["onHostMaintenance"] == "TERMINATE" and sched["automaticRestart"] is False
    assert body.get("serviceAccounts", []) == []  # no credentials on the VM
    assert body["disks"][0]["initializeParams"]["sourceImage"].startswith(
        "projects/ubuntu-os-accelerator-images/"
    )
    # the operation was polled on OUR endpoint until DONE
    waits = [r for r in gce.requests if "/operations/" in r.path]
    assert len(waits) >= 2 and all(r.headers.get("authorization") is None for r in waits)


def test_bundled_gpu_machine_has_no_attachment_and_standard_scheduling(gce: FakeComputeEngine) -> None:
    spec = make_spec(hardware={"gpu": "A100", "gpus": 2, "vcpus": 16, "memory_gb": 100})
    provider(gce).launch(make_request(REGION, run_id="run-a2", spec=spec))
    body = inserts(gce)[0].body
    assert body["machineType"].endswith("/a2-highgpu-2g")
    assert "guestAccelerators" not in body or body["guestAccelerators"] == []
    assert body["scheduling"]["provisioningModel"] == "STANDARD"
    assert "preemptible" not in body["scheduling"]


def test_exhausted_zone_moves_on_then_all_exhausted_is_capacity_error(gce: FakeComputeEngine) -> None:
    gce.exhausted_zones = {"us-central1-a"}
    handle = provider(gce).launch(make_request(REGION, run_id="run-zones"))
    assert handle.details["zone"] == "us-central1-b"
    assert [r.path.split("/")[6] for r in inserts(gce)] == ["us-central1-a", "us-central1-b"]

    gce.exhausted_zones = {"us-central1-a", "us-central1-b", "us-central1-c"}
    with pytest.raises(CapacityError) as info:
        provider(gce).launch(make_request(REGION, run_id="run-full"))
    assert info.value.code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert info.value.region == REGION


def test_quota_exceeded_is_capacity_error(gce: FakeComputeEngine) -> None:
    gce.quota_error = True
    with pytest.raises(CapacityError) as info:
        provider(gce).launch(make_request(REGION, run_id="run-quota"))
    assert info.value.code in ("quotaExceeded", "QUOTA_EXCEEDED")


def test_launch_is_idempotent_by_label_lookup(gce: FakeComputeEngine) -> None:
    first = provider(gce).launch(make_request(REGION, run_id="run-idem"))
    second = provider(gce).launch(make_request(REGION, run_id="run-idem"))
    assert second.instance_id == first.instance_id
    assert len(inserts(gce)) == 1
    assert len(gce.instances) == 1


def test_status_serial_exit_code_terminate_and_managed(gce: FakeComputeEngine) -> None:
    gcp = provider(gce)
    handle = gcp.launch(make_request(REGION, run_id="run-life"))
    assert gcp.status(handle).state is InstanceState.RUNNING
    assert [h.run_id for h in gcp.managed()] == ["run-life"]
    zone, name = handle.details["zone"], handle.instance_id
    gce.instances[(zone, name)]["status"] = "TERMINATED"
    gce.serial[name] = f"boot...\ncarbonshift-bootstrap: the job ended with exit code 4\n{EXIT_MARKER} 4\n"
    status = gcp.status(handle)
    assert status.state is InstanceState.FAILED and status.exit_code == 4
    gce.serial[name] = f"{EXIT_MARKER} 0\n"
    assert gcp.status(handle).state is InstanceState.SUCCEEDED
    gcp.terminate(handle)
    assert gcp.status(handle).state is InstanceState.UNKNOWN
    gcp.terminate(handle)  # already gone: no error
    assert gcp.managed() == []


def test_endpoint_without_project_is_a_clear_error(gce: FakeComputeEngine) -> None:
    gcp = GcpProvider(Settings(gcp_endpoint=gce.url), clock=lambda: NOW)
    with pytest.raises(ProviderError, match="CARBONSHIFT_GCP_PROJECT"):
        gcp.launch(make_request(REGION))


# ---- Spot preemption ------------------------------------------------------------------------------------------
def test_a_preempted_spot_vm_is_failed_as_preempted_not_lost(gce: FakeComputeEngine) -> None:
    """Compute Engine reclaims a Spot VM (a compute.instances.preempted operation, then the VM is deleted):
    status says FAILED, no exit code, 'preempted' - what the scheduler re-plans for an interruptible job
    (Chunks.preempted) - instead of 'instance gone' (lost)."""
    adapter = provider(gce)
    handle = adapter.launch(make_request(REGION, run_id="run-spot", interruptible=True))
    assert handle.details["spot"] is True
    zone = str(handle.details["zone"])
    gce.preempt(zone, handle.instance_id, PROJECT)
    status = adapter.status(handle)
    assert status.state is InstanceState.FAILED and status.exit_code is None, status
    assert "preempted" in status.detail and "compute.instances.preempted" in status.detail
    listed = [r for r in gce.requests if r.method == "GET" and r.path.endswith(f"/zones/{zone}/operations")]
    assert listed and 'operationType = "compute.instances.preempted"' in listed[-1].query["filter"][0]


def test_a_standard_vm_that_is_gone_is_not_taken_for_preempted(gce: FakeComputeEngine) -> None:
    adapter = provider(gce)
    spot = adapter.launch(make_request(REGION, run_id="run-spot-ok", interruptible=True))
    standard = adapter.launch(make_request(REGION, run_id="run-std"))
    assert standard.details["spot"] is False
    for handle in (spot, standard):  # deleted, no preemption operation on either
        gce.instances.pop((str(handle.details["zone"]), handle.instance_id))
        status = adapter.status(handle)
        assert status.state is InstanceState.UNKNOWN and "instance gone" in status.detail, status
    # an operation on another VM is not this one's
    other = adapter.launch(make_request(REGION, run_id="run-spot-other", interruptible=True))
    gce.preempt(str(other.details["zone"]), other.instance_id, PROJECT)
    assert adapter.status(spot).state is InstanceState.UNKNOWN
    assert adapter.status(other).state is InstanceState.FAILED
