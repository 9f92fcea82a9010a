"""deploy/systemd/carbonshift.service: parsed as INI and checked for its hardening; `systemd-analyze
verify` and `systemd-analyze security --offline` where systemd-analyze exists (skipped, saying so,
where it does not); and its ExecStart run here with its Environment= and the example EnvironmentFile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.helpers import ENV_EXAMPLE, UNIT, Served, base_env, parse_unit, read_env_file

UNIT_TEXT = UNIT.read_text(encoding="utf-8")
SECTIONS = parse_unit(UNIT_TEXT)
SERVICE = SECTIONS["Service"]
ANALYZE = shutil.which("systemd-analyze")
NO_ANALYZE = "systemd-analyze is not installed here (Debian package systemd); only the INI checks ran"


def _one(key: str) -> str:
    values = SERVICE.get(key, [])
    assert len(values) == 1, f"{key}= set {len(values)} times"
    return values[0]


def _environment() -> dict[str, str]:
    return dict(v.split("=", 1) for v in SERVICE["Environment"])


def test_hardening_keys() -> None:
    assert set(SECTIONS) == {"Unit", "Service", "Install"}
    if "DynamicUser" in SERVICE:
        assert _one("DynamicUser") == "yes"
    else:
        assert _one("User") == "carbonshift", "a dedicated user, or DynamicUser=yes"
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "StateDirectory": "carbonshift",
        "EnvironmentFile": "/etc/carbonshift/carbonshift.env",
        "Restart": "on-failure",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert _one(key) == value, key
    assert SECTIONS["Install"]["WantedBy"] == ["multi-user.target"]


def test_exec_start_serves_with_the_data_dir_in_the_state_directory() -> None:
    argv = _one("ExecStart").split()
    assert Path(argv[0]).name == "carbonshift" and argv[1] == "serve"
    env = _environment()
    assert env["CARBONSHIFT_DATA_DIR"] == "%S/" + _one("StateDirectory")
    assert env["CARBONSHIFT_CACHE__PATH"].startswith("%C/" + _one("CacheDirectory") + "/")
    assert env["CARBONSHIFT_HOST"] == "127.0.0.1", "loopback unless the env file says otherwise"
    assert not [k for k in env if re.search("TOKEN|PASSWORD|SECRET", k)], "secrets go in the EnvironmentFile"
    assert _one("KillMode") == "process", "runs outlive a daemon restart, as with any other daemon"


@pytest.mark.skipif(ANALYZE is None, reason=NO_ANALYZE)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """verify checks every key and value (a bad one is only a warning, so any line about this unit
    fails the test) and that ExecStart's program exists: the unit is copied with ExecStart's program
    changed to this environment's carbonshift, and nothing else."""
    program = Path(sys.executable).parent / "carbonshift"
    assert program.exists()
    copy = tmp_path / "carbonshift.service"
    copy.write_text(
        re.sub(r"^ExecStart=\S+", f"ExecStart={program}", UNIT_TEXT, flags=re.M), encoding="utf-8"
    )
    result = subprocess.run(
        [str(ANALYZE), "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "carbonshift.service" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


@pytest.mark.skipif(ANALYZE is None, reason=NO_ANALYZE)
def test_systemd_analyze_security_rates_it_ok() -> None:
    result = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for carbonshift\.service: ([\d.]+) (\w+)", result.stdout)
    if match is None and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {result.stderr.strip()}")
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout  # 0 best .. 10 worst; systemd calls < 4 "OK"


def test_exec_start_runs_with_the_unit_environment(tmp_path: Path) -> None:
    """ExecStart with the unit's Environment= (%S and %C under tmp) and then the example
    EnvironmentFile, which overrides it, as systemd does: serve starts and /healthz answers."""
    env: dict[str, str] = {}
    for key, value in _environment().items():
        env[key] = value.replace("%S", str(tmp_path / "state")).replace("%C", str(tmp_path / "cache"))
    env.update(read_env_file(ENV_EXAMPLE))
    env["CARBONSHIFT_PORT"] = "0"
    (tmp_path / "state" / "carbonshift").mkdir(parents=True)  # StateDirectory=, made by systemd
    argv = _one("ExecStart").split()
    served = Served(
        [sys.executable, "-m", "carbonshift", *argv[1:]],
        base_env(**env),
        cwd=tmp_path / "state" / "carbonshift",
    )
    try:
        served.url()
        assert served.health()["role"] == "active"
        assert "serving on http://127.0.0.1:" in served.output()
    finally:
        code = served.stop()
    assert code == 0, served.output()
    assert (tmp_path / "state" / "carbonshift" / "carbonshift.db").exists(), (
        "the database in the StateDirectory"
    )
