"""The public view of a launch plan (`LaunchPlan.public()`, `launch --dry-run`) never holds the run's
report token or a generated password, not even encoded (issue 10, defect 8: Azure's customData is the
bootstrap in base64, which a text replacement does not reach)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonshift.config import Settings
from carbonshift.providers.aws import AwsProvider
from carbonshift.providers.azure import AzureProvider
from carbonshift.providers.bootstrap import TOKEN_PLACEHOLDER
from carbonshift.providers.cloud import CloudProvider
from carbonshift.providers.gcp import GcpProvider
from tests.providers.conftest import NOW, launch_cli, make_request, make_spec

TOKEN = "tok-per-run-SECRET-9f8e7d"
REGIONS = {"aws": "us-east-1", "gcp": "us-central1", "azure": "westeurope"}
_B64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def decoded(text: str) -> Iterator[str]:
    """Every base64 (standard or URL-safe) run in `text`, decoded as far as it decodes."""
    for match in _B64.finditer(text):
        word = match.group(0)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            padded = word + "=" * (-len(word) % 4)
            with contextlib.suppress(binascii.Error, ValueError):
                yield decode(padded).decode("utf-8", "replace")


def assert_absent(view: Any, *secrets: str) -> None:
    for text in strings(view):
        for secret in secrets:
            assert secret not in text
            for plain in decoded(text):
                assert secret not in plain, f"found base64-encoded in {text[:40]!r}..."


def adapter(provider: str) -> CloudProvider:
    classes: dict[str, type[CloudProvider]] = {"aws": AwsProvider, "gcp": GcpProvider, "azure": AzureProvider}
    return classes[provider](Settings(gcp_project="p", azure_subscription_id="s"), clock=lambda: NOW)


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_the_public_view_holds_no_token_even_encoded(provider: str) -> None:
    request = make_request(
        REGIONS[provider],
        run_id="run-pub-1",
        report_token=TOKEN,
        report_url="https://sched.example/api/v1/runs/run-pub-1/report",
    )
    plan = adapter(provider).plan(request)
    assert TOKEN in plan.script  # the real plan has it: the instance needs it
    view = plan.public()
    assert_absent(view, TOKEN, *plan.hidden)
    assert_absent(json.loads(json.dumps(view)), TOKEN, *plan.hidden)
    assert TOKEN_PLACEHOLDER in view["bootstrap"]


def test_azure_custom_data_shows_the_redacted_bootstrap_and_sends_the_real_one() -> None:
    request = make_request(REGIONS["azure"], run_id="run-pub-2", report_token=TOKEN)
    plan = adapter("azure").plan(request)
    sent = plan.body["virtual_machine"]["body"]["properties"]["osProfile"]["customData"]
    assert base64.b64decode(sent).decode() == plan.script  # the VM still gets the real script
    shown = plan.public()["request"]["virtual_machine"]["body"]["properties"]["osProfile"]
    assert base64.b64decode(shown["customData"]).decode() == plan.public()["bootstrap"]
    assert "adminPassword" in shown and shown["adminPassword"] not in plan.hidden


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_the_public_view_with_a_spec_env_still_holds_no_token(provider: str) -> None:
    spec = make_spec(env={"MODEL": "resnet", "NOTE": "tok-per-run-SECRET-9f8e7d is not a var"})
    request = make_request(REGIONS[provider], run_id="run-pub-3", spec=spec, report_token=TOKEN)
    assert_absent(adapter(provider).plan(request).public(), TOKEN)


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_launch_dry_run_json_holds_no_credential_even_encoded(tmp_path: Path, provider: str) -> None:
    secrets = {
        "AWS_SECRET_ACCESS_KEY": "aws-secret-in-env",
        "AZURE_CLIENT_SECRET": "azure-secret-in-env",
        "CARBONSHIFT_API_TOKEN": "api-token-in-env",
        "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": "em-token-in-env",
        "CARBONSHIFT_WATTTIME_PASSWORD": "wt-password-in-env",
    }
    spec = tmp_path / "job.yaml"
    spec.write_text("name: dry\ncommand: [python, train.py]\nduration: 1h\nenv: {MODEL: resnet}\n")
    result = launch_cli(
        "launch", str(spec), "--provider", provider, "--region", REGIONS[provider], "--dry-run",
        "--run-id", "run-dry", "--now", "2026-11-24T12:00Z", env=secrets, tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert_absent(plan, *secrets.values())
    assert "MODEL=resnet" in plan["bootstrap"]
