"""`carbonshift serve` as a process: the loopback-without-token rule, start-up on a free port, one
daemon per SQLite database, and a clean stop on SIGTERM and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.helpers import TOKEN, config_file
from tests.cli.helpers import REPO, run_cli

ANNOUNCE = re.compile(r"carbonshift serving on (http://\S+)")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env["CARBONSHIFT_CACHE__PATH"] = str(tmp / "cache.sqlite")
    env.update(extra)
    return env


class Served:
    """`carbonshift serve` in a subprocess; `url` once it has announced itself."""

    def __init__(self, tmp: Path, *args: str, settings: dict[str, Any] | None = None, **env: str) -> None:
        """`settings`: more config (see helpers.config_file); `env`: more environment variables."""
        cmd = [
            sys.executable,
            "-m",
            "carbonshift",
            "--config",
            str(config_file(tmp, **(settings or {}))),
            "serve",
            "--port",
            "0",
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=_env(tmp, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._announced = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = ANNOUNCE.search(line)
            if match:
                self.url = match.group(1)
                self._announced.set()

    def wait_announced(self, timeout: float = 30) -> str:
        if not self._announced.wait(timeout):
            self.proc.kill()
            raise AssertionError("serve did not start:\n" + "".join(self.lines))
        return self.url

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def stderr(self) -> str:
        time.sleep(0.1)  # let the reader thread catch the last lines
        return "".join(self.lines)


def test_refuses_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        result = run_cli(
            "--config", str(config_file(tmp_path)), "serve", "--host", host, "--port", "0", tmp=tmp_path
        )
        assert result.returncode == 2, (host, result.stderr)
        assert f"refusing to listen on {host} without an API token" in result.stderr
        assert "CARBONSHIFT_API_TOKEN" in result.stderr
    result = run_cli(
        "serve", "--host", "0.0.0.0", env={"CARBONSHIFT_API_TOKEN": "  "}, tmp=tmp_path
    )  # an empty token is no token
    assert result.returncode == 2 and "empty" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly(tmp_path: Path, sig: int) -> None:
    served = Served(tmp_path, "--log-level", "warning", CARBONSHIFT_API_TOKEN=TOKEN)
    try:
        url = served.wait_announced()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
        assert requests.get(url + "/api/v1/jobs", timeout=10).status_code == 401
        ok = requests.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert ok.status_code == 200 and ok.json() == {"jobs": [], "next_cursor": None}
    finally:
        code = served.stop(sig)
    err = served.stderr()
    assert code == 0, err
    assert "carbonshift: stopped" in err
    assert "Traceback" not in err and TOKEN not in err


def test_a_second_daemon_on_the_same_sqlite_database_refuses_to_start(tmp_path: Path) -> None:
    first = Served(tmp_path, "--log-level", "warning")
    try:
        first.wait_announced()
        second = run_cli(
            "--config", str(config_file(tmp_path)), "serve", "--port", "0", tmp=tmp_path, timeout=60
        )
        assert second.returncode == 1, second.stderr
        assert second.stderr.splitlines()[-1].startswith(
            "error: another carbonshift daemon is already running"
        )
        assert "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0


def test_a_busy_port_is_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = run_cli("--config", str(config_file(tmp_path)), "serve", "--port", str(port), tmp=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
