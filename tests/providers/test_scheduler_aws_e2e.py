"""End to end: the scheduler plans a spec onto AWS, launches it on moto's EC2 through the real adapter
(the best region refuses for capacity first, so the plan's next option is taken and the refusal is
recorded), and the "instance" — the user data EC2 stored, run in a sandbox with a stub tracker and the
real curl — posts its report with its per-run token to an endpoint that hands it to the scheduler,
which closes the run with planned vs actual."""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.providers.aws import AwsProvider
from tests.providers.fakes import Answer, Ec2Proxy, FakeServer, Recorded
from tests.providers.test_bootstrap import run_script

core = pytest.importorskip("carbonshift.scheduler.core", reason="needs the scheduler core")
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

START = datetime(2030, 3, 5, 0, 0, tzinfo=UTC)


class ReportRoute(FakeServer):
    """Stands in for the HTTP API's POST /api/v1/runs/{run_id}/report: body and bearer token go to
    `Scheduler.record_report`, exactly what the API route does."""

    scheduler: Any = None

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        parts = rec.path.strip("/").split("/")
        if rec.method != "POST" or parts[:3] != ["api", "v1", "runs"] or parts[-1] != "report":
            return Answer(404, {"error": "no route"})
        token = rec.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            view = self.scheduler.record_report(parts[3], token, rec.body)
        except PermissionError:
            return Answer(401, {"error": "wrong token"})
        return Answer(200, {"run": view.id})


def test_scheduler_to_aws_to_report(ec2: Ec2Proxy, tmp_path: Path) -> None:
    api = ReportRoute()
    sched: Any = None
    try:
        settings = load_settings(
            None,
            ukci_enabled=False,
            cache={"enabled": False},
            data_dir=str(tmp_path / "data"),
            tracker={"detect_cloud": False, "codecarbon_csv": False},
            scheduler={
                "poll_interval_s": 3600,
                "replan_interval_s": 1800,
                "replan_before_start_s": 0,
                "report_url": api.url + "/api/v1/runs/{run_id}/report",
            },
        )
        clock = FixedClock(START)
        aws = AwsProvider(settings, regions=["eu-north-1", "eu-west-1"], clock=clock.now)
        sched = core.Scheduler.from_settings(settings, clock=clock, providers={"aws": aws})
        api.scheduler = sched
        spec = parse_jobspec(
            {
                "name": "e2e-train",
                "command": ["python", "train.py", "--epochs", "1"],
                "duration": "1h",
                "hardware": {"vcpus": 2, "memory_gb": 8},
                "interruptible": True,
                "placement": {"providers": ["aws"], "regions": ["aws:eu-north-1", "aws:eu-west-1"]},
            }
        )
        ec2.refuse_regions["eu-north-1"] = "InsufficientInstanceCapacity"
        sched.start(background=False)
        job = sched.submit(spec)
        assert job.runs[0].region == "eu-north-1"  # the plan's best: Sweden's grid is the cleanest
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert str(run.status.value) == "running", run
        assert run.provider == "aws" and run.region == "eu-west-1"  # the next-best option
        assert [r["code"] for r in run.refusals] == ["InsufficientInstanceCapacity"]
        assert run.instance_id and run.instance_id.startswith("i-")
        launched = boto3.client("ec2", region_name="eu-west-1").describe_instances(
            InstanceIds=[run.instance_id]
        )
        instance = launched["Reservations"][0]["Instances"][0]
        assert instance.get("InstanceLifecycle") == "spot"  # an interruptible job runs on spot capacity

        # the instance: what EC2 stored as user data, run as the machine would run it
        client: Any = boto3.client("ec2", region_name="eu-west-1")
        raw = client.describe_instance_attribute(InstanceId=run.instance_id, Attribute="userData")
        user_data = base64.b64decode(raw["UserData"]["Value"]).decode()
        assert f"/api/v1/runs/{run.id}/report" in user_data
        result = run_script(tmp_path / "vm", user_data, stubs=("carbonshift", "poweroff"), STUB_EXIT="0")
        assert result.returncode == 0, result.stderr
        assert "report sent" in result.stdout, result.stdout

        done = sched.get_run(run.id)
        assert str(done.status.value) == "succeeded" and done.exit_code == 0
        metrics = sched.metrics()
        assert metrics["runs_measured"] == 1
        assert metrics["actual_kg_co2e"] == pytest.approx(0.001)  # what the stub tracker reported
        assert metrics["planned_kg_co2e_measured"] > 0  # planned vs actual, like for like
        # the finished run's instance is released (terminated), not left to bill
        state = client.describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"][0]
        assert state["State"]["Name"] in ("shutting-down", "terminated")
        release = sched.get_run(run.id).release  # kept until EC2 confirms the instance is gone
        assert release is not None and release["state"] in ("pending", "done")
        if release["state"] == "pending":  # moto may show shutting-down first: the next tick confirms
            clock.advance(3600)
            sched.tick()
            release = sched.get_run(run.id).release
        assert release is not None and release["state"] == "done"
        # a wrong token is refused
        with pytest.raises(PermissionError):
            sched.record_report(run.id, "not-the-token", {"exit_code": 0})
    finally:
        if sched is not None:
            sched.shutdown()
        api.close()
