"""The bootstrap script, run for real by /bin/sh in a sandbox directory: stubs for `carbonshift`, `curl`
and `poweroff` on PATH record their argv exactly (NUL-separated), so the tests can prove that hostile
job commands arrive as the very same argv and that nothing in them ever runs as shell code."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.errors import UserInputError
from carbonshift.providers.base import PackageSource
from carbonshift.providers.bootstrap import (
    DEFAULT_PACKAGE,
    EXIT_MARKER,
    TOKEN_PLACEHOLDER,
    command_words,
    redact,
    render_bootstrap,
    report_url_for,
)
from tests.providers.conftest import NOW, make_request, make_spec

pytestmark = pytest.mark.skipif(shutil.which("sh") is None or os.name != "posix", reason="needs a POSIX sh")

HOSTILE_ARGV = [
    "python",
    "-c",
    "print('it''s')",
    "$(touch PWNED_subst)",
    "`touch PWNED_backtick`",
    "a; touch PWNED_semicolon",
    "line1\nline2; touch PWNED_newline",
    "\"double\" 'single' \\ back\\slash",
    "$HOME ${PATH} * ? [a] ~",
    "&& touch PWNED_and || touch PWNED_or | tee PWNED_pipe > PWNED_redirect",
    "-- --report /etc/passwd",
    "",
    " spaces  and\ttabs ",
    "émoji ✓",
]

STUB_CARBONSHIFT = """#!/bin/sh
# records its argv exactly, writes a report where --report says, exits with $STUB_EXIT
printf '%s\\0' "$@" > "$SANDBOX/carbonshift.argv"
report=""
prev=""
for a in "$@"; do
  if [ "$prev" = "--report" ]; then report="$a"; fi
  prev="$a"
