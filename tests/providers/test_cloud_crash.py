"""kill -9 of a real daemon in the middle of a cloud launch, on each cloud provider's fake (issue 10):
the daemon (tests/scheduler/daemon_main.py, its own process, the providers built from its settings and
talking to the fake over HTTP through the real SDKs) is killed while the fake holds its launch request,
either before the API acted on it or after it made the instance but before the answer went out. A
second daemon then finds the instance by run id: 0 double launches, 0 leaked instances, and the run
settles (its report ends it, its instance is released until the provider confirms it is gone)."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.config import load_settings
from carbonshift.scheduler import RunState, Scheduler
from tests.providers.fakes import Ec2Proxy, FakeArm, FakeComputeEngine, FakeServer, Recorded
from tests.scheduler.daemon_main import PRELOAD, kill9, run_daemon_with_env, stop_process
from tests.scheduler.helpers import hourly, spec, wait_for, window, write_series

# The daemons fork from a server that has imported carbonshift and the clouds' SDKs once (a fresh
# interpreter spent seconds on them at each daemon's first launch: google-cloud-compute alone takes
# 2 s of CPU). The server is one per test session, test_crash.py's daemons fork from it too; when one
# of those started it, it lacks the SDKs and a daemon here imports them itself.
_CTX = multiprocessing.get_context("forkserver")
_PRELOAD = [
    *PRELOAD,
    "carbonshift.providers.gcp",
    "carbonshift.providers.azure",
    "carbonshift.providers.aws",
    "google.cloud.compute_v1",
    "google.auth",
    "google.api_core.exceptions",
    "azure.identity",
    "azure.mgmt.compute",
    "azure.mgmt.network",
    "boto3",
]


@dataclass
class Cloud:
    name: str
    region: str
    fake: FakeServer
    settings: dict[str, Any]
    is_launch: Callable[[Recorded], bool]
    live: Callable[[], int]  # instances that exist (and bill)


def _gcp(gce: FakeComputeEngine) -> Cloud:
    return Cloud(
        "gcp",
        "us-central1",
        gce,
        {"gcp_endpoint": gce.url, "gcp_project": "test-project"},
        lambda rec: rec.method == "POST" and rec.path.endswith("/instances"),
        lambda: len(gce.instances),
    )


def _azure(arm: FakeArm) -> Cloud:
    def is_vm(key: str) -> bool:
        return "/microsoft.compute/virtualmachines/" in key.lower()

    return Cloud(
        "azure",
        "westeurope",
        arm,
        {
            "azure_endpoint": arm.url,
            "azure_subscription_id": "00000000-0000-0000-0000-000000000001",
            "azure_resource_group": "rg-jobs",
        },
        lambda rec: rec.method == "PUT" and is_vm(rec.path),
        lambda: sum(1 for key in arm.resources if is_vm(key)),
    )


def _aws(ec2: Ec2Proxy) -> Cloud:
    import boto3

    def live() -> int:
        client = boto3.client("ec2", region_name="us-east-1", endpoint_url=ec2.url)
        states = ["pending", "running", "stopping", "stopped", "shutting-down"]
        answer = client.describe_instances(Filters=[{"Name": "instance-state-name", "Values": states}])
        return sum(len(r["Instances"]) for r in answer["Reservations"])

    return Cloud(
        "aws",
        "us-east-1",
        ec2,
        {},
        lambda rec: isinstance(rec.body, bytes) and b"Action=RunInstances" in rec.body,
        live,
    )


@pytest.fixture(params=["gcp", "azure", "aws"])
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    made = {"gcp": _gcp, "azure": _azure, "aws": _aws}[request.param](
        request.getfixturevalue({"gcp": "gce", "azure": "arm", "aws": "ec2"}[request.param])
    )
    yield made
    made.fake.hold(None)  # never leave a request held (the EC2 proxy outlives the test)


def daemon_settings(tmp_path: Path, cloud: Cloud) -> dict[str, Any]:
    csv = tmp_path / "lab.csv"
    write_series(csv, hourly(datetime.now(UTC) - timedelta(days=1), 72, lambda h: 300.0))
    return {
        "ukci_enabled": False,
        "cache": {"enabled": False},
        "data_dir": str(tmp_path / "data"),
        "intensity": {"files": {"LAB-ZONE": str(csv)}},
        "locations": [{"provider": cloud.name, "region": cloud.region, "zone": "LAB-ZONE", "country": "ES"}],
        "tracker": {"detect_cloud": False},
        "bootstrap_source": "index",
        "scheduler": {
            "providers": ["local", cloud.name],
            "poll_interval_s": 0.2,
            "standby_poll_s": 0.2,
            "local_tracker": False,
            "cancel_wait_s": 0,
        },
        **cloud.settings,
    }


class Daemon:
    """`daemon_main.run_daemon` in its own process, in this process's environment as it is now (so the
    AWS SDK finds the fake's endpoint), its role lines and its log in files."""

    def __init__(self, tmp_path: Path, name: str, settings: dict[str, Any]) -> None:
        self.out = tmp_path / f"{name}.out"
        self.out.touch()
        _CTX.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
        self.proc = _CTX.Process(
            target=run_daemon_with_env,
            args=(dict(os.environ), str(tmp_path / f"{name}.err"), json.dumps(settings), str(self.out)),
            name=name,
        )
        self.proc.start()

    def wait_active(self) -> None:
        wait_for(lambda: "ROLE active" in self.out.read_text(), 60, f"{self.out.name}: ROLE active")

    def kill9(self) -> None:
        kill9(self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.mark.parametrize("phase", ["before", "after"])
def test_kill_9_mid_launch_launches_once_leaks_nothing_and_settles(
    cloud: Cloud, phase: str, tmp_path: Path
) -> None:
    settings = daemon_settings(tmp_path, cloud)
    client = Scheduler.from_settings(load_settings(None, **settings))  # the API side: never started
    fake = cloud.fake
    fake.hold(cloud.is_launch, phase)
    first = Daemon(tmp_path, "d1", settings)
    second: Daemon | None = None
    try:
        first.wait_active()
        now = datetime.now(UTC)
        job = client.submit(
            spec(
                name="crash-me",
                duration="10m",
                placement={"regions": [f"{cloud.name}:{cloud.region}"]},
                window=window(now, now + timedelta(hours=2)),
            )
        )
        run_id = job.runs[0].id
        assert fake.gated.wait(60), f"no launch reached the {cloud.name} fake"
        first.kill9()  # inside its launch call: the request held before (or after) the API acted on it
        fake.release.set()
        wait_for(lambda: cloud.live() == 1, 60, "the instance the held request makes")
        assert client.get_run(run_id).status is RunState.LAUNCHING

        second = Daemon(tmp_path, "d2", settings)
        second.wait_active()
        wait_for(lambda: client.get_run(run_id).status is RunState.RUNNING, 30, "the run found running")
        run = client.get_run(run_id)
        assert any("recovered after a restart" in e.reason for e in run.events), [
            e.reason for e in run.events
        ]
        launches = [r for r in fake.requests if cloud.is_launch(r)]
        assert len(launches) == 1 and cloud.live() == 1  # 0 double launches

        client.record_report(run_id, client._report_token(run_id), {"exit_code": 0})
        wait_for(lambda: cloud.live() == 0, 30, "the instance released")  # 0 leaked
        wait_for(
            lambda: (client.get_run(run_id).release or {}).get("state") == "done", 30, "the release confirmed"
        )
        done = client.get_run(run_id)
        assert done.status is RunState.SUCCEEDED and done.exit_code == 0
        assert len([r for r in fake.requests if cloud.is_launch(r)]) == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        client.shutdown()


def test_a_killed_daemons_launch_that_arrives_after_the_relaunch_makes_no_second_instance(
    cloud: Cloud, tmp_path: Path
) -> None:
    """The killed daemon's request reaches the API only after the next daemon, finding no instance,
    launched the run again: the relaunch repeats the very same request (the same idempotency key:
    Compute Engine's requestId, Azure's VM name, EC2's ClientToken), so the late one makes nothing new."""
    settings = daemon_settings(tmp_path, cloud)
    client = Scheduler.from_settings(load_settings(None, **settings))
    fake = cloud.fake
    fake.hold(cloud.is_launch, "before")
    first = Daemon(tmp_path, "d1", settings)
    second: Daemon | None = None
    try:
        first.wait_active()
        now = datetime.now(UTC)
        run_id = (
            client.submit(
                spec(
                    name="crash-late",
                    duration="10m",
                    placement={"regions": [f"{cloud.name}:{cloud.region}"]},
                    window=window(now, now + timedelta(hours=2)),
                )
            )
            .runs[0]
            .id
        )
        assert fake.gated.wait(60), f"no launch reached the {cloud.name} fake"
        first.kill9()
        second = Daemon(tmp_path, "d2", settings)
        second.wait_active()
        wait_for(lambda: client.get_run(run_id).status is RunState.RUNNING, 30, "the run relaunched")
        assert cloud.live() == 1
        fake.release.set()  # the killed daemon's request arrives now
        wait_for(lambda: len([r for r in fake.requests if cloud.is_launch(r)]) == 2, 60, "the late request")
        assert cloud.live() == 1, "a second instance for one run"

        client.record_report(run_id, client._report_token(run_id), {"exit_code": 0})
        wait_for(lambda: cloud.live() == 0, 30, "the instance released")
        assert client.get_run(run_id).status is RunState.SUCCEEDED
    finally:
        first.stop()
        if second is not None:
            second.stop()
        client.shutdown()
