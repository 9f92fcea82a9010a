"""The EC2 adapter with the real boto3 client over HTTP against moto's server (behind a proxy that can
answer EC2 capacity errors, which moto cannot produce)."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest

from carbonshift.config import Settings
from carbonshift.providers.aws import AwsProvider
from carbonshift.providers.base import CapacityError, Handle, InstanceState, ProviderError
from carbonshift.providers.bootstrap import EXIT_MARKER
from carbonshift.providers.common import TAG_JOB, TAG_RUN
from tests.providers.conftest import NOW, make_request, make_spec
from tests.providers.fakes import Ec2Proxy

REGION = "eu-north-1"


def provider(**settings: Any) -> AwsProvider:
    return AwsProvider(Settings(**settings), regions=[REGION, "us-east-1"], clock=lambda: NOW)


def describe(instance_id: str, region: str = REGION) -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=region)
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]  # type: ignore[no-any-return]


def test_launch_tags_type_user_data_and_shutdown_behaviour(ec2: Ec2Proxy) -> None:
    spec = make_spec(hardware={"vcpus": 4, "memory_gb": 16}, command=["python", "train.py", "--epochs=3"])
    request = make_request(
        REGION,
        run_id="run-aws-1",
        spec=spec,
        report_url="https://s.example/api/v1/runs/run-aws-1/report",
        report_token="per-run-tok",
    )
    handle = provider().launch(request)
    assert handle.provider == "aws" and handle.region == REGION and handle.run_id == "run-aws-1"
    assert handle.instance_id.startswith("i-")
    assert handle.console_url and handle.instance_id in handle.console_url
    inst = describe(handle.instance_id)
    assert inst["InstanceType"] == "m5.xlarge"  # smallest with 4 vCPUs and 16 GB
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags[TAG_JOB] == "train-model" and tags[TAG_RUN] == "run-aws-1"
    assert "InstanceLifecycle" not in inst  # on-demand: the spec is not interruptible
    client = boto3.client("ec2", region_name=REGION)
    shutdown = client.describe_instance_attribute(
        InstanceId=handle.instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    raw = client.describe_instance_attribute(InstanceId=handle.instance_id, Attribute="userData")["UserData"][
        "Value"
    ]
    user_data = base64.b64decode(raw).decode()
    assert user_data.startswith("#!/bin/sh")
    assert '--region "$REGION"' in user_data and "REGION=aws:eu-north-1" in user_data
    assert "python train.py --epochs=3" in user_data
    assert "REPORT_TOKEN=per-run-tok" in user_data
    # no cloud credential ever goes into user data
    assert "fake-secret-access-key-do-not-leak" not in user_data and "AKIAFAKE" not in user_data
    image = inst["ImageId"]
    assert image.startswith("resolve:ssm:/aws/service/canonical/ubuntu")


def test_spot_when_interruptible_and_gpu_image(ec2: Ec2Proxy) -> None:
    spec = make_spec(hardware={"gpu": "L4", "gpus": 1, "vcpus": 8, "memory_gb": 32}, interruptible=True)
    request = make_request("us-east-1", run_id="run-spot", spec=spec, interruptible=True)
    handle = provider().launch(request)
    inst = describe(handle.instance_id, "us-east-1")
    assert inst["InstanceType"] == "g6.2xlarge"
    assert inst.get("InstanceLifecycle") == "spot"
    assert "deeplearning" in inst["ImageId"]
    assert handle.details["spot"] is True


def test_image_from_config_region_beats_provider(ec2: Ec2Proxy) -> None:
    settings = {"images": {"aws": "ami-00000000000000001", f"aws:{REGION}": "ami-0000000000000000a"}}
    handle = provider(**settings).launch(make_request(REGION, run_id="run-img"))
    assert describe(handle.instance_id)["ImageId"] == "ami-0000000000000000a"


def test_launch_is_idempotent_by_the_run_tag(ec2: Ec2Proxy) -> None:
    """moto ignores ClientToken: the second launch is only single because the tag lookup finds the first."""
    aws = provider()
    first = aws.launch(make_request(REGION, run_id="run-idem"))
    second = provider().launch(make_request(REGION, run_id="run-idem"))
    assert second.instance_id == first.instance_id
    runs = [r for r in ec2.requests if r.method == "POST"]
    assert sum(1 for r in runs if isinstance(r.body, bytes) and b"Action=RunInstances" in r.body) == 1
    found = aws.find("run-idem", REGION)
    assert found is not None and found.instance_id == first.instance_id
    assert aws.find("run-other", REGION) is None
    client = boto3.client("ec2", region_name=REGION)
    tagged = client.describe_instances(Filters=[{"Name": f"tag:{TAG_RUN}", "Values": ["run-idem"]}])
    assert sum(len(r["Instances"]) for r in tagged["Reservations"]) == 1


def test_client_token_is_derived_from_the_run_id() -> None:
    aws = AwsProvider(Settings(), clock=lambda: NOW)
    a = aws.plan(make_request(REGION, run_id="run-x")).body["ClientToken"]
    b = aws.plan(make_request(REGION, run_id="run-x")).body["ClientToken"]
    c = aws.plan(make_request(REGION, run_id="run-y")).body["ClientToken"]
    assert a == b != c and len(a) <= 64


@pytest.mark.parametrize(
    "code", ["InsufficientInstanceCapacity", "VcpuLimitExceeded", "InstanceLimitExceeded"]
)
def test_capacity_refusals_become_capacity_error(ec2: Ec2Proxy, code: str) -> None:
    ec2.refuse["m5.xlarge"] = code
    with pytest.raises(CapacityError) as info:
        provider().launch(
            make_request(REGION, run_id=f"run-{code}", spec=make_spec(hardware={"vcpus": 4, "memory_gb": 16}))
        )
    assert info.value.code == code
    assert info.value.region == REGION
    assert "fake-secret" not in str(info.value) and "AKIAFAKE" not in str(info.value)
    # the fallback: the scheduler's next option (another type here) launches fine
    handle = provider().launch(
        make_request(
            REGION,
            run_id=f"run-{code}-next",
            instance_type="c5.2xlarge",
            spec=make_spec(hardware={"vcpus": 4, "memory_gb": 16}),
        )
    )
    assert describe(handle.instance_id)["InstanceType"] == "c5.2xlarge"


def test_other_errors_are_provider_errors_without_secrets(ec2: Ec2Proxy) -> None:
    ec2.refuse["m5.xlarge"] = "UnauthorizedOperation"
    with pytest.raises(ProviderError) as info:
        provider().launch(
            make_request(REGION, run_id="run-denied", spec=make_spec(hardware={"vcpus": 4, "memory_gb": 16}))
        )
    assert not isinstance(info.value, CapacityError)
    assert "UnauthorizedOperation" in str(info.value)


def test_status_terminate_and_managed(ec2: Ec2Proxy) -> None:
    aws = provider()
    handle = aws.launch(make_request(REGION, run_id="run-life"))
    other = aws.launch(make_request("us-east-1", run_id="run-life-2"))
    assert aws.status(handle).state in (InstanceState.PENDING, InstanceState.RUNNING)
    managed = {h.run_id: h for h in aws.managed()}
    assert set(managed) == {"run-life", "run-life-2"}
    assert managed["run-life-2"].region == "us-east-1"
    aws.terminate(handle)
    status = aws.status(handle)
    assert status.state is InstanceState.TERMINATED
    aws.terminate(handle)  # again: no error
    assert {h.run_id for h in aws.managed()} == {"run-life-2"}
    gone = Handle("aws", REGION, "run-x", "i-0123456789abcdef0")
    assert aws.status(gone).state is InstanceState.UNKNOWN
    aws.terminate(gone)  # an instance that never existed: no error
    aws.terminate(other)


def test_exit_code_marker_parsing() -> None:
    from carbonshift.providers.cloud import ended_status, exit_code_from_console

    console = f"boot\ncarbonshift-bootstrap: ...\n{EXIT_MARKER} 0\n"
    assert exit_code_from_console(console) == 0
    assert exit_code_from_console(f"{EXIT_MARKER} 127\n{EXIT_MARKER} 2") == 2
    assert exit_code_from_console("nothing here") is None
    assert ended_status(f"{EXIT_MARKER} 0", "x").state is InstanceState.SUCCEEDED
    failed = ended_status(f"{EXIT_MARKER} 1", "x")
    assert failed.state is InstanceState.FAILED and failed.exit_code == 1
    assert ended_status(None, "x").exit_code is None
