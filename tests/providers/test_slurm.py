"""The Slurm provider against a REAL single-node Slurm cluster (slurm-wlm and munge from Debian, set up
by tests/providers/slurm_cluster.py: installed with apt-get when sbatch is missing, skipped with the
reason when that cannot be done), plus its settings and the catalog entries it makes.

Jobs run the real tracker (`.venv/bin/carbonshift track`) on the node. Each test cleans up its own jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.advisor import advise
from carbonshift.clock import FixedClock
from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import ConfigError, UserInputError
from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    Provider,
    ProviderError,
)
from carbonshift.providers.registry import get_provider, provider_names
from carbonshift.providers.slurm import SlurmProvider, cluster_locations, render_script, slurm_duration
from carbonshift.runtime import build_catalog, build_service
from tests.fakes.report_receiver import ReportReceiver
from tests.providers.slurm_cluster import Cluster, ClusterUnavailable, ensure_cluster

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Slurm runs on POSIX systems only")

TRACKER = Path(sys.executable).with_name("carbonshift")  # the venv's entry point, by absolute path
CLUSTER = "test"

HOSTILE = [
    "$(touch PWNED_subst)",
    "`touch PWNED_backtick`",
    "a; touch PWNED_semicolon",
    "line1\nline2; touch PWNED_newline",
    "\n#SBATCH --partition=nope\n#SBATCH --wrap='touch PWNED_directive'",
    "\"double\" 'single' \\ back\\slash",
    "$HOME ${PATH} * ? [a] ~ %j %x",
    "&& touch PWNED_and || touch PWNED_or | tee PWNED_pipe > PWNED_redirect",
    "-- --report /etc/passwd",
    "",
    " spaces  and\ttabs ",
    "émoji ✓",
]


# ---- the cluster ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    t0 = time.monotonic()
    try:
        cluster = ensure_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Slurm cluster for the Slurm provider tests: {exc}")
    print(
        f"\nslurm cluster ready in {time.monotonic() - t0:.1f} s (installed: {cluster.installed}, "
        f"started: {sorted(cluster.started) or 'nothing'})"
    )
    yield cluster
    cluster.stop()


def settings_for(tmp_path: Path, **cluster: Any) -> Settings:
    conf: dict[str, Any] = {
        "zone": "DE",
        "partition": "debug",
        "carbonshift": str(TRACKER),
        "work_dir": str(tmp_path / "slurm"),
        "time_margin_s": 60,
        **cluster,
    }
    return load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        data_dir=str(tmp_path / "data"),
        slurm={"clusters": {CLUSTER: conf}},
    )


@pytest.fixture
def provider(slurm_cluster: Cluster, tmp_path: Path) -> Iterator[SlurmProvider]:
    adapter = SlurmProvider(settings_for(tmp_path))
    yield adapter
    for handle in adapter.managed():  # leave no job of this test behind (and touch no other one)
        if (Path(handle.details["run_dir"]) / "job.json").exists():
            adapter.terminate(handle)


_counter = [0]


def run_id(tag: str) -> str:
    _counter[0] += 1
    return f"t{os.getpid()}-{int(time.time())}-{_counter[0]}-{tag}"


def request(rid: str, command: list[str] | str, **kwargs: Any) -> LaunchRequest:
    spec_data: dict[str, Any] = {
        "name": "slurm-test",
        "command": command,
        "duration": "5m",
        "hardware": {"vcpus": 1, "memory_gb": 0.25},  # the test node has 2 CPUs
    }
    spec_data.update(kwargs.pop("spec", {}))
    return LaunchRequest(
        run_id=rid,
        spec=parse_jobspec(spec_data),
        region=CLUSTER,
        deadline=datetime.now(UTC) + timedelta(hours=1),
        **kwargs,
    )


def wait_status(
    provider: SlurmProvider, handle: Handle, done: Callable[[InstanceStatus], bool], timeout: float = 30.0
) -> InstanceStatus:
    deadline = time.monotonic() + timeout
    status = provider.status(handle)
    while not done(status):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {handle.instance_id} still {status} after {timeout:.0f} s")
        time.sleep(0.3)
        status = provider.status(handle)
    return status


def ended(status: InstanceStatus) -> bool:
    return status.state not in (InstanceState.PENDING, InstanceState.RUNNING)


def squeue(*args: str) -> str:
    """squeue's answer over jobs in every state, without its header."""
    return subprocess.run(
        ["squeue", "--noheader", "--states=all", *args], capture_output=True, text=True, check=True
    ).stdout


