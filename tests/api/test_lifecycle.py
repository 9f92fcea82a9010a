"""Runs through the API with the local provider: a running job cancelled (stopped, not just marked),
and a launched run's tracker reporting back with its own per-run token."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonshift.providers.base import Handle, LaunchRequest
from carbonshift.providers.local import LocalProvider
from tests.api.helpers import PY, ApiServer, local_spec, start_server


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cancelling_a_running_job_stops_it(api: ApiServer) -> None:
    job = api.submit(local_spec("long-runner", [PY, "-c", "import time; time.sleep(120)"]))
    api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] == "running")
    response = api.request("DELETE", f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    run = api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] == "cancelled", timeout=20)["runs"][-1]
    assert run["ended_at"] is not None
    pid = int(str(run["instance_id"]).removeprefix("pid:"))
    deadline = time.monotonic() + 10
    while _alive(pid):  # stopped, not just marked: the process is gone (or a zombie nobody waits on)
        assert time.monotonic() < deadline, f"pid {pid} still running after cancel"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class RecordingLocal(LocalProvider):
    """The local provider, remembering the report token each launch was given (as a remote tracker
    would receive it)."""

    tokens: dict[str, str]

    def launch(self, request: LaunchRequest) -> Handle:
        assert request.report_token
        self.tokens[request.run_id] = request.report_token
        return super().launch(request)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[tuple[ApiServer, RecordingLocal]]:
    from tests.api.helpers import api_settings

    settings = api_settings(tmp_path)
    provider = RecordingLocal(
        settings.resolved_data_dir() / "scheduler" / "runs", settings=settings, use_tracker=False
    )
    provider.tokens = {}
    server = start_server(tmp_path, providers={"local": provider})
    try:
        yield server, provider
    finally:
        server.stop()


def test_a_run_reports_back_with_its_own_token(recording: tuple[ApiServer, RecordingLocal]) -> None:
    api, provider = recording
    job = api.submit(local_spec("reporter", ["true"]))
    done = api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] in {"succeeded", "failed"})
    run_id = done["runs"][-1]["id"]
    token = provider.tokens[run_id]
    report: dict[str, Any] = {"exit_code": 0, "kg_co2e": 0.00123, "energy_kwh": 0.01, "duration_s": 1.0}
    # the run's token alone: no API token needed (a remote job never holds the API token)
    response = api.session.post(
        f"{api.url}/api/v1/runs/{run_id}/report",
        json=report,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["id"] == run_id and run["actual"]["kg_co2e"] == 0.00123
    assert run["actual"]["source"] == "remote"
    assert token not in response.text
    shown = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert shown["runs"][-1]["actual"]["kg_co2e"] == 0.00123
    # a run that does not exist
    other = api.session.post(
        f"{api.url}/api/v1/runs/no-such-run/report",
        json=report,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert other.status_code == 404


def test_a_run_downloads_the_daemons_own_wheel_with_its_token(
    recording: tuple[ApiServer, RecordingLocal], tmp_path: Path
) -> None:
    """What a cloud instance's bootstrap fetches by default: the wheel of the version the daemon runs,
    to the run's own token only, with the sha256 the bootstrap was made with."""
    import hashlib

    from carbonshift.providers.selfwheel import own_wheel

    api, provider = recording
    job = api.submit(local_spec("wheel-fetcher", ["true"]))
    done = api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] in {"succeeded", "failed"})
    run_id = done["runs"][-1]["id"]
    token = provider.tokens[run_id]
    own = own_wheel(tmp_path / "expected")
    path = f"{api.url}/api/v1/runs/{run_id}/wheel/{own.filename}"
    got = api.session.get(path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == own.sha256  # the hash the bootstrap checks
    assert api.session.get(path, timeout=10).status_code == 401  # the API token alone is no run token
    wrong = api.session.get(path, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 403
    other = api.session.get(
        f"{api.url}/api/v1/runs/{run_id}/wheel/evil-9.9-py3-none-any.whl",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert other.status_code == 404
