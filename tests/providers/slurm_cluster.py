"""A real single-node Slurm cluster for the Slurm provider's tests (and nothing else).

`ensure_cluster()` makes one: it installs Debian's `slurm-wlm` and `munge` with apt-get when `sbatch` is
missing (as root only, non-interactive, with a timeout; services are kept from starting during the
install by a temporary policy-rc.d when none exists), writes /etc/slurm/slurm.conf for this machine (one
node named after `hostname -s`, its CPUs and memory as `slurmd -C` reads them, one partition `debug`)
unless a slurm.conf not written here is already there, creates the munge key if missing, and starts
munged, slurmctld and slurmd as daemons (there is no systemd) where they are not already running. It
then waits until `sinfo` shows the node usable. A second run finds the packages installed and the
daemons up, and starts nothing. `Cluster.stop()` stops only the daemons it started, and leaves them
running while another test session (a file per pytest process in /run/carbonshift-slurm-tests) still
uses the cluster.

Anything that fails raises `ClusterUnavailable` with the reason (apt-get's own error, a daemon's log
tail), which the fixture turns into a loud skip.

Run it by hand with `.venv/bin/python -m tests.providers.slurm_cluster` (starts the cluster, prints
what it did and leaves it running).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONF_DIR = Path("/etc/slurm")
CONF = CONF_DIR / "slurm.conf"
MARKER = "# written by carbonshift's tests (tests/providers/slurm_cluster.py)"
CLUSTER_NAME = "carbonshift-test"
PARTITION = "debug"
LOG_DIR = Path("/var/log/slurm")
MUNGE_KEY = Path("/etc/munge/munge.key")
APT_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 60.0
DAEMONS = {  # name -> pid file (as the config below sets it)
    "slurmctld": Path("/run/slurmctld.pid"),
    "slurmd": Path("/run/slurmd.pid"),
}


SESSIONS = Path("/run/carbonshift-slurm-tests")  # one file per pytest process using the cluster


def _other_sessions() -> list[int]:
    """Other live processes that use the cluster (their session files; stale ones are removed)."""
    out = []
    for entry in SESSIONS.glob("*") if SESSIONS.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if Path(f"/proc/{entry.name}").exists():
            out.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return out


class ClusterUnavailable(Exception):
    """No cluster can be had here; the message says why."""


@dataclass
class Cluster:
    host: str
    partition: str = PARTITION
    cpus: int = 1
    installed: bool = False  # the packages were installed by this run
    started: dict[str, int] = field(default_factory=dict)  # daemon -> pid, for those started here
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the daemons this run started (and only those): slurmd first, all asked at once. Not
        while another test session still uses the cluster (it would lose its jobs): then they are left
        running, and nobody stops them."""
        with contextlib.suppress(OSError):
            (SESSIONS / str(os.getpid())).unlink()
        others = _other_sessions()
        if others and self.started:
            self.notes.append(f"daemons left running: test sessions {others} still use the cluster")
            self.started.clear()
            return
        stopping = [(n, self.started.pop(n)) for n in ("slurmd", "slurmctld", "munged") if n in self.started]
        for name, pid in stopping:
            if _is(pid, name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for name, pid in stopping:
            _stop_pid(pid, name)


def _run(argv: list[str], timeout: float = 30.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _have_binaries() -> bool:
    return all(shutil.which(b) for b in ("sbatch", "slurmctld", "slurmd", "munged", "scontrol"))


def install_packages() -> bool:
    """apt-get install slurm-wlm and munge when sbatch & co. are missing. True when it installed."""
    if _have_binaries():
        return False
    if os.geteuid() != 0:
        raise ClusterUnavailable("sbatch is not installed and these tests install it only as root")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("sbatch is not installed and there is no apt-get to install slurm-wlm")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():  # keep the packages' maintainer scripts from starting daemons (no systemd)
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    argv = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",  # another apt-get may be running: wait for it
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "slurm-wlm",
        "munge",
    ]
    try:
        done = _apt(argv, env)
        if done.returncode != 0:  # often: no package lists yet (a fresh container)
            update = _apt(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], env)
            if update.returncode != 0:
                raise ClusterUnavailable(
                    f"apt-get update failed (exit {update.returncode}):\n{_tail(update.stderr or update.stdout)}"
                )
            done = _apt(argv, env)
        if done.returncode != 0:
            raise ClusterUnavailable(
                f"apt-get install slurm-wlm munge failed (exit {done.returncode}):\n"
                f"{_tail(done.stderr or done.stdout)}"
            )
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    if not _have_binaries():
        raise ClusterUnavailable("apt-get installed slurm-wlm and munge, but sbatch/slurmd are still missing")
    return True