def jobs_named(rid: str) -> list[str]:
    return squeue(f"--name=cs-{rid}", "--format=%i").split()


# ---- against the real cluster -----------------------------------------------------------------------
def test_a_later_start_waits_pending_on_begin_time_then_runs_and_succeeds(
    provider: SlurmProvider, tmp_path: Path
) -> None:
    rid = run_id("begin")
    not_before = datetime.now(UTC) + timedelta(seconds=10)
    marker = tmp_path / "marker"
    cmd = [sys.executable, "-c", f"import time; open({str(marker)!r}, 'w').write(repr(time.time()))"]
    handle = provider.launch(request(rid, cmd, not_before=not_before))
    assert handle.provider == "slurm" and handle.region == CLUSTER and handle.instance_id.isdigit()

    status = provider.status(handle)
    assert status.state is InstanceState.PENDING and "BeginTime" in status.detail, status
    # still waiting for its start time well after submission: looked at again 2 s before it
    time.sleep(max(0.0, (not_before - datetime.now(UTC)).total_seconds() - 2.0))
    status = provider.status(handle)
    assert status.state is InstanceState.PENDING and "BeginTime" in status.detail, status
    assert not marker.exists()
    assert provider.gone(handle) is False

    status = wait_status(provider, handle, ended, timeout=45)
    assert status.state is InstanceState.SUCCEEDED and status.exit_code == 0, status
    started = float(marker.read_text())
    assert started >= not_before.timestamp() - 1.0  # Slurm's clock has whole seconds
    run_dir = Path(handle.details["run_dir"])
    report = json.loads((run_dir / "report.json").read_text())  # the tracker ran on the node
    assert report["exit_code"] == 0 and report["zone"] == "DE"
    assert status.report is not None and status.report["schema"] == "carbonshift.track/1"
    assert json.loads((run_dir / "exit.json").read_text())["exit_code"] == 0
    assert provider.gone(handle) is True


def test_cancel_a_running_and_a_pending_job(provider: SlurmProvider) -> None:
    running = provider.launch(request(run_id("cancel-run"), ["sleep", "300"]))
    pending = provider.launch(
        request(run_id("cancel-wait"), ["true"], not_before=datetime.now(UTC) + timedelta(hours=1))
    )
    wait_status(provider, running, lambda s: s.state is InstanceState.RUNNING)
    managed = {h.instance_id: h for h in provider.managed()}
    assert {running.instance_id, pending.instance_id} <= set(managed)
    assert managed[running.instance_id].run_id == running.run_id
    assert managed[pending.instance_id].details["state"] == "pending"

    for handle in (running, pending):
        provider.terminate(handle)
        status = wait_status(provider, handle, ended)
        assert status.state is InstanceState.TERMINATED and "cancelled" in status.detail, status
        assert provider.gone(handle) is True
        provider.terminate(handle)  # again: no error once it has ended
    assert not {running.instance_id, pending.instance_id} & {h.instance_id for h in provider.managed()}


def test_launch_is_idempotent_by_run_id_and_a_restarted_daemon_finds_the_job(
    provider: SlurmProvider, tmp_path: Path
) -> None:
    rid = run_id("idem")
    req = request(rid, ["sh", "-c", "sleep 1; exit 3"])
    first = provider.launch(req)
    again = provider.launch(req)
    assert again.instance_id == first.instance_id
    assert jobs_named(rid) == [first.instance_id]  # one job

    # a new provider (a restarted daemon) finds it by run id, from the run's record
    restarted = SlurmProvider(settings_for(tmp_path))
    found = restarted.find(rid, CLUSTER)
    assert found is not None and found.instance_id == first.instance_id
    # ... and by its name in Slurm when the daemon died between sbatch and recording the job id
    (Path(first.details["run_dir"]) / "job.json").unlink()
    found = SlurmProvider(settings_for(tmp_path)).find(rid, CLUSTER)
    assert found is not None and found.instance_id == first.instance_id
    (Path(first.details["run_dir"]) / "job.json").unlink()
    assert SlurmProvider(settings_for(tmp_path)).launch(req).instance_id == first.instance_id
    assert jobs_named(rid) == [first.instance_id]
    assert restarted.find(run_id("never"), CLUSTER) is None

    status = wait_status(restarted, found, ended)
    assert status.state is InstanceState.FAILED and status.exit_code == 3, status
    assert "exit code 3" in status.detail


