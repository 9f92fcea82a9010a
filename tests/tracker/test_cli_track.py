"""`carbonshift track` through the real command: streams untouched, exit codes passed through, signals
forwarded with the report still written, bad input refused before anything runs, trackers in parallel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.helpers import REPO, run_cli

from .helpers import PY, config_file


def track(
    tmp: Path, *cmd: str, options: tuple[str, ...] = (), **kwargs: object
) -> subprocess.CompletedProcess[str]:
    cfg = config_file(tmp)
    return run_cli(
        "--config",
        str(cfg),
        "track",
        "--output-dir",
        str(tmp / "out"),
        *options,
        "--",
        *cmd,
        tmp=tmp,
        **kwargs,
    )  # type: ignore[arg-type]


def reports(tmp: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((tmp / "out").glob("*.json"))]


def test_streams_are_the_commands_and_its_exit_code_is_ours(tmp_path: Path) -> None:
    code = "import sys; data = sys.stdin.read(); print(data.upper()); print('to stderr', file=sys.stderr); sys.exit(7)"
    result = subprocess.run(
        [sys.executable, "-m", "carbonshift", "--config", str(config_file(tmp_path)), "track",
         "--output-dir", str(tmp_path / "out"), "--report", str(tmp_path / "r.json"), "--", PY, "-c", code],
        input="hello", capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")},
    )  # fmt: skip
    assert result.returncode == 7
    assert result.stdout == "HELLO\n"  # nothing of ours on stdout
    lines = result.stderr.splitlines()
    assert lines[0] == "to stderr"
    summary = lines[-1]
    assert summary.startswith("carbonshift: ") and "g CO2e at 200 g/kWh (TESTZONE, measured)" in summary
    (report,) = reports(tmp_path)
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert report["exit_code"] == 7 and report["zone"] == "TESTZONE" and report["mean_g_per_kwh"] == 200.0
    assert report["command"] == [PY, "-c", code]
    csv_lines = (tmp_path / "out" / "emissions.csv").read_text().splitlines()
    assert len(csv_lines) == 2 and report["run_id"] in csv_lines[1]


TRAP = """
import signal, sys, time
from pathlib import Path
marker = Path(sys.argv[1])
def on_signal(signum, frame):
    marker.write_text(signal.Signals(signum).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
marker.with_suffix(".ready").write_text("ready")
time.sleep(30)
"""


def start_tracked(tmp: Path, *cmd: str) -> subprocess.Popen[str]:
    cfg = config_file(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "carbonshift", "--config", str(cfg), "track", "--output-dir", str(tmp / "out"), "--", *cmd],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigterm_and_sigint_reach_the_command_and_the_report_is_still_written(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        marker = tmp_path / f"got-{sig.name}"
        proc = start_tracked(tmp_path, PY, "-c", TRAP, str(marker))
        wait_for(marker.with_suffix(".ready"))
        proc.send_signal(sig)  # to carbonshift, not to the command
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, err  # the command's own exit code
        assert marker.read_text() == sig.name
        assert "carbonshift: " in err.splitlines()[-1]
    done = reports(tmp_path)
    assert len(done) == 2 and all(r["exit_code"] == 3 and r["terminated_by"] is None for r in done)


def test_a_command_killed_by_a_signal_exits_128_plus_n(tmp_path: Path) -> None:
    marker = tmp_path / "sleeper"
    proc = start_tracked(
        tmp_path,
        PY,
        "-c",
        f"from pathlib import Path; Path({str(marker)!r}).write_text('x'); import time; time.sleep(30)",
    )
    wait_for(marker)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    (report,) = reports(tmp_path)
    assert report["exit_code"] == 143 and report["terminated_by"] == "SIGTERM"


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = [PY, "-c", f"open({str(marker)!r}, 'w')"]
    result = track(tmp_path, *touch, options=("--region", "aws:nowhere-1"))
    assert result.returncode == 2 and result.stderr.startswith("error: --region: unknown aws region")
    result = track(tmp_path, "no-such-program-xyz")
    assert result.returncode == 127 and "error: no-such-program-xyz: command not found" in result.stderr
    result = track(tmp_path)
    assert result.returncode == 2 and "nothing to run" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_two_trackers_at_once_do_not_wait_for_each_other(tmp_path: Path) -> None:
    marker = tmp_path / "both"
    # each command waits until the other has started: serialised trackers would never finish
    code = (
        "import sys, time; from pathlib import Path; d = Path(sys.argv[1]); d.mkdir(exist_ok=True);"
        "(d / sys.argv[2]).touch(); t = time.monotonic()\n"
        "while len(list(d.iterdir())) < 2 and time.monotonic() - t < 15: time.sleep(0.02)\n"
        "sys.exit(0 if len(list(d.iterdir())) == 2 else 9)"
    )
    procs = [start_tracked(tmp_path, PY, "-c", code, str(marker), str(n)) for n in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    rows = (tmp_path / "out" / "emissions.csv").read_text().splitlines()
    assert len(rows) == 3 and len(reports(tmp_path)) == 2
