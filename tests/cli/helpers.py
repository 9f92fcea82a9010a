"""Run the real `carbonshift` command in a subprocess, with an isolated environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, tmp: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    if tmp is not None:
        base["CARBONSHIFT_CACHE__PATH"] = str(tmp / "cache.sqlite")
        base["CARBONSHIFT_DATA_DIR"] = str(tmp / "data")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "carbonshift", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str, **kwargs: Any) -> Any:
    result = run_cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