def test_refusals_are_capacity_errors_and_other_failures_provider_errors(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    wrong = SlurmProvider(settings_for(tmp_path, partition="no-such-partition"))
    with pytest.raises(CapacityError) as refused:
        wrong.launch(request(run_id("part"), ["true"]))
    assert refused.value.code == "InvalidPartition" and refused.value.region == CLUSTER
    assert "Invalid partition name specified" in str(refused.value)

    provider = SlurmProvider(settings_for(tmp_path))
    rid = run_id("mem")
    with pytest.raises(CapacityError) as refused:  # more memory than any node has
        provider.launch(request(rid, ["true"], spec={"hardware": {"vcpus": 1, "memory_gb": 100_000}}))
    assert refused.value.code in ("MemoryUnavailable", "NodeConfigUnavailable"), refused.value
    # Slurm keeps a FAILED (BadConstraints) record of such a refusal: it is not taken for a launch
    assert provider.find(rid, CLUSTER) is None
    with pytest.raises(CapacityError) as refused:  # no GPUs on this cluster
        provider.launch(
            request(run_id("gpu"), ["true"], spec={"hardware": {"gpu": "A100", "gpus": 2, "vcpus": 1}})
        )
    assert refused.value.code == "InvalidGres"
    # more CPUs than the node has: Slurm takes the job but leaves it pending on PartitionConfig for ever
    rid = run_id("cpus")
    with pytest.raises(CapacityError) as refused:
        provider.launch(request(rid, ["true"], spec={"hardware": {"vcpus": 64, "memory_gb": 1}}))
    assert refused.value.code == "PartitionConfig" and "cancelled" in str(refused.value)
    [job_id] = jobs_named(rid)
    assert (
        "JobState=CANCELLED"
        in subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True, check=False
        ).stdout
    )
    assert provider.find(rid, CLUSTER) is None  # the cancelled refusal is not the run

    bogus = SlurmProvider(settings_for(tmp_path, extra_args=["--no-such-option"]))
    with pytest.raises(ProviderError) as failed:
        bogus.launch(request(run_id("bogus"), ["true"]))
    assert not isinstance(failed.value, CapacityError)
    assert "unrecognized option" in str(failed.value) and "Traceback" not in str(failed.value)

    missing = SlurmProvider(settings_for(tmp_path, sbatch=str(tmp_path / "bin" / "sbatch")))
    with pytest.raises(ProviderError, match="not found"):
        missing.launch(request(run_id("missing"), ["true"]))


def test_hostile_commands_and_env_arrive_as_data(provider: SlurmProvider, tmp_path: Path) -> None:
    dump = (
        "import json, os, sys; "
        "json.dump([sys.argv[1:], os.environ.get('HOSTILE'), sorted(os.environ)], open('seen.json', 'w'))"
    )
    # the daemon's secrets are in its environment; sbatch (and so the job) gets the allow-listed names only
    secrets = {
        "CARBONSHIFT_API_TOKEN": "s3cret",
        "AWS_SECRET_ACCESS_KEY": "s3cret",
        "SBATCH_PARTITION": "nope",
    }
    with_secrets = SlurmProvider(settings_for(tmp_path), environ={**os.environ, **secrets})
    argv_job = with_secrets.launch(
        request(
            run_id("hostile-argv"),
            [sys.executable, "-c", dump, *HOSTILE],
            spec={"env": {"HOSTILE": "\n".join(HOSTILE)}},
        )
    )
    shell = "printf '%s' \"$HOSTILE\" > seen.txt; printf '%s' \"$CARBONSHIFT_RUN_ID\" > run_id.txt"
    string_job = provider.launch(  # the scheduler's env (a chunk's) goes the same way, after the spec's
        request(
            run_id("hostile-sh"),
            shell + "\n#SBATCH --partition=nope",
            spec={"env": {"HOSTILE": "overridden"}},
            env={"HOSTILE": HOSTILE[4]},
        )
    )
    # a first word with '=' after the env words: still the command, not one more assignment
    odd = tmp_path / "bin" / "say=hi"
    odd.parent.mkdir()
    odd.write_text('#!/bin/sh\necho "$HOSTILE" > odd.txt\n')
    odd.chmod(0o755)
    odd_job = provider.launch(request(run_id("hostile-eq"), [str(odd)], spec={"env": {"HOSTILE": "x=1"}}))

    for handle in (argv_job, string_job, odd_job):
        status = wait_status(provider, handle, ended)
        assert status.state is InstanceState.SUCCEEDED, (status, _output(handle))
    argv_dir, string_dir = Path(argv_job.details["run_dir"]), Path(string_job.details["run_dir"])
    argv_seen, env_seen, names = json.loads((argv_dir / "seen.json").read_text())
    assert (argv_seen, env_seen) == (HOSTILE, "\n".join(HOSTILE))
    assert not set(secrets) & set(names) and "CARBONSHIFT_RUN_ID" in names and "SLURM_JOB_ID" in names
    assert (string_dir / "seen.txt").read_text() == HOSTILE[4]
    assert (string_dir / "run_id.txt").read_text() == string_job.run_id
    assert (Path(odd_job.details["run_dir"]) / "odd.txt").read_text() == "x=1\n"
    pwned = [*tmp_path.rglob("PWNED*"), *Path.cwd().glob("PWNED*")]
    assert pwned == []
    shown = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", string_job.instance_id],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Partition=debug " in shown.stdout  # the '#SBATCH' in the command stayed data


