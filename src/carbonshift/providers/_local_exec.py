"""The supervisor of one local run, started by `LocalProvider` as `python _local_exec.py RUN_DIR -- CMD...`
in a session of its own, so it outlives the daemon that started it.

It is run by file path (not `-m`) so it imports nothing of carbonshift and starts in milliseconds. It
writes `pid.json` first (so a restarted daemon finds the run even if the daemon died before recording
the launch), starts the command in its own process group, and when the command ends writes
`exit.json` atomically: the exit code survives the daemon too. SIGTERM/SIGINT/SIGHUP are passed to
the command and remembered, so a cancelled run reads as terminated, not failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def _write_atomic(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _create_time(pid: int) -> float | None:
    """The process start time as psutil reports it (for pid-reuse checks), without importing psutil."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: _local_exec.py RUN_DIR -- CMD [ARGS...]", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    command = argv[2:]
    me = os.getpid()
    pid_file = run_dir / "pid.json"
    if not pid_file.exists():
        _write_atomic(pid_file, {"pid": me, "pgid": os.getpgid(0), "create_time": _create_time(me)})
    received: list[int] = []
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"carbonshift: cannot start {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        _write_atomic(run_dir / "exit.json", {"exit_code": 127, "signal": None, "terminated": False})
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    terminated = bool(received) or (run_dir / "terminate.json").exists()
    _write_atomic(
        run_dir / "exit.json",
        {
            "exit_code": code,
            "signal": -code if code < 0 else None,
            "terminated": terminated,
            "ended_at": time.time(),
        },
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
