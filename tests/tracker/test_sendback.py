"""`carbonshift track --report-url`: the tracker sends its report to the run's report URL with the run's
token (from CARBONSHIFT_REPORT_TOKEN or a file, never argv), retries what may pass, warns on what does
not, and never changes the command's exit code; bad options are refused before anything runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonshift.errors import UserInputError
from carbonshift.tracker.sendback import REPORT_TOKEN_ENV, ReportTarget, send_report, take_report_target
from tests.cli.helpers import run_cli
from tests.fakes.report_receiver import ReportReceiver
from tests.providers.fakes import LOOPBACK

from .helpers import PY, config_file

TOKEN = "tok-Zq8_run-token-value"
RUN = "run-42"
# the job writes the names of its environment: the token's variable must not be among them
DUMP_ENV = (
    "import json, os, sys; json.dump(sorted(os.environ), open(sys.argv[1], 'w')); sys.exit(int(sys.argv[2]))"
)


@pytest.fixture
def receiver() -> Iterator[ReportReceiver]:
    fake = ReportReceiver({RUN: TOKEN})
    yield fake
    fake.close()


def track(
    tmp: Path, *options: str, exit_code: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cfg = config_file(tmp, extra="  report_retry_s: 0.01\n  report_attempts: 3\n")
    return run_cli(
        "--config", str(cfg), "track", "--zone", "TESTZONE", "--output-dir", str(tmp / "out"),
        "--report", str(tmp / "report.json"), *options,
        "--", PY, "-c", DUMP_ENV, str(tmp / "env.json"), str(exit_code),
        env=env, tmp=tmp,
    )  # fmt: skip


def posts(receiver: ReportReceiver) -> list[str]:
    return [r.headers.get("authorization", "") for r in receiver.requests if r.method == "POST"]


def test_the_report_is_posted_with_the_runs_token_from_the_environment(
    receiver: ReportReceiver, tmp_path: Path
) -> None:
    result = track(
        tmp_path, "--report-url", receiver.report_url(RUN), exit_code=3, env={REPORT_TOKEN_ENV: TOKEN}
    )
    assert result.returncode == 3, result.stderr  # the command's, not ours
    (sent,) = receiver.reports(RUN)
    assert sent == json.loads((tmp_path / "report.json").read_text())  # the file is still written
    assert sent["exit_code"] == 3 and sent["schema"] == "carbonshift.track/1"
    assert posts(receiver) == [f"Bearer {TOKEN}"]
    assert f"report sent to {receiver.report_url(RUN)}" in result.stderr
    assert REPORT_TOKEN_ENV not in json.loads((tmp_path / "env.json").read_text())  # not inherited
    assert TOKEN not in result.stderr + result.stdout


def test_a_token_file_and_retries_on_answers_that_may_pass(receiver: ReportReceiver, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    receiver.fail_next = [503, 429]
    result = track(tmp_path, "--report-url", receiver.report_url(RUN), "--report-token-file", str(token_file))
    assert result.returncode == 0, result.stderr
    assert posts(receiver) == [f"Bearer {TOKEN}"] * 3 and len(receiver.reports(RUN)) == 1
    assert "report sent" in result.stderr


def test_a_refusal_is_one_warning_and_the_exit_code_stays(receiver: ReportReceiver, tmp_path: Path) -> None:
    result = track(
        tmp_path,
        "--report-url",
        receiver.report_url(RUN),
        exit_code=5,
        env={REPORT_TOKEN_ENV: "not-the-runs-token"},
    )
    assert result.returncode == 5
    assert len(posts(receiver)) == 1  # a 403 is not retried
    assert "the report was not sent" in result.stderr and "not the run's report token" in result.stderr
    assert "not-the-runs-token" not in result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["exit_code"] == 5

    receiver.fail_next = [503, 503, 503]
    result = track(tmp_path, "--report-url", receiver.report_url(RUN), env={REPORT_TOKEN_ENV: TOKEN})
    assert result.returncode == 0
    assert "after 3 tries" in result.stderr and "503" in result.stderr and TOKEN not in result.stderr


def test_no_server_is_a_warning_after_the_tries(tmp_path: Path) -> None:
    dead = ReportReceiver()
    url = dead.report_url(RUN)
    dead.close()
    result = track(tmp_path, "--report-url", url, exit_code=4, env={REPORT_TOKEN_ENV: TOKEN})
    assert result.returncode == 4
    assert f"the report was not sent to {url} after 3 tries" in result.stderr
    assert (tmp_path / "report.json").exists()


@pytest.mark.parametrize(
    ("options", "env", "words"),
    [
        (("--report-url", "http://127.0.0.1:9/api/v1/runs/r/report"), {}, "CARBONSHIFT_REPORT_TOKEN"),
        (("--report-url", "ftp://host/x"), {REPORT_TOKEN_ENV: TOKEN}, "--report-url"),
        (("--report-url", "https://u:p@host/api/v1/runs/r/report"), {REPORT_TOKEN_ENV: TOKEN}, "credentials"),
        (("--report-token-file", "/nonexistent"), {}, "goes with --report-url"),
        (
            ("--report-url", "https://host/api/v1/runs/r/report", "--report-token-file", "/nonexistent/t"),
            {},
            "cannot read /nonexistent/t",
        ),
    ],
)
def test_bad_report_options_are_refused_before_the_command_runs(
    tmp_path: Path, options: tuple[str, ...], env: dict[str, str], words: str
) -> None:
    result = track(tmp_path, *options, env=env)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert not (tmp_path / "env.json").exists()  # nothing ran
    assert TOKEN not in result.stderr


def test_take_report_target_prefers_the_file_and_always_clears_the_variable(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("from-file\n")
    environ = {REPORT_TOKEN_ENV: "from-env", "OTHER": "x"}
    target = take_report_target("https://h.example/api/v1/runs/r/report", token_file, environ)
    assert (target.token, target.token_source) == ("from-file", f"--report-token-file {token_file}")
    assert environ == {"OTHER": "x"}
    assert "from-file" not in repr(target)
    with pytest.raises(UserInputError, match="spaces or control"):
        take_report_target("https://h.example/r", None, {REPORT_TOKEN_ENV: "a b"})


def test_waits_double_between_tries_and_a_401_names_the_token_source(receiver: ReportReceiver) -> None:
    waits: list[float] = []
    receiver.fail_next = [502, 504, 500]
    target = ReportTarget(receiver.report_url(RUN), TOKEN, REPORT_TOKEN_ENV)
    assert send_report(target, {"exit_code": 0}, attempts=4, retry_s=1.5, sleep=waits.append) is None
    assert waits == [1.5, 3.0, 6.0] and receiver.reports(RUN) == [{"exit_code": 0}]

    receiver.tokens.clear()
    receiver.fail_next = [401]
    problem = send_report(target, {"exit_code": 0}, attempts=4, retry_s=1.5, sleep=waits.append)
    assert problem is not None and "the server rejected the token in CARBONSHIFT_REPORT_TOKEN" in problem
    assert waits == [1.5, 3.0, 6.0] and TOKEN not in problem
    assert target.server == f"http://{LOOPBACK}:{receiver.server.server_address[1]}"
    assert target.path == f"/api/v1/runs/{RUN}/report"
