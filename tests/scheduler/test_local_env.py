"""What a local job sees of the daemon's environment (issue 10, defect 6): an allow-list, the spec's own
`env:` and the run's CARBONSHIFT_RUN_* variables, and never a secret, whether the job runs under the
tracker or not. The tracker and the supervisor above the job are checked too: a job can read the
environment of its parent processes (same user), so they must not hold secrets either."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.providers.base import InstanceState, LaunchRequest
from carbonshift.providers.local import LocalProvider
from carbonshift.scheduler import Scheduler
from tests.scheduler.helpers import make_settings, spec, wait_for, window

pytestmark = pytest.mark.skipif(os.name != "posix", reason="reads /proc-style parent environments")

SECRETS = {
    "CARBONSHIFT_WATTTIME_USERNAME": "wt-user-never-in-a-job",
    "CARBONSHIFT_WATTTIME_PASSWORD": "wt-password-never-in-a-job",
    "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": "em-token-never-in-a-job",
    "CARBONSHIFT_API_TOKEN": "api-token-never-in-a-job",
    "CARBONSHIFT_DB_URL": "sqlite:////tmp/db-url-never-in-a-job.db",
    "CARBONSHIFT_AZURE_SSH_PUBLIC_KEY": "ssh-ed25519 AAAA-key-never-in-a-job",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-never-in-a-job",
    "AWS_ACCESS_KEY_ID": "AKIA-never-in-a-job",
    "AWS_SESSION_TOKEN": "aws-session-never-in-a-job",
    "AZURE_CLIENT_SECRET": "azure-secret-never-in-a-job",
    "AZURE_CLIENT_ID": "azure-client-never-in-a-job",
    "GOOGLE_APPLICATION_CREDENTIALS": "/tmp/gcp-credentials-never-in-a-job.json",
    "GITHUB_TOKEN": "gh-token-never-in-a-job",
    "HTTPS_PROXY": "http://user:proxy-password-never-in-a-job@proxy:3128",
}

# The job: dump its own environment and those of its supervisor chain (tracker, _local_exec.py), but
# not the daemon's (this test process), to a JSON file.
DUMP = """
import json, os, sys
import psutil
out = {"job": dict(os.environ), "parents": []}
for parent in psutil.Process().parents():
    cmdline = " ".join(parent.cmdline())
    if "_local_exec.py" not in cmdline and " track " not in cmdline:
        break
    out["parents"].append({"cmdline": cmdline, "env": parent.environ()})
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


def _job_command(dump: Path) -> list[str]:
    return [sys.executable, "-c", DUMP, str(dump)]


def _set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("TZ", "Europe/Madrid")


def _assert_no_secret(environments: list[dict[str, str]]) -> None:
    for env in environments:
        text = json.dumps(env)
        for name, value in SECRETS.items():
            assert value not in text, f"{name}'s value reached a job's environment"
            assert name not in env
        assert not any(k.startswith(("AWS_", "AZURE_", "GOOGLE_")) for k in env)
        assert {k for k in env if k.upper().startswith("CARBONSHIFT_")} <= {
            "CARBONSHIFT_RUN_ID",
            "CARBONSHIFT_RUN_DIR",
        }


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "untracked"])
def test_a_daemon_launched_local_job_gets_no_secret_from_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracked: bool
) -> None:
    _set_secrets(monkeypatch)
    dump = tmp_path / "env.json"
    settings = make_settings(tmp_path, scheduler={"poll_interval_s": 0.2, "local_tracker": tracked})
    sched = Scheduler.from_settings(settings)
    sched.start()
    try:
        now = datetime.now(UTC)
        job = sched.submit(
            spec(command=_job_command(dump), duration="5m", window=window(now, now + timedelta(hours=1)))
        )
        wait_for(lambda: sched.get_job(job.id).status == "succeeded", timeout=30, what="the job to succeed")
        run = sched.get_job(job.id).runs[0]
        if tracked:  # the tracker still measured the run where the plan said, without any secret
            assert run.actual is not None and run.actual["zone"] == "LAB-ZONE"
    finally:
        sched.shutdown()
    seen = json.loads(dump.read_text())
    job_env: dict[str, str] = seen["job"]
    parents: list[dict[str, Any]] = seen["parents"]
    assert len(parents) == (2 if tracked else 1)  # the tracker (when tracked) and the supervisor
    _assert_no_secret([job_env, *(p["env"] for p in parents)])
    assert job_env["PATH"] == os.environ["PATH"]
    assert job_env["TZ"] == "Europe/Madrid" and job_env["LC_TIME"] == "C"
    assert job_env["CARBONSHIFT_RUN_ID"] == run.id
    assert Path(job_env["CARBONSHIFT_RUN_DIR"]).name == run.id


def test_the_spec_env_reaches_the_job_and_only_allow_listed_names_come_from_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secrets(monkeypatch)
    monkeypatch.setenv("SOME_DAEMON_SETTING", "not for jobs")
    dump = tmp_path / "env.json"
    own = {"MODEL_DIR": "/data/models", "MESSAGE": "it's $HOME; `id`\nline 2", "TZ": "UTC"}
    settings = make_settings(tmp_path)
    provider = LocalProvider(tmp_path / "runs", settings=settings, use_tracker=True)
    request = LaunchRequest(
        run_id="run-env-1",
        spec=spec(command=_job_command(dump), env=own),
        region="lab",
        deadline=datetime.now(UTC) + timedelta(hours=1),
    )
    handle = provider.launch(request)
    wait_for(lambda: provider.status(handle).state is InstanceState.SUCCEEDED, timeout=30, what="the run")
    from carbonshift.providers.local import job_environment

    job_env: dict[str, str] = json.loads(dump.read_text())["job"]
    for name, value in own.items():
        assert job_env[name] == value  # the spec's value wins over the daemon's (TZ)
    assert "SOME_DAEMON_SETTING" not in job_env
    _assert_no_secret([job_env])
    # the job sees the allow-list, its spec's env and the run variables, nothing else from the daemon
    expected = job_environment(request, tmp_path / "runs" / "run-env-1")
    tracker_added = set(job_env) - set(expected)
    assert all(k.startswith(("PYTHON", "LC_CTYPE", "_")) for k in tracker_added), tracker_added


def test_job_environment_is_the_allow_list() -> None:
    from carbonshift.providers.local import job_environment

    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "USER": "u",
        "LOGNAME": "u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp/x",
        **SECRETS,
        "PYTHONPATH": "/daemon/only",
        "LD_PRELOAD": "/evil.so",
        "SSH_AUTH_SOCK": "/tmp/ssh-agent",
    }
    request = LaunchRequest(
        run_id="run-x",
        spec=spec(env={"A": "1"}),
        region="lab",
        deadline=datetime.now(UTC) + timedelta(hours=1),
    )
    env = job_environment(request, Path("/runs/run-x"), base)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "USER": "u",
        "LOGNAME": "u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp/x",
        "A": "1",
        "CARBONSHIFT_RUN_ID": "run-x",
        "CARBONSHIFT_RUN_DIR": str(Path("/runs/run-x")),
    }
