"""The daemon launches the hardware alternative its plan chose on EC2 (issue 14), through the real
adapter against moto: the spec's own 8x A100 for 8 h against 8x H100 for 4 h 45 min, ranked by total kg
CO2e over three regions (README, "Choosing hardware"). The H100 in eu-north-1 wins; refused there for
capacity, the run falls back to the H100 in us-west-2, so the instance EC2 starts is the H100 type, and
the run's latest start follows the H100's runtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from carbonshift.cli.jobs import render_job
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.providers.aws import AwsProvider
from carbonshift.scheduler import Scheduler
from tests.providers.fakes import Ec2Proxy

START = datetime(2030, 3, 5, 0, 0, tzinfo=UTC)


def test_the_scheduler_launches_the_chosen_alternative_on_ec2(ec2: Ec2Proxy, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        data_dir=str(tmp_path / "data"),
        tracker={"detect_cloud": False, "codecarbon_csv": False},
        scheduler={"poll_interval_s": 3600, "replan_interval_s": 1800, "replan_before_start_s": 0},
    )
    clock = FixedClock(START)
    aws = AwsProvider(settings, regions=["us-east-1", "us-west-2", "eu-north-1"], clock=clock.now)
    sched: Any = Scheduler.from_settings(settings, clock=clock, providers={"aws": aws})
    spec = parse_jobspec(
        {
            "name": "train-llm",
            "command": ["python", "train.py"],
            "duration": "8h",
            "hardware": {"gpu": "A100", "gpus": 8, "vcpus": 96, "memory_gb": 1152},
            "hardware_options": [
                {"gpu": "H100", "gpus": 8, "vcpus": 192, "memory_gb": 2048, "duration": "4h45m"}
            ],
            "placement": {
                "providers": ["aws"],
                "regions": ["aws:us-east-1", "aws:us-west-2", "aws:eu-north-1"],
            },
            # the window leaves the H100 run time to start late, where the A100 run could not
            "window": {"earliest": START.isoformat(), "deadline": (START + timedelta(hours=9)).isoformat()},
        }
    )
    sched.start(background=False)
    try:
        job = sched.submit(spec)
        run = job.runs[0]
        assert (run.provider, run.region) == ("aws", "eu-north-1")  # Sweden's grid, on the H100
        hardware = run.planned["hardware"]
        assert hardware["option"] == 1 and hardware["instance_type"] == "p5.48xlarge"
        assert run.planned_end - run.planned_start == timedelta(hours=4, minutes=45)
        # eu-north-1 offers no 8x A100 type: no option runs the spec's own hardware there
        options = [(o["region"], o["hardware"]["option"]) for o in job.plans[0].options]
        assert ("eu-north-1", 1) in options and ("eu-north-1", 0) not in options

        ec2.refuse_regions["eu-north-1"] = "InsufficientInstanceCapacity"
        clock.advance(3 * 3600)  # 03:00: too late for the A100's 8 h, in time for the H100's 4 h 45
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert str(run.status.value) == "running", run.events[-1].reason
        # the next-best option, on the same hardware: the H100 in us-west-2
        assert run.region == "us-west-2" and run.planned["hardware"]["option"] == 1
        assert [r["code"] for r in run.refusals] == ["InsufficientInstanceCapacity"]
        client: Any = boto3.client("ec2", region_name="us-west-2")
        found = client.describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"][0]
        assert found["InstanceType"] == "p5.48xlarge"
        tags = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
        assert run.id in tags.values()
        shown = render_job(sched.get_job(job.id).to_dict())
        assert f"run {run.id}: hardware 8x H100 4h45m (hardware_options[0], p5.48xlarge)" in shown
    finally:
        sched.shutdown()
