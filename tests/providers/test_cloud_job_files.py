"""A cloud run can get the user's code and data: a container image, a workdir from object storage,
the spec's env, and an instance identity per provider — through the real SDK clients against the
fakes (moto's EC2, the Compute Engine and Azure fakes), and the bootstrap executed with stub tools.
`serve` refuses cloud providers when runs could only reach a loopback report URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from carbonshift.config import Settings
from carbonshift.config.jobspec import JobSpecError
from carbonshift.providers.aws import AwsProvider
from carbonshift.providers.base import PackageSource
from carbonshift.providers.bootstrap import EXIT_MARKER, render_bootstrap
from tests.cli.helpers import run_cli
from tests.providers.conftest import make_request, make_spec
from tests.providers.fakes import Ec2Proxy, FakeArm, FakeComputeEngine
from tests.providers.test_azure import provider as azure_provider
from tests.providers.test_azure import puts
from tests.providers.test_bootstrap import argv_of, run_script
from tests.providers.test_gcp import provider as gcp_provider

IMAGE = "ghcr.io/acme/train:1.4"
PROFILE = "carbonshift-jobs"
ACCOUNT = "jobs@acme-ml.iam.gserviceaccount.com"
IDENTITY = (
    "/subscriptions/0000/resourceGroups/ml/providers/Microsoft.ManagedIdentity/userAssignedIdentities/jobs"
)

# records its argv, and copies a file into the destination as `aws s3 sync SRC DEST` would
STUB_AWS = """#!/bin/sh
printf '%s\\0' "$@" > "$SANDBOX/aws.argv"
for last in "$@"; do :; done
echo "print('hi')" > "$last/train.py"
exit "${AWS_EXIT:-0}"
"""
STUB_DOCKER = """#!/bin/sh
printf '%s\\0' "$@" >> "$SANDBOX/docker.argv"
exit 0
"""
# the tracker stub: also records where it ran and the attribution it was told to use
STUB_TRACKER = """#!/bin/sh
printf '%s\\0' "$@" > "$SANDBOX/carbonshift.argv"
pwd > "$SANDBOX/carbonshift.cwd"
printf '%s|%s' "${CARBONSHIFT_TRACKER__ATTRIBUTION:-}" "${DATA_DIR:-}" > "$SANDBOX/carbonshift.env"
exit 0
"""


def _spec(tmp_path: Path, **extra: Any) -> Any:
    return make_spec(
        command=["python", "train.py", "$(touch PWNED)"],
        image=IMAGE,
        workdir={"source": "s3://acme-ml/code/v3", "path": str(tmp_path / "work")},
        env={"DATA_DIR": "/data set"},
        hardware={"gpu": "T4", "gpus": 1},
        **extra,
    )


def _script(spec: Any) -> str:
    request = make_request("us-east-1", spec=spec, report_url="https://cs.example/api/v1/runs/r/report")
    return render_bootstrap(request, "aws", package=PackageSource(requirement="carbonshift"))


def test_the_job_runs_in_its_image_in_the_synced_workdir_under_the_tracker(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    extra = {"aws": STUB_AWS, "docker": STUB_DOCKER, "carbonshift": STUB_TRACKER}
    result = run_script(tmp_path, _script(spec), extra=extra)
    assert f"{EXIT_MARKER} 0" in result.stdout, result.stdout + result.stderr
    work = tmp_path / "work"
    sandbox = next(p.parent for p in tmp_path.rglob("aws.argv"))
    assert argv_of(sandbox / "aws.argv")[:2] == ["s3", "sync"]
    assert argv_of(sandbox / "aws.argv")[-2:] == ["s3://acme-ml/code/v3", str(work)]
    assert (work / "train.py").exists()
    assert (sandbox / "carbonshift.cwd").read_text().strip() == str(work)  # the job starts in its workdir
    # the container: the spec's env passed by name, the workdir mounted, every GPU, the image, the argv
    tracked = argv_of(sandbox / "carbonshift.argv")
    job = tracked[tracked.index("--") + 1 :]
    assert job[:3] == ["docker", "run", "--rm"]
    assert job[job.index("-e") : job.index("-e") + 2] == ["-e", "DATA_DIR"]
    assert job[job.index("--gpus") : job.index("--gpus") + 2] == ["--gpus", "all"]
    assert ["-v", f"{work}:{work}", "-w", str(work)] == job[job.index("-v") : job.index("-v") + 4]
    assert job[-4:] == [IMAGE, "python", "train.py", "$(touch PWNED)"]  # one word each, not run
    # the tracker measures the whole machine (a container's processes are not its children), and the
    # spec's env reaches the docker client, which passes it on with -e
    assert (sandbox / "carbonshift.env").read_text() == "machine|/data set"
    assert argv_of(sandbox / "docker.argv")[:2] == ["pull", "--quiet"]
    assert not list(tmp_path.rglob("PWNED"))


def test_a_workdir_that_cannot_be_fetched_runs_nothing(tmp_path: Path) -> None:
    extra = {"aws": STUB_AWS, "docker": STUB_DOCKER, "carbonshift": STUB_TRACKER}
    result = run_script(tmp_path, _script(_spec(tmp_path)), extra=extra, AWS_EXIT="1")
    assert f"{EXIT_MARKER} 126" in result.stdout
    assert "read access" in result.stdout
    assert not list(tmp_path.rglob("carbonshift.argv"))  # the job never started


def test_without_an_image_the_command_runs_on_the_vm_as_before(tmp_path: Path) -> None:
    script = _script(make_spec(command=["python", "train.py"]))
    assert "docker run" not in script.split("# 4.")[1] and "CARBONSHIFT_TRACKER__ATTRIBUTION" not in script


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "Not An Image", "image"),
        ("workdir", {"source": "ftp://x/y"}, "workdir.source"),
        ("workdir", {"source": "https://x.blob.core.windows.net/c/a.tgz?sig=SECRET"}, "workdir.source"),
        ("workdir", {"source": "s3://b/p", "path": "relative"}, "workdir.path"),
    ],
)
def test_bad_image_and_workdir_name_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(JobSpecError) as err:
        make_spec(**{field: value})
    assert message in str(err.value) and "SECRET" not in str(err.value)


# ---- the identity each VM runs as -------------------------------------------------------------------
def test_ec2_instance_gets_the_configured_instance_profile(ec2: Ec2Proxy, moto_server: str) -> None:
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_server)
    iam.create_instance_profile(InstanceProfileName=PROFILE)
    adapter = AwsProvider(Settings(aws_instance_profile=PROFILE), regions=["eu-north-1"])
    request = make_request(
        "eu-north-1", run_id="run-role-1", spec=make_spec(hardware={"vcpus": 2, "memory_gb": 8})
    )
    plan = adapter.plan(request)
    assert plan.body["IamInstanceProfile"] == {"Name": PROFILE}
    assert any(PROFILE in note for note in plan.notes)
    handle = adapter.launch(request)
    client = boto3.client("ec2", region_name="eu-north-1")
    (reservation,) = client.describe_instances(InstanceIds=[handle.instance_id])["Reservations"]
    assert reservation["Instances"][0]["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{PROFILE}")
    arn = "arn:aws:iam::123456789012:instance-profile/ml/jobs"
    by_arn = AwsProvider(Settings(aws_instance_profile=arn), regions=["eu-north-1"]).plan(request)
    assert by_arn.body["IamInstanceProfile"] == {"Arn": arn}


def test_without_a_profile_an_instance_gets_no_credentials(ec2: Ec2Proxy) -> None:
    plan = AwsProvider(Settings(), regions=["eu-north-1"]).plan(make_request("eu-north-1"))
    assert "IamInstanceProfile" not in plan.body


def test_compute_engine_vm_gets_the_configured_service_account(gce: FakeComputeEngine) -> None:
    gcp_provider(gce, gcp_service_account=ACCOUNT).launch(make_request("us-central1", run_id="run-sa-1"))
    (sent,) = [r for r in gce.requests if r.method == "POST" and r.path.endswith("/instances")]
    assert sent.body["serviceAccounts"] == [
        {"email": ACCOUNT, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
    ]


def test_azure_vm_gets_the_configured_managed_identity(arm: FakeArm) -> None:
    azure_provider(arm, azure_identity_id=IDENTITY).launch(make_request("westeurope", run_id="run-mi-1"))
    (vm,) = puts(arm, "virtualMachines")
    assert vm.body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}


@pytest.mark.parametrize(
    ("name", "value"),
    [("aws_instance_profile", "no spaces allowed"), ("gcp_service_account", "someone@gmail.com")],
)
def test_an_identity_that_is_not_a_name_is_refused(name: str, value: str) -> None:
    from carbonshift.config import load_settings
    from carbonshift.errors import UserInputError

    with pytest.raises(UserInputError, match=name):
        load_settings(None, **{name: value})


# ---- the report URL must be reachable from the VM ---------------------------------------------------
def test_serve_refuses_cloud_providers_with_a_loopback_report_url(tmp_path: Path) -> None:
    env = {"CARBONSHIFT_SCHEDULER__PROVIDERS": '["local", "aws"]'}
    refused = run_cli(
        "serve", "--port", "0", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", env=env, tmp=tmp_path
    )
    assert refused.returncode == 2
    assert "scheduler.public_url" in refused.stderr and "aws" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_cloud_example_dry_runs_with_its_image_and_workdir(tmp_path: Path) -> None:
    from tests.providers.conftest import launch_cli

    result = launch_cli(
        "launch", "examples/cloud-train.yaml", "--provider", "aws", "--region", "eu-north-1", "--dry-run",
        "--run-id", "run-example", tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    import json

    script = json.loads(result.stdout)["bootstrap"]
    assert "IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime" in script
    assert "WORKDIR_SOURCE=s3://acme-ml/code/cloud-train" in script


def test_the_tracker_on_the_vm_is_told_its_instance_type_and_functional_unit(tmp_path: Path) -> None:
    """It runs with --region (no metadata lookup), so without --instance-type it would charge embodied
    carbon for the VM's own hardware instead of the type's share of its host."""
    spec = make_spec(functional_unit={"name": "epoch", "count": 90}, hardware={"gpu": "L4", "gpus": 1})
    adapter = AwsProvider(Settings(), regions=["us-east-1"])
    plan = adapter.plan(make_request("us-east-1", spec=spec))
    result = run_script(tmp_path, plan.script)
    assert f"{EXIT_MARKER} 0" in result.stdout, result.stdout + result.stderr
    sandbox = next(p.parent for p in tmp_path.rglob("carbonshift.argv"))
    argv = argv_of(sandbox / "carbonshift.argv")
    head = argv[: argv.index("--")]
    assert head[head.index("--instance-type") + 1] == plan.instance_type.name
    assert head[head.index("--functional-unit") + 1] == "epoch=90"
    plain = run_script(
        tmp_path / "plain",
        AwsProvider(Settings(), regions=["us-east-1"]).plan(make_request("us-east-1")).script,
    )
    assert "--functional-unit" not in argv_of(next((tmp_path / "plain").rglob("carbonshift.argv")))
    assert plain.returncode == 0
