"""The local provider: a run is a process on this machine, under the tracker.

Each run gets a directory `<runs_dir>/<run_id>/` holding everything a restarted daemon needs:
`request.json` (what was asked), `pid.json` (the supervisor's pid, process group and start time),
`output.log` (the job's stdout and stderr), `report.json` (the tracker's report), `exit.json` (the exit
code, written by the supervisor when the job ends) and `terminate.json` (a cancel was asked for).

The job runs as `_local_exec.py RUN_DIR -- python -m carbonshift track ... -- CMD`, in a session of
its own (start_new_session), so neither a daemon crash nor a Ctrl-C in the daemon's terminal reaches
it; a restarted daemon reattaches through the run directory. Launch is idempotent by run id: the
directory is the key, guarded by a lock file, and an existing run (found by its pid file, its exit
file, or, when the daemon died between starting the process and recording it, by scanning processes
for the run directory in their command line) is returned instead of starting another one.

A run's environment is `job_environment()`: the allow-listed names of the daemon's (ENV_ALLOWED), the
spec's `env`, the scheduler's for the run (`LaunchRequest.env`: a chunk's CARBONSHIFT_CHUNK_INDEX,
CARBONSHIFT_CHUNK_COUNT and CARBONSHIFT_CHECKPOINT_DIR) and CARBONSHIFT_RUN_ID / CARBONSHIFT_RUN_DIR;
none of the daemon's secrets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import yaml

from carbonshift.config import Settings
from carbonshift.providers.base import (
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)
from carbonshift.providers.runfiles import flocked, read_json, write_json

log = logging.getLogger(__name__)

EXEC_SCRIPT = Path(__file__).with_name("_local_exec.py")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a job gets of the daemon's environment: only these names (and LC_*), never the rest, where the
# daemon's secrets live (CARBONSHIFT_* tokens and passwords, the database URL, AWS_*, AZURE_*,
# GOOGLE_APPLICATION_CREDENTIALS, proxies with passwords...). The Windows names are what a process
# there needs to start at all. The tracker above the job gets the same: a job can read its parents'
# environments (same user), so they must not hold secrets either.
ENV_ALLOWED = (
    *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"),
    *("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE"),
)
ENV_ALLOWED_PREFIXES = ("LC_",)
_SECRET_WORDS = ("token", "password", "secret", "credential", "key")


def default_runs_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir() / "scheduler" / "runs"


def job_environment(
    request: LaunchRequest, run_dir: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a local run (its supervisor, tracker and job): the allow-listed names of
    `base` (default: the daemon's environment), then the spec's `env`, then CARBONSHIFT_RUN_ID and
    CARBONSHIFT_RUN_DIR."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in ENV_ALLOWED or k.startswith(ENV_ALLOWED_PREFIXES)}
    env.update(request.spec.env)
    env.update(request.env)  # the scheduler's: a chunk's index, count and checkpoint directory
    env["CARBONSHIFT_RUN_ID"] = request.run_id
    env["CARBONSHIFT_RUN_DIR"] = str(run_dir)
    return env


def tracker_config(settings: Settings) -> dict[str, Any]:
    """The daemon's settings as a config file for the tracker of a run, without any secret: the
    tracker resolves the same locations, intensity files, cache and tracker options as the daemon that
    planned the run. It gets no credential at all (see ENV_ALLOWED): it measures with what needs none
    (the shared intensity cache the daemon filled, intensity files, keyless sources, bundled tables)."""
    from pydantic import SecretStr

    data = settings.model_dump(mode="json")
    for name in Settings.model_fields:
        secret = isinstance(getattr(settings, name), SecretStr) or any(w in name for w in _SECRET_WORDS)
        if secret or name in ("db_url", "api_token"):
            data.pop(name, None)
    # resolved here: the tracker does not get the XDG_* variables the defaults may come from
    data["data_dir"] = str(settings.resolved_data_dir().expanduser().resolve())
    data.setdefault("cache", {})["path"] = str(settings.cache.resolved_path().expanduser().resolve())
    files = data.get("intensity", {}).get("files", {})
    for zone, path in list(files.items()):
        files[zone] = str(Path(path).expanduser().resolve())
    return data


class LocalProvider:
    """Runs jobs on this machine. See the module docstring for the run directory."""

    name = "local"

    def __init__(
        self,
        runs_dir: Path,
        *,
        settings: Settings | None = None,
        use_tracker: bool = True,
        terminate_grace_s: float = 10.0,
        cwd: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.runs_dir = runs_dir
        self.settings = settings
        self.use_tracker = use_tracker
        self.terminate_grace_s = terminate_grace_s
        self.cwd = cwd
        self.python = python
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ---- the Provider protocol ------------------------------------------------------------------
    def regions(self) -> list[str]:
        names = (
            [loc.region for loc in self.settings.locations if loc.provider == "local"]
            if self.settings
            else []
        )
        return [*names, "this-machine"]

    def launch(self, request: LaunchRequest) -> Handle:
        run_dir = self.run_dir(request.run_id)
        with self._lock:
            run_dir.mkdir(parents=True, exist_ok=True)
            with flocked(run_dir / "launch.lock"):
                existing = self.find(request.run_id, request.region)
                if existing is not None:
                    log.info(
                        "run %s: already launched (pid %s); not starting it again",
                        request.run_id,
                        existing.instance_id,
                    )
                    return existing
                return self._spawn(request, run_dir)

    def find(self, run_id: str, region: str) -> Handle | None:
        run_dir = self.run_dir(run_id)
        if not run_dir.is_dir():
            return None
        stored = read_json(run_dir / "request.json") or {}
        region = str(stored.get("region") or region)
        info = read_json(run_dir / "pid.json")
        if info is not None:
            return self._handle(run_id, region, run_dir, info)
        if (run_dir / "exit.json").exists():
            return self._handle(run_id, region, run_dir, {})
        if not (run_dir / "request.json").exists():
            return None  # written before the process is started: nothing was ever started here
        pid = _scan_for(run_dir)
        if pid is not None:
            return self._handle(
                run_id, region, run_dir, {"pid": pid, "pgid": pid, "create_time": _create_time(pid)}
            )
        return None

    def status(self, handle: Handle) -> InstanceStatus:
        run_dir = Path(str(handle.details.get("run_dir") or self.run_dir(handle.run_id)))
        ended = read_json(run_dir / "exit.json")
        if ended is None:
            info = read_json(run_dir / "pid.json") or handle.details
            if self._alive(handle.run_id, info):
                return InstanceStatus(InstanceState.RUNNING, detail=f"pid {info.get('pid')}")
            ended = read_json(run_dir / "exit.json")  # it may have ended between the two reads
        report = read_json(run_dir / "report.json")
        if ended is None:
            gone = "the run's process ended without an exit record (killed with its supervisor, or the machine restarted)"
            if (run_dir / "terminate.json").exists():
                return InstanceStatus(InstanceState.TERMINATED, detail=gone, report=report)
            return InstanceStatus(InstanceState.FAILED, detail=gone, report=report)
        code = int(ended.get("exit_code", 1))
        sig = ended.get("signal")
        detail = f"killed by signal {sig}" if sig else f"exit code {code}"
        if code == 0:
            state = InstanceState.SUCCEEDED
        elif ended.get("terminated") or (run_dir / "terminate.json").exists():
            state = InstanceState.TERMINATED
        else:
            state = InstanceState.FAILED
        return InstanceStatus(state, exit_code=code, detail=detail, report=report)

    def gone(self, handle: Handle) -> bool:
        """A local run holds nothing once its process group has exited."""
        run_dir = Path(str(handle.details.get("run_dir") or self.run_dir(handle.run_id)))
        return not self._alive(handle.run_id, read_json(run_dir / "pid.json") or handle.details)

    def terminate(self, handle: Handle) -> None:
        run_dir = Path(str(handle.details.get("run_dir") or self.run_dir(handle.run_id)))
        if run_dir.is_dir() and not (run_dir / "terminate.json").exists():
            write_json(run_dir / "terminate.json", {"at": time.time()})
        info = read_json(run_dir / "pid.json") or handle.details
        if not self._alive(handle.run_id, info):
            return
        pgid = int(info.get("pgid") or info["pid"])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        if self.terminate_grace_s > 0:
            timer = threading.Timer(self.terminate_grace_s, self._kill_if_alive, (handle.run_id, dict(info)))
            timer.daemon = True
            timer.start()

    def managed(self) -> list[Handle]:
        out: list[Handle] = []
        if not self.runs_dir.is_dir():
            return out
        for run_dir in sorted(self.runs_dir.iterdir()):
            info = read_json(run_dir / "pid.json")
            if info is not None and not (run_dir / "exit.json").exists() and self._alive(run_dir.name, info):
                stored = read_json(run_dir / "request.json") or {}
                out.append(self._handle(run_dir.name, str(stored.get("region") or ""), run_dir, info))
        return out

    # ---- local extras ----------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise ProviderError(self.name, f"run id {run_id!r} is not a safe directory name")
        return self.runs_dir / run_id

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "output.log"

    # ---- internals -------------------------------------------------------------------------------
    def _spawn(self, request: LaunchRequest, run_dir: Path) -> Handle:
        command = self._command(request, run_dir)
        write_json(
            run_dir / "request.json",
            {
                "run_id": request.run_id,
                "job": request.spec.name,
                "region": request.region,
                "deadline": request.deadline.isoformat(),
                "tracked": self.use_tracker,
                "command": request.spec.command,
            },
        )
        env = job_environment(request, run_dir)
        argv = [self.python, str(EXEC_SCRIPT), str(run_dir), "--", *command]
        try:
            with open(run_dir / "output.log", "ab") as out:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.cwd,
                    env=env,
                    close_fds=True,
                )
        except OSError as exc:
            raise ProviderError(
                self.name, f"cannot start the run's supervisor: {exc.strerror or exc}"
            ) from None
        self._children[request.run_id] = proc
        info = {"pid": proc.pid, "pgid": proc.pid, "create_time": _create_time(proc.pid)}
        if not (run_dir / "pid.json").exists():
            write_json(run_dir / "pid.json", info)
        log.info("run %s: started locally, pid %s, log %s", request.run_id, proc.pid, run_dir / "output.log")
        return self._handle(request.run_id, request.region, run_dir, info)

    def _command(self, request: LaunchRequest, run_dir: Path) -> list[str]:
        spec_cmd = request.spec.command
        if isinstance(spec_cmd, str):
            job = ["cmd", "/c", spec_cmd] if sys.platform == "win32" else ["/bin/sh", "-c", spec_cmd]
        else:
            job = list(spec_cmd)
        if not self.use_tracker:
            return job
        config = run_dir / "settings.yaml"
        where: list[str] = []
        if self.settings is not None:
            config.write_text(
                yaml.safe_dump(tracker_config(self.settings), sort_keys=False), encoding="utf-8"
            )
            known = {loc.region for loc in self.settings.locations if loc.provider == "local"}
            if request.region in known:
                where = ["--region", f"local:{request.region}"]
        head = [self.python, "-m", "carbonshift"]
        if self.settings is not None:
            head += ["--config", str(config)]
        return [
            *head,
            "track",
            *where,
            "--report",
            str(run_dir / "report.json"),
            "--output-dir",
            str(run_dir),
            "--",
            *job,
        ]

    def _handle(self, run_id: str, region: str, run_dir: Path, info: dict[str, Any]) -> Handle:
        pid = info.get("pid")
        return Handle(
            provider=self.name,
            region=region,
            run_id=run_id,
            instance_id=f"pid:{pid}" if pid else f"run-dir:{run_dir.name}",
            console_url=None,
            details={
                "pid": pid,
                "pgid": info.get("pgid", pid),
                "create_time": info.get("create_time"),
                "run_dir": str(run_dir),
                "log_path": str(run_dir / "output.log"),
            },
        )

    def _alive(self, run_id: str, info: dict[str, Any]) -> bool:
        """Whether the run's supervisor still runs: same pid and start time (pids get reused), not a
        zombie. Our own children are reaped here."""
        child = self._children.get(run_id)
        if child is not None and child.poll() is not None:
            self._children.pop(run_id, None)
            return False
        pid = info.get("pid")
        if not pid:
            return False
        try:
            proc = psutil.Process(int(pid))
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            created = info.get("create_time")
            return created is None or abs(proc.create_time() - float(created)) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False

    def _kill_if_alive(self, run_id: str, info: dict[str, Any]) -> None:
        if self._alive(run_id, info):
            log.warning(
                "run %s: still running %.0f s after SIGTERM; sending SIGKILL", run_id, self.terminate_grace_s
            )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(info.get("pgid") or info["pid"]), signal.SIGKILL)


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _scan_for(run_dir: Path) -> int | None:
    """The pid of a supervisor started for this run dir whose pid file was never written (the daemon
    died between starting it and recording it)."""
    marker = str(run_dir)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if len(cmdline) >= 3 and cmdline[1] == str(EXEC_SCRIPT) and cmdline[2] == marker:
            return int(proc.info["pid"])
    return None


def _from_settings(settings: Settings, **kwargs: Any) -> LocalProvider:
    """The registry's factory (`get_provider("local", settings)`), configured as the daemon's own."""
    cfg = settings.scheduler
    kwargs.setdefault("use_tracker", cfg.local_tracker)
    kwargs.setdefault("terminate_grace_s", cfg.terminate_grace_s)
    return LocalProvider(default_runs_dir(settings), settings=settings, **kwargs)


def _register() -> None:
    from carbonshift.providers.registry import register_provider

    register_provider("local", _from_settings)


_register()
