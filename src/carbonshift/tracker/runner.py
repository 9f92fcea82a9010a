"""A command under a tracker, start to report: shared by `carbonshift track` and `carbonshift run`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from carbonshift.errors import UserInputError
from carbonshift.tracker import command as command_mod
from carbonshift.tracker.report import TrackReport
from carbonshift.tracker.tracker import Tracker

EXIT_NOT_FOUND = 127  # the shells' codes for "command not found" and "not executable"
EXIT_NOT_EXECUTABLE = 126


class CommandNotRunnable(UserInputError):
    def __init__(self, program: str, problem: str, exit_code: int) -> None:
        super().__init__(program, problem)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    report: TrackReport


def check_runnable(argv: Sequence[str]) -> None:
    """Refuse before anything starts: a typo in the program name is not a run worth reporting."""
    if not argv:
        raise CommandNotRunnable("CMD", "nothing to run; write the command after --", 2)
    program = argv[0]
    if os.sep in program:
        if not os.path.exists(program):
            raise CommandNotRunnable(program, "no such file", EXIT_NOT_FOUND)
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            raise CommandNotRunnable(program, "not executable", EXIT_NOT_EXECUTABLE)
    elif shutil.which(program) is None:
        raise CommandNotRunnable(program, "command not found", EXIT_NOT_FOUND)


def run_tracked(tracker: Tracker, argv: Sequence[str]) -> Outcome:
    check_runnable(argv)
    tracker.start()
    try:
        finished = command_mod.run(argv, on_started=tracker.attach)
    except OSError as exc:
        tracker.abort()
        code = EXIT_NOT_EXECUTABLE if isinstance(exc, PermissionError) else EXIT_NOT_FOUND
        raise CommandNotRunnable(argv[0], exc.strerror or str(exc), code) from None
    report = tracker.stop(
        finished.exit_code, final_job_cpu_s=finished.cpu_s, terminated_by=finished.terminated_by
    )
    return Outcome(finished.exit_code, report)
