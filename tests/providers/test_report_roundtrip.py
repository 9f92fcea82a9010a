"""Launch -> instance -> report, as far as the providers go: a run is launched on moto's EC2, the user
data EC2 stored is run as the "instance" (a sandbox with a stub tracker and the REAL curl), and the
report arrives at a local HTTP endpoint with the run's own token. The scheduler side (a run closed with
planned vs actual) plugs in where the capture server stands."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

from carbonshift.config import Settings
from carbonshift.providers.aws import AwsProvider
from carbonshift.providers.bootstrap import report_url_for
from tests.providers.conftest import NOW, make_request, make_spec
from tests.providers.fakes import Answer, Ec2Proxy, FakeServer, Recorded
from tests.providers.test_bootstrap import run_script

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class ReportSink(FakeServer):
    def route(self, rec: Recorded, raw: bytes) -> Answer:
        if rec.method == "POST" and rec.path.endswith("/report"):
            return Answer(200, {"ok": True})
        return Answer(404, {"error": "no route"})


def test_a_launched_run_reports_back_with_its_token(ec2: Ec2Proxy, tmp_path: Path) -> None:
    sink = ReportSink()
    try:
        url = report_url_for(sink.url, "run-e2e")
        request = make_request(
            "eu-north-1",
            run_id="run-e2e",
            spec=make_spec(command=["python", "train.py", "--lr", "3e-4"]),
            report_url=url,
            report_token="per-run-token-e2e",
        )
        handle = AwsProvider(Settings(), regions=["eu-north-1"], clock=lambda: NOW).launch(request)
        ec2_client: Any = boto3.client("ec2", region_name="eu-north-1")
        raw = ec2_client.describe_instance_attribute(InstanceId=handle.instance_id, Attribute="userData")
        user_data = base64.b64decode(raw["UserData"]["Value"]).decode()

        result = run_script(tmp_path, user_data, stubs=("carbonshift", "poweroff"), STUB_EXIT="0")
        assert result.returncode == 0, result.stderr
        assert "report sent" in result.stdout

        (post,) = [r for r in sink.requests if r.method == "POST"]
        assert post.path == "/api/v1/runs/run-e2e/report"
        assert post.headers["authorization"] == "Bearer per-run-token-e2e"
        assert post.headers["content-type"] == "application/json"
        assert post.body == {"exit_code": 0, "kg_co2e": 0.001}
        argv = (tmp_path / "carbonshift.argv").read_bytes().decode().split("\0")[:-1]
        assert argv[argv.index("--") + 1 :] == ["python", "train.py", "--lr", "3e-4"]
        assert argv[argv.index("--region") + 1] == "aws:eu-north-1"
        assert (tmp_path / "poweroff.called").exists()
        assert json.loads((tmp_path / "state" / "report.json").read_text())["exit_code"] == 0
    finally:
        sink.close()
