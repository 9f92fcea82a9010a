"""`carbonshift submit` and `carbonshift jobs ...` as a user runs them (subprocesses) against a real
server: a job run to completion by the local provider, its log, cancel, JSON output, bad specs, a
missing server, a missing or wrong token."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml

from tests.api.helpers import PY, ApiServer, cli_env, local_spec
from tests.cli.helpers import run_cli
from tests.fakes.http_server import closed_port_url


def _write(tmp: Path, spec: dict[str, object], name: str = "job.yaml") -> Path:
    path = tmp / name
    path.write_text(json.dumps(spec) if name.endswith(".json") else yaml.safe_dump(spec))
    return path


def test_submit_run_to_completion_show_and_logs(api: ApiServer, tmp_path: Path) -> None:
    spec = local_spec("cli-e2e", [PY, "-c", "print('hello from the job')"])
    submitted = run_cli("submit", str(_write(tmp_path, spec)), env=cli_env(api), tmp=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    out = submitted.stdout
    assert out.startswith("submitted job ") and "(cli-e2e)" in out
    assert "plan: local:this-machine" in out and "CO2e" in out
    job_id = out.split()[2]

    job = api.wait_for(job_id, lambda j: j["runs"] and j["runs"][-1]["status"] in {"succeeded", "failed"})
    run = job["runs"][-1]
    assert run["status"] == "succeeded", run

    shown = run_cli("jobs", "show", job_id, env=cli_env(api), tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"job {job_id} (cli-e2e)" in shown.stdout
    assert "plans (1" in shown.stdout and "runs (1):" in shown.stdout
    assert "succeeded" in shown.stdout and "local:this-machine" in shown.stdout

    listed = run_cli("jobs", "list", env=cli_env(api), tmp=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, rule, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["id", "name", "status"] and set(rule) <= {"-", " "}
    assert any(row.startswith(job_id) and "cli-e2e" in row for row in rows)

    logs = run_cli("jobs", "logs", job_id, env=cli_env(api), tmp=tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert "hello from the job" in logs.stdout
    by_run = run_cli("jobs", "logs", job_id[:8], "--run", run["id"], env=cli_env(api), tmp=tmp_path)
    assert by_run.returncode == 0 and "hello from the job" in by_run.stdout


def test_json_output_is_the_servers_json(api: ApiServer, tmp_path: Path) -> None:
    spec = local_spec("cli-json", ["true"], start_in=timedelta(hours=1))
    submitted = run_cli(
        "submit", str(_write(tmp_path, spec, "job.json")), "--format", "json", env=cli_env(api), tmp=tmp_path
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["name"] == "cli-json" and job["plan"] is not None
    listed = json.loads(run_cli("jobs", "list", "--format", "json", env=cli_env(api), tmp=tmp_path).stdout)
    assert job["id"] in [j["id"] for j in listed]
    shown = json.loads(
        run_cli("jobs", "show", job["id"], "--format", "json", env=cli_env(api), tmp=tmp_path).stdout
    )
    assert shown["id"] == job["id"] and shown["spec"]["command"] == ["true"]


def test_cancel_through_the_cli(api: ApiServer, tmp_path: Path) -> None:
    job = api.submit(local_spec("cli-cancel", ["true"], start_in=timedelta(hours=1)))
    result = run_cli("jobs", "cancel", job["id"], env=cli_env(api), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cancelled job {job['id']} (cli-cancel): cancelled"
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["runs"][0]["status"] == "cancelled"


def test_a_rejected_spec_prints_each_field_and_exits_2(api: ApiServer, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: Bad Name\ncommand: []\nduration: 5\n")
    result = run_cli("submit", str(path), env=cli_env(api), tmp=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert f"error: {path}: name: must be 1 to 63 characters" in lines[0]
    assert any(line.startswith(f"error: {path}: command: ") for line in lines)
    assert any(line.startswith(f"error: {path}: duration: ") for line in lines)
    assert result.stdout == ""


def test_unknown_job_and_missing_file_exit_2(api: ApiServer, tmp_path: Path) -> None:
    result = run_cli("jobs", "show", "zzzz-no-such-job", env=cli_env(api), tmp=tmp_path)
    assert result.returncode == 2
    assert "no job 'zzzz-no-such-job'" in result.stderr
    result = run_cli("submit", str(tmp_path / "missing.yaml"), env=cli_env(api), tmp=tmp_path)
    assert result.returncode == 2 and "no such file" in result.stderr


def test_no_server_is_a_clear_message_and_exit_1(tmp_path: Path) -> None:
    url = closed_port_url()
    for args in (
        ["jobs", "list"],
        ["jobs", "show", "x"],
        ["submit", str(_write(tmp_path, local_spec("x", ["true"])))],
    ):
        result = run_cli(*args, "--server", url, tmp=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        assert (
            result.stderr.strip()
            == f"error: no carbonshift server at {url}; start one with `carbonshift serve`"
        )
    result = run_cli("jobs", "list", env={"CARBONSHIFT_SERVER": url}, tmp=tmp_path)
    assert result.returncode == 1 and url in result.stderr


def test_a_missing_or_wrong_token_names_the_variable_never_the_value(api: ApiServer, tmp_path: Path) -> None:
    missing = run_cli("jobs", "list", env={"CARBONSHIFT_SERVER": api.url}, tmp=tmp_path)
    assert missing.returncode == 2
    assert "set CARBONSHIFT_API_TOKEN" in missing.stderr
    wrong = "a-wrong-token-value-1234"
    result = run_cli("jobs", "list", env=cli_env(api, CARBONSHIFT_API_TOKEN=wrong), tmp=tmp_path)
    assert result.returncode == 2
    assert "CARBONSHIFT_API_TOKEN" in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_a_bad_server_url_exits_2(tmp_path: Path) -> None:
    result = run_cli("jobs", "list", "--server", "ftp://example", tmp=tmp_path)
    assert result.returncode == 2 and "--server" in result.stderr
