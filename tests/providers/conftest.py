"""Fixtures for the provider adapters: moto's EC2 server (behind a proxy that can answer capacity
errors), the Compute Engine and ARM fakes, and job specs. Everything binds 127.0.0.1."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carbonshift.config.jobspec import JobSpec, parse_jobspec
from carbonshift.providers.base import LaunchRequest
from tests.providers.fakes import Ec2Proxy, FakeArm, FakeComputeEngine
from tests.providers.kube_fake import FakeKubernetes

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _bootstrap_from_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapters' tests launch without a daemon, so the default package source (the daemon's own
    wheel) has nothing to serve it: they install from the index, as configured. The package sources
    themselves are tested in test_package_source.py."""
    monkeypatch.setenv("CARBONSHIFT_BOOTSTRAP_SOURCE", "index")


def make_spec(**overrides: Any) -> JobSpec:
    data: dict[str, Any] = {"name": "train-model", "command": ["python", "train.py"], "duration": "1h"}
    data.update(overrides)
    return parse_jobspec(data)


def make_request(region: str, run_id: str = "run-0001", **kwargs: Any) -> LaunchRequest:
    spec = kwargs.pop("spec", None) or make_spec()
    return LaunchRequest(run_id=run_id, spec=spec, region=region, deadline=NOW + timedelta(hours=6), **kwargs)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def _ec2_proxy(moto_server: str) -> Iterator[Ec2Proxy]:
    proxy = Ec2Proxy(moto_server)
    yield proxy
    proxy.close()


@pytest.fixture
def ec2(moto_server: str, _ec2_proxy: Ec2Proxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Ec2Proxy:
    """A clean moto EC2 behind the proxy, with boto3 pointed at it through AWS_ENDPOINT_URL_EC2."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10)
    _ec2_proxy.refuse.clear()
    _ec2_proxy.refuse_regions.clear()
    _ec2_proxy.client_tokens.clear()
    _ec2_proxy.requests.clear()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", _ec2_proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-access-key-do-not-leak")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return _ec2_proxy


@pytest.fixture
def gce() -> Iterator[FakeComputeEngine]:
    fake = FakeComputeEngine()
    yield fake
    fake.close()


@pytest.fixture
def arm() -> Iterator[FakeArm]:
    fake = FakeArm()
    yield fake
    fake.close()


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake Kubernetes API with the namespaces the Kubernetes tests use."""
    fake = FakeKubernetes(namespaces=("default", "ml"))
    yield fake
    fake.close()


def launch_cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """`carbonshift ...` as a user runs it, installing from the index (no daemon to serve a wheel)."""
    from tests.cli.helpers import run_cli

    return run_cli(*args, env={"CARBONSHIFT_BOOTSTRAP_SOURCE": "index", **(env or {})}, **kwargs)
