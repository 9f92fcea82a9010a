"""`carbonshift plan SPEC` loads only what planning needs (issue 13: a cold plan under 0.5 s).

Structural, not timed: the command runs in a fresh interpreter and the test reads `sys.modules`
afterwards. A module on the list below costs tens to hundreds of milliseconds of start-up, and none of
them has anything to do with planning one spec offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import REPO

# the server stack, the database, cloud SDKs, plotting, the daemon's timers, the tracker; `requests`,
# which only a live source that is actually asked needs (none is switched on here); and what
# pydantic-settings brought along before config/environment.py read the environment (asyncio, dotenv)
NOT_FOR_PLANNING = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "apscheduler",
    "jinja2",
    "boto3",
    "google",
    "azure",
    "kubernetes",
    "matplotlib",
    "psutil",
    "requests",
    "pydantic_settings",
    "asyncio",
    "dotenv",
)

_PROBE = """
import json, os, sys
sys.argv = ["carbonshift", *json.loads(sys.argv[1])]
from carbonshift.cli.app import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted({m.split(".")[0] for m in sys.modules})
commands = sorted(m for m in sys.modules if m.startswith("carbonshift.cli."))
blas = os.environ.get("OPENBLAS_NUM_THREADS")
print(json.dumps({"code": code, "loaded": loaded, "cli": commands, "blas": blas}), file=sys.stderr)
"""


def _run(args: list[str], tmp: Path, **extra_env: str) -> tuple[str, dict[str, object]]:
    blas = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_") and k not in blas}
    env.update(extra_env)
    env["CARBONSHIFT_CACHE__PATH"] = str(tmp / "cache.sqlite")
    env["CARBONSHIFT_DATA_DIR"] = str(tmp / "data")
    env["CARBONSHIFT_UKCI_ENABLED"] = "false"  # the one live source on by default: offline here
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    probe = json.loads(result.stderr.strip().splitlines()[-1])
    return result.stdout, probe


def test_planning_a_spec_imports_no_server_database_sdk_or_plotting(tmp_path: Path) -> None:
    args = ["plan", "examples/resnet-finetune.yaml", "--now", "2026-11-24T18:00Z", "--format", "json"]
    stdout, probe = _run(args, tmp_path)
    assert probe["code"] == 0
    assert json.loads(stdout)["options"], "the plan itself must still come out"
    loaded = set(probe["loaded"])  # type: ignore[arg-type]
    assert "numpy" in loaded  # the probe sees what the command imported (planning is vectorised)
    assert sorted(loaded.intersection(NOT_FOR_PLANNING)) == []
    assert "carbonshift.cli.serve" not in probe["cli"]  # type: ignore[operator]
    # numpy loaded with one OpenBLAS thread, and the variable that asked for it is gone again
    assert probe["blas"] is None


def test_a_blas_thread_count_the_user_set_is_kept(tmp_path: Path) -> None:
    args = ["plan", "examples/resnet-finetune.yaml", "--now", "2026-11-24T18:00Z", "--format", "json"]
    _, probe = _run(args, tmp_path, OPENBLAS_NUM_THREADS="2")
    assert probe["code"] == 0 and probe["blas"] == "2"


def test_version_alone_loads_no_command(tmp_path: Path) -> None:
    stdout, probe = _run(["--version"], tmp_path)
    assert probe["code"] == 0
    assert stdout.startswith("carbonshift ")
    assert probe["cli"] == ["carbonshift.cli.app", "carbonshift.cli.commands", "carbonshift.cli.context"]
    loaded = set(probe["loaded"])  # type: ignore[arg-type]
    assert sorted(loaded.intersection(NOT_FOR_PLANNING)) == []