def _apt(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return _run(argv, timeout=APT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ClusterUnavailable(f"{' '.join(argv[:2])} did not finish in {APT_TIMEOUT_S:.0f} s") from None


def node_line(host: str) -> str:
    """`NodeName=host CPUs=.. ... RealMemory=..` as slurmd reads this machine."""
    done = _run(["slurmd", "-C"])
    first = next((line for line in done.stdout.splitlines() if line.startswith("NodeName=")), None)
    if done.returncode != 0 or first is None:
        raise ClusterUnavailable(f"slurmd -C failed (exit {done.returncode}): {_tail(done.stderr)}")
    words = [w for w in first.split() if not w.startswith("NodeName=")]
    return f"NodeName={host} NodeAddr=127.0.0.1 {' '.join(words)} State=UNKNOWN"


def render_conf(host: str, node: str) -> str:
    return f"""{MARKER}
# A single-node test cluster: nothing here is fit for production.
ClusterName={CLUSTER_NAME}
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldPidFile={DAEMONS["slurmctld"]}
SlurmdPidFile={DAEMONS["slurmd"]}
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile={LOG_DIR}/slurmctld.log
SlurmdLogFile={LOG_DIR}/slurmd.log
{node}
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def write_conf(host: str) -> bool:
    """Write slurm.conf (True when it changed). A slurm.conf not written here is never touched."""
    if CONF.exists() and MARKER not in CONF.read_text(errors="replace"):
        raise ClusterUnavailable(
            f"{CONF} exists and was not written by these tests; not replacing a real cluster's config"
        )
    text = render_conf(host, node_line(host))
    if CONF.exists() and CONF.read_text() == text:
        return False
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    for d in (Path("/var/spool/slurmctld"), Path("/var/spool/slurmd"), LOG_DIR):
        d.mkdir(parents=True, exist_ok=True)
    CONF.write_text(text)
    return True


def _munge_works() -> bool:
    try:
        cred = _run(["munge", "-n"], timeout=10)
        if cred.returncode != 0:
            return False
        return _run(["unmunge"], timeout=10, input=cred.stdout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_munge(cluster: Cluster) -> None:
    if _munge_works():
        return
    if not MUNGE_KEY.exists():
        maker = shutil.which("mungekey") or "/usr/sbin/mungekey"
        if Path(maker).exists():
            done = _run([maker, "--create", "--keyfile", str(MUNGE_KEY)])
        else:
            done = _run([shutil.which("create-munge-key") or "/usr/sbin/create-munge-key", "-f"])
        if done.returncode != 0:
            raise ClusterUnavailable(f"cannot create the munge key: {_tail(done.stderr or done.stdout)}")
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)
    for d in (Path("/run/munge"), Path("/var/lib/munge"), Path("/var/log/munge")):
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    pid_file = Path("/run/munge/munged.pid")
    pid_file.unlink(missing_ok=True)
    done = _run(["runuser", "-u", "munge", "--", "munged"])  # forks into the background itself
    if done.returncode != 0:
        raise ClusterUnavailable(f"munged did not start: {_tail(done.stderr or done.stdout)}")
    _wait(_munge_works, 10, "munge to answer")
    with contextlib.suppress(OSError, ValueError):
        cluster.started["munged"] = int(pid_file.read_text().split()[0])


def _daemon_pid(name: str) -> int | None:
    """The pid of a running daemon `name`, from its pid file (checked against /proc), else by a scan."""
    candidates: list[int] = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        candidates.append(int(DAEMONS[name].read_text().split()[0]))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            candidates.append(int(entry.name))
    return next((pid for pid in candidates if _is(pid, name)), None)


def start_daemon(cluster: Cluster, name: str, conf_changed: bool) -> None:
    pid = _daemon_pid(name)
    if pid is not None:
        if conf_changed and name == "slurmctld":
            _run(["scontrol", "reconfigure"])
            cluster.notes.append("slurmctld was running: reconfigured with the new slurm.conf")
        elif conf_changed:  # slurmd reads its node line at start only
            _stop_pid(pid, name)
        else:
            return
        if name == "slurmctld":
            return
    log = LOG_DIR / f"{name}.log"
    size = log.stat().st_size if log.exists() else 0
    done = _run([name])  # both daemonise by default and write their pid file
    if done.returncode != 0:
        raise ClusterUnavailable(f"{name} did not start (exit {done.returncode}): {_tail(done.stderr)}")
    try:
        _wait(lambda: _daemon_pid(name) is not None, 15, f"{name} to run")
    except ClusterUnavailable:
        raise ClusterUnavailable(f"{name} exited at once; its log:\n{_log_since(log, size)}") from None
    found = _daemon_pid(name)
    if found is not None:
        cluster.started[name] = found


def _log_since(log: Path, size: int) -> str:
    try:
        with log.open(errors="replace") as f:
            f.seek(size)
            return _tail(f.read())
    except OSError as exc:
        return f"(no log: {exc})"


def wait_ready(cluster: Cluster) -> None:
    _wait(lambda: _run(["scontrol", "ping"], timeout=10).returncode == 0, READY_TIMEOUT_S, "slurmctld")

    def node_state() -> str:
        done = _run(["sinfo", "-h", "-N", "-n", cluster.host, "-o", "%T"], timeout=10)
        return done.stdout.strip().lower() if done.returncode == 0 else ""

    deadline = time.monotonic() + READY_TIMEOUT_S
    resumed = False
    state = ""
    while time.monotonic() < deadline:
        state = node_state()
        if state in ("idle", "mixed", "allocated", "completing"):  # 'idle*': slurmd not answering yet
            return
        if not resumed and any(s in state for s in ("down", "drain", "fail")):
            _run(["scontrol", "update", f"nodename={cluster.host}", "state=resume"])
            resumed = True
        time.sleep(0.5)
    reason = _run(["sinfo", "-h", "-R"], timeout=10).stdout.strip()
    raise ClusterUnavailable(
        f"node {cluster.host} not usable after {READY_TIMEOUT_S:.0f} s: state {state!r} {reason}\n"
        f"slurmd log:\n{_log_since(LOG_DIR / 'slurmd.log', 0)}"
    )


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")


def _is(pid: int, name: str) -> bool:
    """Whether `pid` is still the daemon `name` (not gone, not a reused pid, not a zombie)."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != name:
            return False
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stop_pid(pid: int, name: str) -> None:
    """SIGTERM the daemon `name` at `pid` (if it still is that), SIGKILL it after 15 s."""
    if not _is(pid, name):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not _is(pid, name):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def ensure_cluster() -> Cluster:
    """A running single-node cluster (see the module docstring); ClusterUnavailable says why not."""
    try:
        return _ensure_cluster()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ClusterUnavailable(f"setting up the test cluster failed: {type(exc).__name__}: {exc}") from None


def _ensure_cluster() -> Cluster:
    host = _run(["hostname", "-s"]).stdout.strip() or os.uname().nodename.split(".")[0]
    cluster = Cluster(host=host)
    cluster.installed = install_packages()
    if os.geteuid() != 0 and not CONF.exists():
        raise ClusterUnavailable("no /etc/slurm/slurm.conf and these tests write one only as root")
    with contextlib.suppress(OSError):  # before anything starts: a session ending now leaves it running
        SESSIONS.mkdir(parents=True, exist_ok=True)
        (SESSIONS / str(os.getpid())).touch()
    try:
        changed = write_conf(host) if os.geteuid() == 0 else False
        start_munge(cluster)
        start_daemon(cluster, "slurmctld", changed)
        start_daemon(cluster, "slurmd", changed)
        wait_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    done = _run(["sinfo", "-h", "-N", "-n", host, "-o", "%c"])
    with contextlib.suppress(ValueError):
        cluster.cpus = int(done.stdout.strip() or 1)
    return cluster


if __name__ == "__main__":
    t0 = time.monotonic()
    c = ensure_cluster()
    print(f"cluster ready in {time.monotonic() - t0:.1f} s: {c}")