done
if [ -n "$report" ]; then printf '{"exit_code": %s, "kg_co2e": 0.001}' "${STUB_EXIT:-0}" > "$report"; fi
exit "${STUB_EXIT:-0}"
"""

STUB_CURL = """#!/bin/sh
printf '%s\\0' "$@" > "$SANDBOX/curl.argv"
for a in "$@"; do
  case "$a" in
    @*) cp "${a#@}" "$SANDBOX/curl.$(basename "${a#@}")" 2>/dev/null ;;
  esac
done
exit "${STUB_CURL_EXIT:-0}"
"""

STUB_POWEROFF = """#!/bin/sh
echo called >> "$SANDBOX/poweroff.called"
"""


def _sandbox(tmp_path: Path, stubs: tuple[str, ...], extra: dict[str, str] | None = None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    texts = {"carbonshift": STUB_CARBONSHIFT, "curl": STUB_CURL, "poweroff": STUB_POWEROFF}
    for name, text in [*((n, texts[n]) for n in stubs), *(extra or {}).items()]:
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "state").mkdir()
    return tmp_path


def run_script(
    tmp_path: Path,
    script: str,
    stubs: tuple[str, ...] = ("carbonshift", "curl", "poweroff"),
    extra: dict[str, str] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run `script` with /bin/sh in a sandbox whose PATH starts with the given stubs (and `extra`
    executables, name -> text)."""
    sandbox = _sandbox(tmp_path, stubs, extra)
    path = sandbox / "bootstrap.sh"
    path.write_text(script)
    environment = {
        "PATH": f"{sandbox / 'bin'}:/usr/bin:/bin",
        "HOME": str(sandbox),
        "SANDBOX": str(sandbox),
        "CARBONSHIFT_STATE_DIR": str(sandbox / "state"),
        **env,
    }
    proc = subprocess.Popen(
        ["/bin/sh", str(path)],
        cwd=sandbox,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the guard's `sleep` is in this group: killed below
    )
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def argv_of(path: Path) -> list[str]:
    data = path.read_bytes().decode("utf-8")
    assert data.endswith("\0")
    return data[:-1].split("\0")


def pwned(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.rglob("PWNED*"))


def render(**kwargs: Any) -> str:
    spec = kwargs.pop("spec", None) or make_spec()
    region = kwargs.pop("region", "eu-north-1")
    package = kwargs.pop("package", None) or PackageSource(requirement=DEFAULT_PACKAGE)
    return render_bootstrap(make_request(region, spec=spec, **kwargs), "aws", package=package)


def test_hostile_argv_reaches_the_tracker_unchanged_and_nothing_runs(tmp_path: Path) -> None:
    script = render(spec=make_spec(command=HOSTILE_ARGV), run_id="run-'$(touch PWNED_runid)'")
    result = run_script(tmp_path, script)
    assert result.returncode == 0, result.stderr
    argv = argv_of(tmp_path / "carbonshift.argv")
    report = str(tmp_path / "state" / "report.json")
    assert argv == ["track", "--region", "aws:eu-north-1", "--report", report, "--", *HOSTILE_ARGV]
    assert pwned(tmp_path) == []
    assert f"{EXIT_MARKER} 0" in result.stdout
    assert (tmp_path / "poweroff.called").exists()


def test_string_command_is_one_argument_to_sh_c(tmp_path: Path) -> None:
    command = "echo start; touch PWNED_a && $(touch PWNED_b) `touch PWNED_c`\n touch PWNED_d 'quoted' \"dq\""
    result = run_script(tmp_path, render(spec=make_spec(command=command)))
    assert result.returncode == 0, result.stderr
    argv = argv_of(tmp_path / "carbonshift.argv")
    assert argv[-3:] == ["sh", "-c", command]
    assert argv[argv.index("--") + 1 :] == ["sh", "-c", command]
    assert pwned(tmp_path) == []  # the stub does not run it, and the bootstrap did not either


def test_report_is_posted_with_the_per_run_token_from_a_header_file(tmp_path: Path) -> None:
    token = "tok-'$(touch PWNED_token)'-secret"
    url = report_url_for("http://127.0.0.1:8765", "run-0001")
    script = render(report_url=url, report_token=token)
    result = run_script(tmp_path, script, STUB_EXIT="3")
    assert result.returncode == 0, result.stderr
    argv = argv_of(tmp_path / "curl.argv")
    assert argv[-1] == "http://127.0.0.1:8765/api/v1/runs/run-0001/report"
    assert "-X" in argv and argv[argv.index("-X") + 1] == "POST"
    assert f"@{tmp_path / 'state' / 'report.json'}" in argv
    assert not any(token in a for a in argv)  # never on a command line (ps would show it)
    headers = (tmp_path / "curl.headers").read_text()
    assert f"Authorization: Bearer {token}\n" in headers
    assert "Content-Type: application/json" in headers
    assert not (tmp_path / "state" / "headers").exists()  # removed after the POST
    assert f"{EXIT_MARKER} 3" in result.stdout
    assert "report sent" in result.stdout
    assert pwned(tmp_path) == []


def test_without_a_report_url_the_report_stays_and_goes_to_the_console(tmp_path: Path) -> None:
    result = run_script(tmp_path, render())
    assert not (tmp_path / "curl.argv").exists()
    assert '{"exit_code": 0, "kg_co2e": 0.001}' in result.stdout
    assert (tmp_path / "state" / "report.json").exists()
    assert (tmp_path / "poweroff.called").exists()


def test_a_failed_post_prints_the_report_instead(tmp_path: Path) -> None:
    script = render(report_url="https://scheduler.example/api/v1/runs/r/report", report_token="t")
    result = run_script(tmp_path, script, STUB_CURL_EXIT="22")
    assert "could not send the report" in result.stdout
    assert '"kg_co2e": 0.001' in result.stdout


def test_the_script_reads_plainly_and_holds_no_other_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-never-in-user-data")
    monkeypatch.setenv("CARBONSHIFT_API_TOKEN", "api-token-never-in-user-data")
    script = render(report_url="https://s.example/api/v1/runs/run-0001/report", report_token="per-run-token")
    assert script.startswith("#!/bin/sh\n")
    assert "aws-secret-never-in-user-data" not in script
    assert "api-token-never-in-user-data" not in script
    assert script.count("per-run-token") == 1  # one assignment, used through "$REPORT_TOKEN"
    assert "timeout --kill-after=60" in script
    shown = redact(script, "per-run-token")
    assert "per-run-token" not in shown and TOKEN_PLACEHOLDER in shown


def test_timeouts_follow_the_deadline_as_the_instance_clock_reads_it(tmp_path: Path) -> None:
    script = render()  # deadline is NOW + 6 h, margin 15 min, guard 10 min later
    assert f"DEADLINE_S={int((NOW + timedelta(hours=6, minutes=15)).timestamp())}" in script
    start = script.index("DEADLINE_S=")
    block = script[start : script.index("\n", script.index("GUARD_S=")) + 1]
    probe = block + 'echo "$JOB_TIMEOUT_S $GUARD_S"\n'
    for booted_at, expected in ((NOW, (22500, 23100)), (NOW + timedelta(hours=6, minutes=14), (60, 660))):
        fake_date = tmp_path / f"bin-{int(booted_at.timestamp())}"
        fake_date.mkdir()
        (fake_date / "date").write_text(f"#!/bin/sh\necho {int(booted_at.timestamp())}\n")
        (fake_date / "date").chmod(0o755)
        out = subprocess.run(
            ["/bin/sh", "-c", probe],
            env={"PATH": f"{fake_date}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.stdout.split() == [str(v) for v in expected], out  # late boot: the time actually left


def test_the_script_is_the_same_whenever_it_is_made() -> None:
    """A relaunch sends the same user data, as EC2's ClientToken idempotency requires."""
    from carbonshift.config import Settings
    from carbonshift.providers.aws import AwsProvider

    request = make_request("eu-north-1", report_url="https://s.example/r", report_token="tok")
    settings = Settings(bootstrap_source="index")
    early = AwsProvider(settings, regions=["eu-north-1"], clock=lambda: NOW).plan(request)
    late = AwsProvider(settings, regions=["eu-north-1"], clock=lambda: NOW + timedelta(hours=3)).plan(request)
    assert early.script == late.script and early.body == late.body


def test_command_words_and_refusals() -> None:
    assert command_words(["a b", "c"]) == "'a b' c"
    assert command_words("echo $HOME") == "sh -c 'echo $HOME'"
    with pytest.raises(UserInputError, match="NUL"):
        command_words(["a\x00b"])
    with pytest.raises(UserInputError, match="report_url"):
        render(report_url="file:///etc/passwd")
    assert report_url_for("https://x/", "a/b c") == "https://x/api/v1/runs/a%2Fb%20c/report"


def test_the_spec_env_reaches_the_job_as_data_and_nothing_else(tmp_path: Path) -> None:
    """The spec's env goes to the job (through `env NAME=value`), values single-quoted: they stay
    data, and they change neither the script's own variables nor where it finds carbonshift."""
    own = {
        "MODEL": "resnet",
        "MSG": 'it\'s $(touch PWNED_env) `touch PWNED_env2`; touch PWNED_env3\nline 2 "dq" \\',
        "EMPTY": "",
        "REPORT_URL": "http://evil.example/steal",  # the script's own variable: untouched
        "PATH": "/nonexistent",  # the job's PATH; carbonshift is still found (resolved before)
    }
    dump = tmp_path / "env.json"
    stub_dir = tmp_path / "envbin"
    stub_dir.mkdir()
    stub = stub_dir / "carbonshift"
    stub.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c 'import json, os; json.dump(dict(os.environ), open({json.dumps(str(dump))}, \"w\"))'\n"
    )
    stub.chmod(0o755)
    url = "https://sched.example/api/v1/runs/run-0001/report"
    script = render(spec=make_spec(env=own), report_url=url, report_token="t")
    result = run_script(tmp_path, script, PATH=f"{stub_dir}:{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    seen = json.loads(dump.read_text())
    for name, value in own.items():
        assert seen[name] == value
    assert pwned(tmp_path) == []
    assert "touch PWNED_env" not in result.stdout  # never run, never echoed as a command
    # no report was written by this stub; the script's REPORT_URL is still its own
    assert "no report was written" in result.stdout
    assert "evil.example" not in script.split("env \\")[0]


def test_no_env_no_env_command() -> None:
    assert "env \\" not in render()
    assert "\n  MODEL=resnet \\\n" in render(spec=make_spec(env={"MODEL": "resnet"}))
