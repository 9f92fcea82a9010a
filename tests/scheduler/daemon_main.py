"""A real scheduler daemon in its own process, for the crash tests.

The tests fork it from a multiprocessing forkserver that has imported carbonshift and `PRELOAD` once
(a daemon then starts in a fraction of a second instead of seconds); it also runs as a script:
settings as JSON in CS_TEST_SETTINGS (passed to load_settings), role lines on stdout. A crash mode
makes the daemon kill itself with SIGKILL at a chosen point of launching one job (by name):
`before-launch` (after `launching` was committed, before the provider was asked) or `after-launch`
(after the provider started the run, before `running` was recorded); `pause-in-launch` stops it
(SIGSTOP) inside the launch call instead, for a test to resume later. It writes its role
(`ROLE active`, `ROLE standby`) whenever it changes, `REFUSED <message>` when the lock is taken, and
stops on SIGTERM.
"""

from __future__ import annotations

import json
import logging
import multiprocessing.process
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from carbonshift.config import load_settings
from carbonshift.providers.base import Handle, LaunchRequest
from carbonshift.providers.local import LocalProvider
from carbonshift.scheduler import DaemonLockedError, Scheduler

# What the tests' fork server imports before forking a daemon: a fresh interpreter spends seconds on
# them for each daemon (alembic and mako at its first start). One not installed is skipped.
PRELOAD = [
    "tests.scheduler.daemon_main",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.autogenerate",
    "apscheduler.schedulers.background",
    "apscheduler.executors.pool",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "psycopg",
]


class CrashingLocalProvider(LocalProvider):
    def __init__(self, *args: object, mode: str, job: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.mode = mode
        self.job = job

    def launch(self, request: LaunchRequest) -> Handle:
        if request.spec.name == self.job and self.mode == "before-launch":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # the kill lands asynchronously too: never go on into the launch
        if request.spec.name == self.job and self.mode == "pause-in-launch":
            os.kill(os.getpid(), signal.SIGSTOP)  # a stale leader: frozen inside the provider call
            # a process stops asynchronously (another thread may take the stop first, on a busy
            # machine this thread runs on a while): wait here, so it never goes on into the launch
            # (and its run directory's lock) before it has stopped; after SIGCONT it goes on
            time.sleep(1.0)
        handle = super().launch(request)
        if request.spec.name == self.job and self.mode == "after-launch":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # ...nor record the launch
        return handle


def run_daemon(settings_json: str, role_path: str, crash_mode: str = "", crash_job: str = "") -> None:
    """The daemon: start, report role changes (one line each) to `role_path`, stop on SIGTERM.
    Used as a multiprocessing target (the tests fork it from a preloaded server) and by `main`."""
    out = open(role_path, "a", buffering=1)  # noqa: SIM115
    settings = load_settings(None, **json.loads(settings_json))
    providers = {}
    if crash_mode:
        runs_dir = settings.resolved_data_dir() / "scheduler" / "runs"
        providers["local"] = CrashingLocalProvider(
            runs_dir,
            settings=settings,
            use_tracker=settings.scheduler.local_tracker,
            mode=crash_mode,
            job=crash_job,
        )
    # no crash mode: the providers `scheduler.providers` names, built from the settings (a cloud's fake)
    sched = Scheduler.from_settings(settings, providers=providers or None)  # type: ignore[arg-type]
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        sched.start()
    except DaemonLockedError as exc:
        out.write(f"REFUSED {exc}\n")
        sys.exit(3)
    role = ""
    while not stop:
        if sched.role != role:
            role = sched.role
            out.write(f"ROLE {role}\n")
        time.sleep(0.05)
    sched.shutdown()


def run_daemon_with_env(
    env: dict[str, str], log_path: str, settings_json: str, role_path: str, *crash: str
) -> None:
    """`run_daemon` in the test's environment as it is now, as a subprocess would have it (the fork
    server keeps the one of the test that started it: a cloud SDK would miss its fake's endpoint, a
    daemon would read another test's CARBONSHIFT_ variables), logging to `log_path` when given."""
    os.environ.clear()
    os.environ.update(env)
    if log_path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", filename=log_path)
    run_daemon(settings_json, role_path, *crash)


def kill9(proc: multiprocessing.process.BaseProcess) -> None:
    """The test's crash: SIGKILL, nothing flushed or released, then reaped."""
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)


def stop_process(proc: multiprocessing.process.BaseProcess) -> None:
    """A daemon process the test is done with: SIGTERM (a clean shutdown), SIGKILL if it hangs."""
    if proc.exitcode is None:
        proc.terminate()
        proc.join(15)
        if proc.exitcode is None:
            proc.kill()
            proc.join()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    run_daemon(
        os.environ["CS_TEST_SETTINGS"],
        "/dev/stdout",
        os.environ.get("CS_TEST_CRASH", ""),
        os.environ.get("CS_TEST_CRASH_JOB", ""),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
