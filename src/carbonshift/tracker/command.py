"""Running the wrapped command: stdin, stdout and stderr untouched (inherited), signals passed on,
and its exit status and whole-tree CPU time (wait4 rusage) handed back.

Signals: SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are forwarded to the command. SIGINT and SIGQUIT too,
except when they come from the keyboard: the terminal sends Ctrl-C to the whole foreground process
group, command included, and delivering it twice would cut short the job's own clean-up. That case
is recognised by this process being in the terminal's foreground group (the command shares its group).
The wrapper itself never dies of a forwarded signal: it waits for the command and writes the report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

FORWARDED: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
KEYBOARD: frozenset[signal.Signals] = frozenset({signal.SIGINT, signal.SIGQUIT})


@dataclass(frozen=True, slots=True)
class Finished:
    exit_code: int  # the shell's convention: the command's code, or 128 + N when signal N ended it
    terminated_by: str | None  # e.g. "SIGTERM"
    cpu_s: float  # user + system time of the command and every descendant it waited for


def _keyboard_reaches_child() -> bool:
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def exit_code_of(returncode: int) -> tuple[int, str | None]:
    if returncode < 0:
        try:
            name: str | None = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return 128 - returncode, name
    return returncode, None


def run(
    argv: Sequence[str],
    *,
    on_started: Callable[[int], None] | None = None,
    popen_kwargs: dict[str, Any] | None = None,
) -> Finished:
    """Start `argv`, forward signals while it runs, wait for it. Raises OSError (FileNotFoundError,
    PermissionError) when it cannot be started: nothing ran."""
    proc = subprocess.Popen(list(argv), **(popen_kwargs or {}))
    if on_started is not None:
        on_started(proc.pid)
    previous: dict[signal.Signals, Any] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if sig in KEYBOARD and _keyboard_reaches_child():
            return  # the terminal already delivered it to the command
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)

    if threading.current_thread() is threading.main_thread():
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    try:
        while True:
            try:
                _pid, status, usage = os.wait4(proc.pid, 0)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for other runtimes
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    proc.returncode = os.waitstatus_to_exitcode(status)
    code, name = exit_code_of(proc.returncode)
    return Finished(code, name, usage.ru_utime + usage.ru_stime)