def test_the_tracker_posts_its_report_with_the_runs_token_which_no_command_shows(
    provider: SlurmProvider,
) -> None:
    """The report comes back over HTTP (no shared filesystem needed) with the run's bearer token, and
    the token is on no command line (`ps` inside the job, sbatch's argv), not in `squeue` or `scontrol
    show job` output, the job's environment, its log or the files the daemon keeps."""
    rid = run_id("report")
    token = f"tok-{rid}-Zq8_not-for-anyone-else"
    receiver = ReportReceiver({rid: token})
    try:
        # the job records `ps` while it runs under the tracker (whose command line is among it)
        job = "ps -eo args > ps.txt; env > env.txt; sleep 2"
        handle = provider.launch(
            request(rid, ["sh", "-c", job], report_url=receiver.report_url(rid), report_token=token)
        )
        wait_status(provider, handle, lambda s: s.state is not InstanceState.PENDING)
        shown = [
            subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            for argv in (
                ["scontrol", "show", "job", handle.instance_id],
                ["scontrol", "-d", "show", "job", handle.instance_id],
                ["scontrol", "-dd", "show", "job", handle.instance_id],
                ["squeue", "--noheader", "-j", handle.instance_id, "-o", "%all"],
            )
        ]
        assert all(rid in text for text in shown)  # the job's own output, read while it is known
        status = wait_status(provider, handle, ended)
        assert status.state is InstanceState.SUCCEEDED, (status, _output(handle))

        (sent,) = receiver.reports(rid)
        assert [r.headers["authorization"] for r in receiver.requests] == [f"Bearer {token}"]
        run_dir = Path(handle.details["run_dir"])
        assert sent == json.loads((run_dir / "report.json").read_text())  # the file as well (shared here)
        assert sent["exit_code"] == 0 and sent["zone"] == "DE"
        assert "report sent to" in _output(handle)
        ps = (run_dir / "ps.txt").read_text()
        assert "--report-token-file" in ps and "--report-url" in ps
        kept = [ps, (run_dir / "env.txt").read_text(), _output(handle), *shown]
        kept += [p.read_text() for p in run_dir.iterdir() if p.is_file()]  # job.sh, request.json, ...
        assert all(token not in text for text in kept)
        assert "<per-run report token>" in (run_dir / "job.sh").read_text()  # redacted, for people
        # the script itself, as slurmctld keeps it, has it: readable by the job's user and root only
        script = subprocess.run(
            ["scontrol", "write", "batch_script", handle.instance_id, "-"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert token in script.stdout
        left = list(Path(os.environ.get("TMPDIR", "/tmp")).glob("carbonshift-report.*"))
        assert all(token not in p.read_text(errors="replace") for p in left if p.is_file())  # removed
    finally:
        receiver.close()


def test_nodes_without_the_shared_work_dir_run_in_node_dir_and_report_over_http(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """`node_dir`: the job's output, report and exit code stay on its node (here a directory the daemon
    does not look in); the report still comes back, over HTTP."""
    node_dir = tmp_path / "node-local"
    node_dir.mkdir()
    adapter = SlurmProvider(settings_for(tmp_path, node_dir=str(node_dir)))
    rid = run_id("nodedir")
    receiver = ReportReceiver({rid: "tok-node"})
    try:
        handle = adapter.launch(
            request(
                rid,
                ["sh", "-c", "pwd; echo ran"],
                report_url=receiver.report_url(rid),
                report_token="tok-node",
            )
        )
        status = wait_status(adapter, handle, ended)
        assert status.state is InstanceState.SUCCEEDED and status.exit_code == 0, status
        assert status.report is None  # nothing reached the daemon's run dir ...
        (sent,) = receiver.reports(rid)  # ... but the report came back
        assert sent["exit_code"] == 0
        run_dir = Path(handle.details["run_dir"])
        assert sorted(p.name for p in run_dir.iterdir()) == [
            "job.json",
            "job.sh",
            "launch.lock",
            "request.json",
        ]
        on_node = node_dir / rid
        assert json.loads((on_node / "report.json").read_text()) == sent
        assert json.loads((on_node / "exit.json").read_text())["exit_code"] == 0
        log = Path(handle.details["log_path"])
        assert log == node_dir / f"cs-{rid}.log" and f"{on_node}\nran\n" in log.read_text()
    finally:
        receiver.close()


def test_the_served_daemon_gets_the_report_of_a_run_on_nodes_that_share_nothing_with_it(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """End to end: `carbonshift serve` (its report URL the address it listens on) places a job on a
    cluster whose nodes do not share its files (`node_dir`); the job's tracker POSTs the report to the
    daemon with the run's token, and the run ends with the measured numbers from it."""
    import requests

    from tests.api.helpers import TOKEN, local_spec
    from tests.api.test_serve import Served

    node_dir = tmp_path / "node-local"
    node_dir.mkdir()
    lab = {
        "zone": "DE", "partition": "debug", "carbonshift": str(TRACKER), "time_margin_s": 60,
        "work_dir": str(tmp_path / "daemon-runs"), "node_dir": str(node_dir),
    }  # fmt: skip
    scheduler = {"poll_interval_s": 0.2, "cancel_wait_s": 5.0, "providers": ["local", "slurm"]}
    served = Served(
        tmp_path,
        "--log-level",
        "warning",
        settings={"scheduler": scheduler, "slurm": {"clusters": {"lab": lab}}},
        CARBONSHIFT_API_TOKEN=TOKEN,
    )
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        url = served.wait_announced()
        spec = local_spec("slurm-e2e", ["sh", "-c", "echo ran on $SLURM_JOB_PARTITION"])
        spec.update(placement={"providers": ["slurm"]}, hardware={"vcpus": 1, "memory_gb": 0.25})
        created = session.post(f"{url}/api/v1/jobs", json=spec, timeout=30)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while True:
            run = session.get(f"{url}/api/v1/jobs/{job_id}", timeout=30).json()["runs"][-1]
            if run["status"] in {"succeeded", "failed", "cancelled"} and run["actual"] is not None:
                break
            assert time.monotonic() < deadline, (run, served.stderr())
            time.sleep(0.3)
        assert run["status"] == "succeeded", (run, served.stderr())
        assert (run["provider"], run["region"]) == ("slurm", "lab")
        on_node = json.loads((node_dir / run["id"] / "report.json").read_text())
        assert run["actual"]["source"] == "remote"  # it came over HTTP: the daemon's run dir has none
        assert run["actual"]["energy_kwh"] == pytest.approx(on_node["energy_kwh"])
        assert not (tmp_path / "daemon-runs" / run["id"] / "report.json").exists()
        assert "ran on debug" in (node_dir / f"cs-{run['id']}.log").read_text()
    finally:
        session.close()
        served.stop()


def _output(handle: Handle) -> str:
    path = Path(handle.details["log_path"])
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no output)"


# ---- without a cluster: the request, settings and catalog -------------------------------------------
def test_sbatch_options_for_a_planned_start(tmp_path: Path) -> None:
    now = datetime(2030, 3, 5, 12, 0, tzinfo=UTC)
    adapter = SlurmProvider(settings_for(tmp_path, account="proj-1"), clock=lambda: now)
    req = LaunchRequest(
        run_id="r-1",
        spec=parse_jobspec(
            {
                "name": "j",
                "command": ["x"],
                "duration": "90m",
                "hardware": {"gpu": "A100", "gpus": 4, "vcpus": 16},
            }
        ),
        region=CLUSTER,
        deadline=now + timedelta(hours=6),
        not_before=now + timedelta(hours=2, seconds=30),
    )
    run_dir = adapter.run_dir(CLUSTER, "r-1")
    args = adapter.sbatch_args(req, CLUSTER, run_dir)
    assert args[:6] == [
        "--parsable",
        "--job-name=cs-r-1",
        "--comment=carbonshift-run:r-1",
        "--begin=now+7230",
        f"--deadline=now+{6 * 3600 + 60}",
        "--time=0-01:31:00",  # 90 min + the 60 s margin
    ]
    assert f"--output={run_dir}/output.log" in args and f"--chdir={run_dir}" in args
    wanted = {"--partition=debug", "--account=proj-1", "--gres=gpu:4", "--cpus-per-task=16", "--mem=16384M"}
    assert wanted <= set(args)  # the spec's hardware, its default memory included (as for a cloud instance)
    past = LaunchRequest(run_id="r-2", spec=req.spec, region=CLUSTER, deadline=req.deadline, not_before=now)
    assert "--begin=now" in adapter.sbatch_args(past, CLUSTER, run_dir)
    late = LaunchRequest(run_id="r-3", spec=req.spec, region=CLUSTER, deadline=now - timedelta(hours=1))
    with pytest.raises(ProviderError, match="deadline"):
        adapter.sbatch_args(late, CLUSTER, run_dir)
    assert slurm_duration(timedelta(days=2, hours=3, seconds=1)) == "2-03:01:00"
    assert slurm_duration(timedelta(seconds=5)) == "0-00:01:00"


def test_the_script_quotes_everything_and_parses(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, region="aws:us-east-1", zone=None)
    req = request("r-q", [*HOSTILE], spec={"env": {"A": HOSTILE[0]}})
    text = render_script(req, CLUSTER, settings.slurm.clusters[CLUSTER], tmp_path / "run")
    assert text.splitlines()[1] == "set -u"  # an executable line before any spec value: no #SBATCH after it
    assert " track --region aws:us-east-1 --report " in text
    assert subprocess.run(["sh", "-n"], input=text, text=True, check=False).returncode == 0

    url = "https://cs.example/api/v1/runs/r-q/report?x=1&y=$(touch PWNED)"
    sending = request("r-q", ["true"], report_url=url, report_token="tok_1-2.3~4+5/6=")
    text = render_script(sending, CLUSTER, settings.slurm.clusters[CLUSTER], tmp_path / "run")
    assert f"--report-url '{url}' --report-token-file" in text and '--output-dir "$RUN_DIR" "$@" -- ' in text
    assert "\ntok_1-2.3~4+5/6=\nCARBONSHIFT_REPORT_TOKEN\n" in text  # the here-document's one line
    assert subprocess.run(["sh", "-n"], input=text, text=True, check=False).returncode == 0
    odd = request("r-q", ["true"], report_url=url, report_token="tok\nCARBONSHIFT_REPORT_TOKEN\nrm -rf ~")
    with pytest.raises(ProviderError, match="characters a batch script cannot carry") as info:
        render_script(odd, CLUSTER, settings.slurm.clusters[CLUSTER], tmp_path / "run")
    assert "rm -rf" not in str(info.value)
    bare = render_script(
        sending, CLUSTER, settings_for(tmp_path, track=False).slurm.clusters[CLUSTER], tmp_path
    )
    assert "tok_1" not in bare and "--report-url" not in bare  # no tracker, nothing to send


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    cases = [
        ({"bad name!": {"zone": "DE"}}, "slurm.clusters"),
        ({"c": {}}, "slurm.clusters.c"),
        ({"c": {"zone": "DE", "region": "aws:us-east-1"}}, "slurm.clusters.c"),
        ({"c": {"region": "us-east-1"}}, "slurm.clusters.c.region"),
        ({"c": {"zone": "DE", "extra_args": ["--time=5"]}}, "slurm.clusters.c.extra_args"),
        ({"c": {"zone": "DE", "extra_args": ["qos=low"]}}, "slurm.clusters.c.extra_args"),
        ({"c": {"zone": "DE", "work_dir": "relative/dir"}}, "slurm.clusters.c.work_dir"),
        ({"c": {"zone": "DE", "node_dir": "scratch"}}, "slurm.clusters.c.node_dir"),
        ({"c": {"zone": "DE", "node_dir": "/scratch/%u"}}, "slurm.clusters.c.node_dir"),
        ({"c": {"zone": "DE", "partition": "a b"}}, "slurm.clusters.c.partition"),
        ({"c": {"zone": "DE", "nope": 1}}, "slurm.clusters.c.nope"),
    ]
    for clusters, key in cases:
        with pytest.raises(ConfigError, match=rf"setting '{key}"):
            load_settings(None, slurm={"clusters": clusters})
    unknown = load_settings(None, slurm={"clusters": {"c": {"region": "aws:mars-1"}}})
    with pytest.raises(UserInputError, match=r"slurm\.clusters\.c\.region"):
        cluster_locations(unknown)


def test_clusters_are_placement_targets_the_planner_ranks(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        slurm={
            "clusters": {
                "nordic": {"zone": "SE", "pue": 1.1},
                "virginia": {"region": "aws:us-east-1"},
            }
        },
    )
    catalog = build_catalog(settings)
    nordic, virginia = catalog.resolve("slurm:nordic"), catalog.resolve("slurm:virginia")
    assert (nordic.zone, nordic.pue, nordic.country) == ("SE", 1.1, "SE")
    aws = catalog.resolve("aws:us-east-1")
    assert (virginia.zone, virginia.pue, virginia.lat) == (aws.zone, aws.pue, aws.lat)
    now = datetime(2030, 3, 5, tzinfo=UTC)
    spec = parse_jobspec(
        {"name": "j", "command": ["x"], "duration": "1h", "placement": {"providers": ["slurm"]}}
    )
    advice = advise(spec, catalog=catalog, service=build_service(settings, FixedClock(now)), now=now)
    assert {o.ref for o in advice.plan.options} == {"slurm:nordic", "slurm:virginia"}
    best = advice.plan.best
    assert (best.provider, best.region) == ("slurm", "nordic")  # Sweden's grid is the cleaner

    assert "slurm" in provider_names()
    adapter = get_provider("slurm", settings)
    assert isinstance(adapter, SlurmProvider) and isinstance(adapter, Provider)
    assert adapter.regions() == ["nordic", "virginia"]


def test_the_scheduler_places_a_job_on_a_cluster_and_falls_back_on_a_refusal(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """The daemon with `scheduler.providers: [slurm]`: the plan ranks two clusters by their grids; the
    cleaner one refuses at sbatch (its partition does not exist), so the run goes to the next one, runs
    there for real, and its tracker's report closes the run."""
    from carbonshift.scheduler import RunState, Scheduler
    from tests.scheduler.helpers import NOW, make_settings, spec, wait_for, window

    common = {"carbonshift": str(TRACKER), "time_margin_s": 60}
    settings = make_settings(
        tmp_path,
        scheduler={"providers": ["local", "slurm"]},
        slurm={
            "clusters": {
                "nordic": {"zone": "SE", "partition": "no-such-partition", **common},
                "berlin": {"zone": "DE", "partition": "debug", **common},
            }
        },
    )
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(settings, clock=clock)
    sched.start(background=False)
    try:
        assert isinstance(sched.providers["slurm"], SlurmProvider)
        job = sched.submit(
            spec(
                duration="10m",
                command=["sh", "-c", "echo ran on $SLURM_JOB_PARTITION"],
                hardware={"vcpus": 1, "memory_gb": 0.25},
                placement={"providers": ["slurm"]},
                window=window(NOW, NOW + timedelta(hours=1)),
            )
        )
        run = job.runs[0]
        assert (run.provider, run.region) == ("slurm", "nordic")  # Sweden's grid is the cleaner
        sched.tick()
        run = sched.get_job(job.id).runs[0]
        assert run.status is RunState.RUNNING and (run.provider, run.region) == ("slurm", "berlin"), run
        assert run.refusals and run.refusals[0]["code"] == "InvalidPartition"

        def finished() -> bool:
            clock.advance(30)
            sched.tick()
            return sched.get_job(job.id).runs[0].status is not RunState.RUNNING

        wait_for(finished, timeout=30, what="the Slurm job to finish")
        run = sched.get_job(job.id).runs[0]
        assert run.status is RunState.SUCCEEDED, (run.error, [e.reason for e in run.events])
        assert run.actual is not None and run.actual["zone"] == "DE"  # measured where it ran
        log = Path(settings.resolved_data_dir()) / "scheduler" / "slurm" / "berlin" / run.id / "output.log"
        assert "ran on debug" in log.read_text()
    finally:
        sched.shutdown()


# ---- queued ahead: the scheduler submits at plan time, Slurm starts the job at its planned start --------
def _squeue_state(job_id: str) -> str:
    """STATE|REASON|START of one job."""
    return squeue(f"--jobs={job_id}", "--format=%T|%r|%S").strip()


def test_prepare_queues_ahead_and_a_second_prepare_moves_the_start(provider: SlurmProvider) -> None:
    rid = run_id("prepare")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    first = provider.prepare(request(rid, ["true"], not_before=start))
    assert _squeue_state(first.instance_id).startswith("PENDING|BeginTime|")
    assert provider.prepare(request(rid, ["true"], not_before=start)).instance_id == first.instance_id

    later = start + timedelta(hours=1)
    moved = provider.prepare(request(rid, ["true"], not_before=later))
    assert moved.instance_id == first.instance_id and jobs_named(rid) == [first.instance_id]
    shown = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", first.instance_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    begins = datetime.fromisoformat(shown.split("StartTime=", 1)[1].split()[0]).astimezone(UTC)
    assert abs((begins - later).total_seconds()) <= 2, shown  # Slurm's clock has whole seconds
    provider.terminate(moved)
    assert wait_status(provider, moved, ended).state is InstanceState.TERMINATED


def _queue_settings(tmp_path: Path, now: datetime) -> Settings:
    from tests.scheduler.helpers import hourly, make_settings

    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    return make_settings(
        tmp_path,
        {"lab": hourly(start, 72, lambda h: 300.0)},
        scheduler={"providers": ["local", "slurm"]},
        slurm={
            "clusters": {
                CLUSTER: {"zone": "LAB-ZONE", "partition": "debug", "track": False, "time_margin_s": 60}
            }
        },
    )


def _submit(sched: Any, earliest: datetime, duration: str, command: list[str]) -> Any:
    """A one-CPU job on the cluster, in a window from `earliest` 10 minutes long."""
    from tests.scheduler.helpers import spec, window

    return sched.submit(
        spec(
            duration=duration,
            command=command,
            hardware={"vcpus": 1, "memory_gb": 0.25},
            placement={"providers": ["slurm"]},
            window=window(earliest, earliest + timedelta(minutes=10)),
        )
    )


def test_the_scheduler_queues_a_run_ahead_slurm_starts_it_on_time_and_a_restart_does_not_resubmit(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """A run planned 15 s ahead is in squeue as PENDING (BeginTime) right after the submission's
    tick; a restarted daemon finds it and submits nothing; Slurm starts it at its planned start (no tick
    needed); the daemon follows it to its end."""
    from carbonshift.scheduler import RunState, Scheduler

    now = datetime.now(UTC)
    settings = _queue_settings(tmp_path, now)
    earliest = now.replace(microsecond=0) + timedelta(seconds=15)
    marker = tmp_path / "started"
    sched = Scheduler.from_settings(settings)
    sched.start(background=False)
    try:
        # room past its 1 min (Slurm drops a job that cannot end, time limit and all, by the
        # deadline): flat intensity, so the earliest start is the plan's
        # written whole, then renamed: the poll below must never read a half-written (empty) marker
        job = _submit(
            sched, earliest, "1m", ["sh", "-c", f"date +%s > {marker}.part && mv {marker}.part {marker}"]
        )
        run = job.runs[0]
        assert (run.provider, run.region, run.planned_start) == ("slurm", CLUSTER, earliest)
        sched.tick()
        run = sched.get_run(run.id)
        assert run.status is RunState.WAITING and run.instance_id is not None, run
        job_id = run.instance_id
        assert jobs_named(run.id) == [job_id]
        assert _squeue_state(job_id).startswith("PENDING|BeginTime|"), _squeue_state(job_id)
    finally:
        sched.shutdown()

    again = Scheduler.from_settings(settings)  # a restarted daemon
    again.start(background=False)
    try:
        again.tick()
        assert jobs_named(run.id) == [job_id]  # found, not submitted again
        assert _squeue_state(job_id).startswith("PENDING|BeginTime|")
        assert again.get_run(run.id).status is RunState.WAITING

        wait_for_marker = time.monotonic() + 200
        while not marker.exists() and time.monotonic() < wait_for_marker:
            time.sleep(0.2)  # no tick: Slurm starts it by itself
        assert marker.exists(), _squeue_state(job_id)
        assert int(marker.read_text()) >= int(earliest.timestamp()) - 1

        deadline = time.monotonic() + 60
        while again.get_run(run.id).status is not RunState.SUCCEEDED and time.monotonic() < deadline:
            again.tick()
            time.sleep(0.2)
        done = again.get_run(run.id)
        assert done.status is RunState.SUCCEEDED, [e.reason for e in done.events]
        assert done.instance_id == job_id and jobs_named(run.id) == [job_id]
    finally:
        again.shutdown()


def test_cancelling_a_run_queued_on_slurm_cancels_its_pending_job(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    from carbonshift.scheduler import RunState, Scheduler

    now = datetime.now(UTC)
    settings = _queue_settings(tmp_path, now)
    earliest = now.replace(microsecond=0) + timedelta(hours=1)
    sched = Scheduler.from_settings(settings)
    sched.start(background=False)
    try:
        job = _submit(sched, earliest, "10m", ["true"])
        sched.tick()
        run = sched.get_run(job.runs[0].id)
        assert run.instance_id is not None and _squeue_state(run.instance_id).startswith("PENDING|BeginTime")
        assert sched.cancel(job.id).runs[0].status is RunState.CANCELLED
        sched.tick()
        assert _squeue_state(run.instance_id).startswith("CANCELLED")
        assert sched.get_run(run.id).release == {**(sched.get_run(run.id).release or {}), "state": "done"}
    finally:
        sched.shutdown()
