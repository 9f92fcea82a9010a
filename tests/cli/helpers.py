"""Run the real `carbonshift` command in a subprocess, with an isolated environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def cli_env(env: dict[str, str] | None = None, tmp: Path | None = None) -> dict[str, str]:
    """This process's environment without any CARBONSHIFT_ setting, with a cache and data directory
    under `tmp`, then `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    if tmp is not None:
        base["CARBONSHIFT_CACHE__PATH"] = str(tmp / "cache.sqlite")
        base["CARBONSHIFT_DATA_DIR"] = str(tmp / "data")
    base.update(env or {})
    return base


def run_cli(
    *args: str, env: dict[str, str] | None = None, tmp: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "carbonshift", *args], env=env, tmp=tmp, timeout=timeout)


def run_python(
    args: list[str], env: dict[str, str] | None = None, tmp: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in the repository, with `cli_env(env, tmp)`."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=cli_env(env, tmp),
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str, **kwargs: Any) -> Any:
    result = run_cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
