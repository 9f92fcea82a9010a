"""The Kubernetes adapter with the real `kubernetes` client over HTTP against a local fake of the batch/v1
Jobs API (kube_fake.py), reached through the cluster's `server` (no kubeconfig): the Job it creates
(suspension, annotations, labels, resources, deadline, the tracker around the command, env), idempotent
launches, prepare-then-launch, status mapping, terminate/gone, error mapping, the catalog location of a
cluster, and the scheduler placing a spec on `kubernetes:NAME` and running it there."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from carbonshift import runtime
from carbonshift.clock import FixedClock
from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import JobSpec
from carbonshift.errors import ConfigError
from carbonshift.providers.base import CapacityError, InstanceState, ProviderError
from carbonshift.providers.kubernetes import (
    LABEL_RUN,
    KubernetesProvider,
    cluster_locations,
    job_body,
    job_name,
    label_value,
    secret_name,
)
from carbonshift.providers.registry import get_provider
from tests.providers.conftest import NOW, make_request, make_spec
from tests.providers.kube_fake import LABEL_VALUE, FakeKubernetes

pytest.importorskip("kubernetes", reason="needs the kubernetes extra")

CLUSTER = "gpu-east"
NS = "ml"
IMAGE = "ghcr.io/acme/trainer:1.4"


def cluster(fake: FakeKubernetes, **overrides: Any) -> dict[str, Any]:
    return {"region": "aws:us-east-1", "server": fake.url, "namespace": NS, "image": IMAGE, **overrides}


def settings_for(fake: FakeKubernetes, **overrides: Any) -> Settings:
    return Settings(kubernetes={"clusters": {CLUSTER: cluster(fake, **overrides)}})


def provider(fake: FakeKubernetes, now: Any = NOW, **overrides: Any) -> KubernetesProvider:
    return KubernetesProvider(settings_for(fake, **overrides), clock=lambda: now)


def gpu_spec(**overrides: Any) -> JobSpec:
    return make_spec(
        hardware={"gpu": "A100", "gpus": 2, "vcpus": 8, "memory_gb": 30},
        env={"MODEL_DIR": "/data/models", "QUOTED": "a 'b' $(c)"},
        **overrides,
    )


# ---- the Job ------------------------------------------------------------------------------------------


def test_prepare_creates_a_suspended_job_with_annotations_labels_resources_and_tracked_command(
    kube: FakeKubernetes,
) -> None:
    start = NOW + timedelta(hours=2)
    request = make_request(CLUSTER, run_id="run-k8s-1", spec=gpu_spec(), not_before=start, report_token="tok")
    handle = provider(kube).prepare(request)

    (post,) = kube.calls("POST")
    assert post.path == f"/apis/batch/v1/namespaces/{NS}/jobs"
    body = post.body
    name = job_name("run-k8s-1")
    assert body["metadata"]["name"] == name and len(name) <= 63
    spec = body["spec"]
    assert spec["suspend"] is True
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["activeDeadlineSeconds"] == 4 * 3600  # from the planned start to the deadline (NOW + 6 h)
    annotations = body["metadata"]["annotations"]
    assert annotations[LABEL_RUN] == "run-k8s-1"
    assert annotations["carbonshift.io/planned-start"] == "2026-11-24T14:00:00Z"
    assert annotations["carbonshift.io/deadline"] == "2026-11-24T18:00:00Z"
    labels = body["metadata"]["labels"]
    assert labels == {
        LABEL_RUN: "run-k8s-1",
        "carbonshift.io/job": "train-model",
        "app.kubernetes.io/managed-by": "carbonshift",
    }
    pod = spec["template"]
    assert pod["metadata"]["labels"] == labels  # the run's pods are found by the same label
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == [
        "carbonshift",
        "track",
        "--region",
        "aws:us-east-1",
        "--report",
        "/tmp/report.json",
        "--",
        "python",
        "train.py",
    ]
    assert container["env"] == [
        {"name": "MODEL_DIR", "value": "/data/models"},
        {"name": "QUOTED", "value": "a 'b' $(c)"},
        {"name": "CARBONSHIFT_RUN_ID", "value": "run-k8s-1"},
    ]
    assert container["resources"] == {
        "requests": {"cpu": "8", "memory": "30720Mi", "nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    assert "tok" not in str(body)  # the run's report token never goes into the cluster's objects
    assert kube.secrets == {}  # a token without a report URL: nothing to send, no Secret

    assert handle.provider == "kubernetes" and handle.region == CLUSTER and handle.run_id == "run-k8s-1"
    assert handle.instance_id == f"{NS}/{name}"
    assert handle.details["suspended"] is True and handle.details["namespace"] == NS
    status = provider(kube).status(handle)
    assert status.state is InstanceState.PENDING and "suspended until 2026-11-24T14:00:00Z" in status.detail


def test_string_command_runs_in_a_shell_and_track_false_runs_it_bare(kube: FakeKubernetes) -> None:
    request = make_request(CLUSTER, run_id="run-sh", spec=make_spec(command="echo $HOME && ./go"))
    provider(kube, track=False, region=None, zone="DE").launch(request)
    (container,) = kube.calls("POST")[0].body["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c", "echo $HOME && ./go"]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16384Mi"}}  # the spec's defaults

    request = make_request(CLUSTER, run_id="run-zone", spec=make_spec(command="./go"))
    provider(kube, zone="DE", region=None).launch(request)
    command = kube.calls("POST")[1].body["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:4] == ["carbonshift", "track", "--zone", "DE"] and command[-3:] == [
        "/bin/sh",
        "-c",
        "./go",
    ]


def test_spec_image_and_labels_win_when_the_spec_has_them() -> None:
    class LabelledSpec(JobSpec):  # the fields a later spec version may have
        image: str | None = None
        labels: dict[str, str] = Field(default_factory=dict)

    spec = LabelledSpec.model_validate(
        {
            "name": "train",
            "command": ["python", "t.py"],
            "duration": "1h",
            "image": "registry.local/own:2",
            "labels": {"team": "Vision Team", "project": "detector"},
        }
    )
    cfg = Settings(kubernetes={"clusters": {CLUSTER: {"zone": "DE", "server": "http://127.0.0.1:1"}}})
    body = job_body(
        make_request(CLUSTER, spec=spec), CLUSTER, cfg.kubernetes.clusters[CLUSTER], suspend=False, start=NOW
    )
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/own:2"
    labels = body["metadata"]["labels"]
    assert labels["carbonshift.io/project"] == "detector"
    assert LABEL_VALUE.match(labels["carbonshift.io/team"]) and labels["carbonshift.io/team"].startswith(
        "Vision-Team"
    )


def test_odd_run_ids_make_valid_names_and_labels(kube: FakeKubernetes) -> None:
    odd = "Run_ID.with spaces/and:colons-" + "x" * 80
    handle = provider(kube).launch(make_request(CLUSTER, run_id=odd))  # the fake validates like the API
    assert handle.run_id == odd
    assert LABEL_VALUE.match(label_value(odd)) and len(label_value(odd)) <= 63
    assert label_value("run-0001") == "run-0001"
    assert job_name(odd) != job_name(odd + "y")
    assert provider(kube).find(odd, CLUSTER) == handle


# ---- launch, prepare, idempotency -----------------------------------------------------------------------


def test_launch_creates_unsuspended_and_is_idempotent(kube: FakeKubernetes) -> None:
    k8s = provider(kube)
    first = k8s.launch(make_request(CLUSTER, run_id="run-idem"))
    second = k8s.launch(make_request(CLUSTER, run_id="run-idem"))
    assert second == first
    (post,) = kube.calls("POST")
    assert post.body["spec"]["suspend"] is False
    assert post.body["spec"]["activeDeadlineSeconds"] == 6 * 3600  # from now to the deadline
    assert kube.calls("PATCH") == []
    assert len(kube.jobs) == 1


def test_prepare_then_launch_resumes_the_same_job(kube: FakeKubernetes) -> None:
    start = NOW + timedelta(hours=2)
    request = make_request(CLUSTER, run_id="run-prep", not_before=start)
    prepared = provider(kube).prepare(request)
    assert provider(kube).prepare(request) == prepared  # idempotent, nothing changed: no patch
    assert kube.calls("PATCH") == []

    launched = provider(kube, now=start).launch(request)  # the daemon, at the planned start
    assert launched.instance_id == prepared.instance_id and launched.details["suspended"] is False
    assert len(kube.calls("POST")) == 1
    (patch,) = kube.calls("PATCH")
    # a dict body: the client sends it as a strategic merge patch (the same as a merge patch here)
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert patch.body["spec"] == {"suspend": False, "activeDeadlineSeconds": 4 * 3600}
    assert patch.body["metadata"]["annotations"]["carbonshift.io/resumed-at"] == "2026-11-24T14:00:00Z"
    job = kube.job(prepared.details["job"], NS)
    assert job["spec"]["suspend"] is False
    kube.set_status(prepared.details["job"], NS, active=1, ready=1)
    assert provider(kube).status(launched).state is InstanceState.RUNNING

    provider(kube, now=start).launch(request)  # once more: already running, nothing to do
    assert len(kube.calls("PATCH")) == 1


def test_prepare_again_moves_the_planned_start_of_a_waiting_job(kube: FakeKubernetes) -> None:
    request = make_request(CLUSTER, run_id="run-move", not_before=NOW + timedelta(hours=1))
    handle = provider(kube).prepare(request)
    moved = make_request(CLUSTER, run_id="run-move", not_before=NOW + timedelta(hours=3))
    provider(kube).prepare(moved)
    (patch,) = kube.calls("PATCH")
    assert patch.body["metadata"]["annotations"]["carbonshift.io/planned-start"] == "2026-11-24T15:00:00Z"
    job = kube.job(handle.details["job"], NS)
    assert job["spec"]["suspend"] is True and job["spec"]["activeDeadlineSeconds"] == 3 * 3600


def test_prepare_at_or_after_the_planned_start_creates_it_running(kube: FakeKubernetes) -> None:
    provider(kube).prepare(make_request(CLUSTER, run_id="run-late", not_before=NOW - timedelta(minutes=5)))
    provider(kube).prepare(make_request(CLUSTER, run_id="run-none"))  # no planned start: now
    assert [p.body["spec"]["suspend"] for p in kube.calls("POST")] == [False, False]


def test_a_create_that_races_another_answers_409_and_returns_the_existing(kube: FakeKubernetes) -> None:
    first = provider(kube).launch(make_request(CLUSTER, run_id="run-race"))
    kube.stale_reads = 1  # the lookup does not see it yet: the create gets 409 AlreadyExists
    second = provider(kube).launch(make_request(CLUSTER, run_id="run-race"))
    assert second.instance_id == first.instance_id
    assert len(kube.calls("POST")) == 2 and len(kube.jobs) == 1


def test_a_job_of_that_name_from_someone_else_is_not_taken_over(kube: FakeKubernetes) -> None:
    provider(kube).launch(make_request(CLUSTER, run_id="run-theirs"))
    job = kube.job(job_name("run-theirs"), NS)
    job["metadata"]["annotations"][LABEL_RUN] = "someone-else"
    with pytest.raises(ProviderError, match="not this run's"):
        provider(kube).launch(make_request(CLUSTER, run_id="run-theirs"))


def test_find_by_label_checks_the_exact_run_id_and_managed_lists_them(kube: FakeKubernetes) -> None:
    k8s = provider(kube)
    assert k8s.find("run-a", CLUSTER) is None
    a = k8s.launch(make_request(CLUSTER, run_id="run-a"))
    b = k8s.prepare(make_request(CLUSTER, run_id="run-b", not_before=NOW + timedelta(hours=1)))
    assert k8s.find("run-a", CLUSTER) == a
    lists = [r for r in kube.calls("GET") if r.path.endswith("/jobs")]
    assert lists and lists[-1].query["labelSelector"] == [f"{LABEL_RUN}=run-a"]
    assert sorted(h.run_id for h in k8s.managed()) == ["run-a", "run-b"]
    assert {h.instance_id for h in k8s.managed()} == {a.instance_id, b.instance_id}
    assert k8s.regions() == [CLUSTER]


# ---- the report comes back over HTTP, its token in a per-run Secret ---------------------------------------

TOKEN = "tok-Zq8_the-runs-own-report-token"
REPORT_URL = "https://carbonshift.example/api/v1/runs/run-back/report"


def reporting(run_id: str = "run-back", token: str = TOKEN, **kwargs: Any) -> Any:
    return make_request(CLUSTER, run_id=run_id, report_url=REPORT_URL, report_token=token, **kwargs)


def test_the_report_token_is_in_a_per_run_secret_and_never_in_the_job(
    kube: FakeKubernetes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    k8s = provider(kube)
    handle = k8s.launch(reporting())
    name, secret = job_name("run-back"), secret_name("run-back")

    stored = kube.secrets[(NS, secret)]
    assert kube.secret_value(secret, "token", NS) == TOKEN
    assert stored["type"] == "Opaque" and stored["metadata"]["labels"][LABEL_RUN] == "run-back"
    assert stored["metadata"]["annotations"][LABEL_RUN] == "run-back"
    job = kube.job(name, NS)
    assert stored["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"]}
    ]  # the garbage collector deletes it with the Job, whoever deletes the Job
    order = [r.path.rsplit("/", 1)[-1] for r in kube.requests if r.method == "POST"]
    assert order == ["secrets", "jobs"]  # the Secret exists before the Job's pod can start

    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:8] == [
        "carbonshift", "track", "--region", "aws:us-east-1", "--report", "/tmp/report.json",
        "--report-url", REPORT_URL,
    ]  # fmt: skip
    assert container["command"][8:] == ["--", "python", "train.py"]
    assert container["env"][-1] == {
        "name": "CARBONSHIFT_REPORT_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}},
    }
    sent = [r for r in kube.requests if "/jobs" in r.path]
    assert TOKEN not in json.dumps([r.body for r in sent]) + json.dumps(job)
    assert TOKEN not in repr(handle) + caplog.text

    # idempotent: a relaunch reuses the Secret as it is (read, not written: it is owned already)
    (owned,) = kube.calls("PATCH", "secrets")
    assert list(owned.body) == ["metadata"]
    assert k8s.launch(reporting()) == handle
    assert len(kube.calls("POST", "secrets")) == 1 and len(kube.calls("PATCH", "secrets")) == 1
    assert list(kube.secrets) == [(NS, secret)]

    # cancel: the Job and its Secret go
    k8s.terminate(handle)
    assert kube.jobs == {} and kube.secrets == {}
    k8s.terminate(handle)  # again: nothing left, no error
    assert TOKEN not in caplog.text


def test_prepare_makes_the_secret_and_launch_at_the_start_keeps_it(kube: FakeKubernetes) -> None:
    start = NOW + timedelta(hours=2)
    prepared = provider(kube).prepare(reporting(not_before=start))
    assert kube.job(prepared.details["job"], NS)["spec"]["suspend"] is True
    assert kube.secret_value(secret_name("run-back"), "token", NS) == TOKEN
    patches = len(kube.calls("PATCH", "secrets"))  # the owner, once
    provider(kube, now=start).launch(reporting(not_before=start))
    assert len(kube.calls("POST", "secrets")) == 1 and len(kube.calls("PATCH", "secrets")) == patches == 1
    assert len(kube.secrets) == 1


def test_a_new_token_for_the_run_replaces_the_secrets_value(kube: FakeKubernetes) -> None:
    provider(kube).launch(reporting())
    provider(kube).launch(reporting(token="tok-minted-again"))
    assert kube.secret_value(secret_name("run-back"), "token", NS) == "tok-minted-again"
    (patch,) = [p for p in kube.calls("PATCH", "secrets") if "data" in p.body]
    assert list(patch.body) == ["data"] and len(kube.secrets) == 1


def test_a_job_that_cannot_be_created_takes_its_secret_with_it(kube: FakeKubernetes) -> None:
    kube.quota_exceeded = True
    with pytest.raises(CapacityError) as info:
        provider(kube).launch(reporting())
    assert kube.secrets == {} and kube.jobs == {}
    assert TOKEN not in str(info.value)


def test_secret_refusals_are_clear_and_never_show_the_token(kube: FakeKubernetes) -> None:
    kube.forbidden.add(("create", "secrets"))
    with pytest.raises(ProviderError) as info:
        provider(kube).launch(reporting())
    text = str(info.value)
    assert "RBAC forbids create on secrets (API group core)" in text and "delete on secrets" in text
    assert kube.jobs == {} and TOKEN not in text  # no Job whose pod would wait for a missing Secret

    kube.forbidden.clear()
    provider(kube).launch(reporting(run_id="run-other"))
    theirs = kube.secrets.pop((NS, secret_name("run-other")))
    theirs["metadata"]["name"] = secret_name("run-back")
    kube.secrets[(NS, secret_name("run-back"))] = theirs
    with pytest.raises(ProviderError, match="not this run's") as info:
        provider(kube).launch(reporting())
    assert TOKEN not in str(info.value) and (NS, job_name("run-back")) not in kube.jobs

    kube.forbidden.add(("delete", "secrets"))  # a refused delete is logged: the GC removes it anyway
    handle = provider(kube).find("run-other", CLUSTER)
    assert handle is not None
    provider(kube).terminate(handle)
    assert (NS, job_name("run-other")) not in kube.jobs


def test_no_tracker_means_no_token_and_no_secret(kube: FakeKubernetes) -> None:
    provider(kube, track=False).launch(reporting())
    (container,) = kube.calls("POST")[0].body["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "train.py"]
    assert kube.secrets == {} and all("valueFrom" not in e for e in container["env"])


# ---- status, terminate, gone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "finish", "pod_exit", "state", "code", "words"),
    [
        ({"active": 1, "ready": 1}, None, None, InstanceState.RUNNING, None, "1 pod(s) active"),
        ({"active": 1, "ready": 0}, None, None, InstanceState.PENDING, None, "not running yet"),
        ({}, None, None, InstanceState.PENDING, None, "no pod yet"),
        (None, ("Complete", "", ""), None, InstanceState.SUCCEEDED, 0, "Complete"),
        (
            None,
            ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            3,
            InstanceState.FAILED,
            3,
            "BackoffLimitExceeded: Job has reached the specified backoff limit (exit code 3)",
        ),
        (
            None,
            ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
            None,
            InstanceState.FAILED,
            None,
            "DeadlineExceeded: Job was active longer than specified deadline",
        ),
    ],
)
def test_status_from_the_job_conditions(
    kube: FakeKubernetes,
    status: dict[str, Any] | None,
    finish: tuple[str, str, str] | None,
    pod_exit: int | None,
    state: InstanceState,
    code: int | None,
    words: str,
) -> None:
    k8s = provider(kube)
    handle = k8s.launch(make_request(CLUSTER, run_id="run-status"))
    name = handle.details["job"]
    if status is not None:
        kube.set_status(name, NS, **status)
    if finish is not None:
        kube.finish(name, NS, kind=finish[0], reason=finish[1], message=finish[2])
    if pod_exit is not None:
        kube.add_pod(name, pod_exit, NS)
    got = k8s.status(handle)
    assert got.state is state and got.exit_code == code
    assert words in got.detail


def test_exit_code_is_best_effort_when_pods_are_not_readable(kube: FakeKubernetes) -> None:
    k8s = provider(kube)
    handle = k8s.launch(make_request(CLUSTER, run_id="run-nopods"))
    kube.finish(handle.details["job"], NS, kind="Failed", reason="BackoffLimitExceeded")
    kube.add_pod(handle.details["job"], 9, NS)
    kube.forbidden.add(("list", "pods"))
    got = k8s.status(handle)
    assert got.state is InstanceState.FAILED and got.exit_code is None


def test_terminate_deletes_in_the_foreground_and_gone_waits_for_it(kube: FakeKubernetes) -> None:
    k8s = provider(kube)
    handle = k8s.launch(make_request(CLUSTER, run_id="run-stop"))
    kube.add_pod(handle.details["job"], 0, NS)
    kube.delete_lingers = 1
    k8s.terminate(handle)
    assert kube.deleted_with == "Foreground"
    assert k8s.status(handle).state is InstanceState.TERMINATED  # being deleted: pods still going
    assert k8s.gone(handle) is True  # then the Job is gone, and its pods with it
    assert k8s.status(handle).state is InstanceState.UNKNOWN
    k8s.terminate(handle)  # already gone: no error
    assert k8s.managed() == [] and kube.pods == {}


# ---- errors ----------------------------------------------------------------------------------------------------


def test_quota_exceeded_is_a_capacity_error(kube: FakeKubernetes) -> None:
    kube.quota_exceeded = True
    with pytest.raises(CapacityError) as info:
        provider(kube).launch(make_request(CLUSTER, run_id="run-quota"))
    assert info.value.code == "ExceededQuota" and info.value.region == CLUSTER
    assert "exceeded quota" in str(info.value)


def test_rbac_refusal_names_the_verb_and_resource(kube: FakeKubernetes) -> None:
    kube.forbidden.add(("create", "jobs"))
    with pytest.raises(ProviderError) as info:
        provider(kube).launch(make_request(CLUSTER, run_id="run-rbac"))
    assert not isinstance(info.value, CapacityError)
    text = str(info.value)
    assert "RBAC forbids create on jobs (API group batch)" in text and f"namespace {NS}" in text
    assert "cannot create resource" in text  # the API's own words follow

    kube.forbidden = {("list", "jobs")}
    with pytest.raises(ProviderError, match="RBAC forbids list on jobs"):
        provider(kube).find("run-rbac", CLUSTER)


def test_missing_namespace_is_a_clear_error(kube: FakeKubernetes) -> None:
    with pytest.raises(ProviderError, match="namespace nowhere does not exist on cluster gpu-east") as info:
        provider(kube, namespace="nowhere").launch(make_request(CLUSTER, run_id="run-ns"))
    assert "kubernetes.clusters.gpu-east.namespace" in str(info.value)


def test_invalid_job_carries_the_api_message(kube: FakeKubernetes) -> None:
    kube.invalid = "spec.template.spec.containers[0].resources.requests[nvidia.com/gpu]: Invalid value"
    with pytest.raises(
        ProviderError, match=r"refused the Job as invalid: Job.batch .* is invalid: spec.template"
    ):
        provider(kube).launch(make_request(CLUSTER, run_id="run-422"))


def test_unknown_cluster_missing_image_and_unreachable_server(kube: FakeKubernetes) -> None:
    with pytest.raises(ProviderError, match=r"no cluster 'elsewhere' under kubernetes\.clusters"):
        provider(kube).launch(make_request("elsewhere"))
    with pytest.raises(ProviderError, match=r"set kubernetes\.clusters\.gpu-east\.image"):
        provider(kube, image=None).launch(make_request(CLUSTER, run_id="run-noimage"))
    dead = FakeKubernetes()
    url = dead.url
    dead.close()
    with pytest.raises(
        ProviderError, match=f"cannot reach the API server of cluster gpu-east \\(server {url}\\)"
    ):
        provider(kube, server=url).launch(make_request(CLUSTER, run_id="run-dead"))


def test_a_missing_sdk_says_which_extra_to_install(
    kube: FakeKubernetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    with pytest.raises(ProviderError, match=r"pip install 'carbonshift\[kubernetes\]'"):
        provider(kube).launch(make_request(CLUSTER))


def test_a_bad_kubeconfig_is_a_provider_error_naming_the_context(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
    )
    cfg = Settings(
        kubernetes={
            "clusters": {
                CLUSTER: {"zone": "DE", "context": "prod", "kubeconfig": str(tmp_path / "kubeconfig")}
            }
        }
    )
    with pytest.raises(ProviderError, match="cannot load the credentials of context prod of"):
        KubernetesProvider(cfg).find("run-1", CLUSTER)


# ---- settings, catalog, registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clusters", "words"),
    [
        ({"GPU_East": {"zone": "DE"}}, "kubernetes.clusters"),
        ({"a": {"zone": "DE", "region": "aws:us-east-1"}}, "exactly one of region"),
        ({"a": {}}, "exactly one of region"),
        ({"a": {"region": "us-east-1"}}, "kubernetes.clusters.a.region"),
        ({"a": {"zone": "DE", "namespace": "Bad_NS"}}, "kubernetes.clusters.a.namespace"),
        ({"a": {"zone": "DE", "server": "127.0.0.1:8001"}}, "kubernetes.clusters.a.server"),
        ({"a": {"zone": "DE", "server": "http://127.0.0.1:8001", "context": "x"}}, "only one way"),
        ({"a": {"zone": "DE", "image": "has space"}}, "kubernetes.clusters.a.image"),
        ({"a": {"zone": "DE", "nodes": 3}}, "kubernetes.clusters.a.nodes"),
    ],
)
def test_settings_errors_name_the_key(clusters: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=r"kubernetes\.clusters") as info:
        load_settings(None, kubernetes={"clusters": clusters})
    assert words in str(info.value)


def test_each_cluster_is_a_catalog_location_with_its_region_grid(kube: FakeKubernetes) -> None:
    settings = Settings(
        kubernetes={
            "clusters": {
                CLUSTER: cluster(kube),
                "lab": {"zone": "DE", "pue": 1.4, "server": kube.url},
            }
        }
    )
    catalog = runtime.build_catalog(settings)
    aws = catalog.region("aws", "us-east-1")
    east = catalog.region("kubernetes", CLUSTER)
    assert (east.zone, east.country, east.pue, east.lat) == (aws.zone, aws.country, aws.pue, aws.lat)
    assert east.g_per_kwh == aws.g_per_kwh and "aws:us-east-1" in east.location
    lab = catalog.region("kubernetes", "lab")
    assert lab.zone == "DE" and lab.pue == 1.4 and lab.country == "DE"
    assert catalog.resolve("kubernetes:lab") == lab
    assert [loc.region for loc in cluster_locations(settings)] == [CLUSTER, "lab"]

    # an explicit `locations:` entry for the same name wins
    own = Settings(
        kubernetes=settings.kubernetes,
        locations=[{"provider": "kubernetes", "region": "lab", "zone": "FR", "pue": 1.2}],
    )
    assert runtime.build_catalog(own).region("kubernetes", "lab").zone == "FR"


def test_an_unknown_cluster_region_names_the_key(kube: FakeKubernetes) -> None:
    settings = Settings(kubernetes={"clusters": {CLUSTER: cluster(kube, region="aws:mars-north-1")}})
    with pytest.raises(ConfigError, match=r"kubernetes\.clusters\.gpu-east\.region: unknown aws region"):
        runtime.build_catalog(settings)


def test_the_registry_builds_it_by_name(kube: FakeKubernetes) -> None:
    adapter = get_provider("kubernetes", settings_for(kube))
    assert isinstance(adapter, KubernetesProvider) and adapter.regions() == [CLUSTER]


# ---- the scheduler places a spec on the cluster and runs it there ---------------------------------------------


def test_scheduler_plans_onto_the_cluster_launches_the_job_and_releases_it(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    core = pytest.importorskip("carbonshift.scheduler.core", reason="needs the scheduler core")
    from tests.scheduler.helpers import NOW as START
    from tests.scheduler.helpers import hourly, make_settings, spec, window

    rows = hourly(START - timedelta(days=1), 72, lambda h: 100.0 if h in (26, 27) else 400.0)
    settings = make_settings(
        tmp_path,
        {"lab": rows},
        scheduler={"providers": ["local", "kubernetes"]},
        kubernetes={
            "clusters": {CLUSTER: {"zone": "LAB-ZONE", "country": "ES", **cluster(kube, region=None)}}
        },
    )
    clock = FixedClock(START)
    built = core.Scheduler.from_settings(settings, clock=clock)  # providers from scheduler.providers
    assert isinstance(built.providers["kubernetes"], KubernetesProvider)
    built.shutdown()
    # the same adapter, on the test's clock (the deadline counts from it)
    k8s = KubernetesProvider(settings, clock=clock.now)
    sched = core.Scheduler.from_settings(settings, clock=clock, providers={"kubernetes": k8s})
    try:
        sched.start(background=False)
        job = sched.submit(
            spec(
                name="k8s-train",
                duration="1h",
                placement={"providers": ["kubernetes"]},
                window=window(START, START + timedelta(hours=8)),
            )
        )
        run = job.runs[0]
        assert (run.provider, run.region) == ("kubernetes", CLUSTER)
        assert run.planned_start == START + timedelta(hours=2)  # the dip of the cluster's grid

        clock.advance(2 * 3600)
        sched.tick()
        run = sched.get_run(run.id)
        assert str(run.status.value) == "running", run
        name = job_name(run.id)
        assert run.instance_id == f"{NS}/{name}"
        body = kube.job(name, NS)
        assert body["spec"]["suspend"] is False
        assert body["metadata"]["annotations"][LABEL_RUN] == run.id
        assert body["spec"]["activeDeadlineSeconds"] == 6 * 3600  # from now to the window's deadline
        command = body["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:4] == ["carbonshift", "track", "--zone", "LAB-ZONE"] and command[-1] == "true"

        kube.finish(name, NS)
        clock.advance(600)
        sched.tick()
        done = sched.get_run(run.id)
        assert str(done.status.value) == "succeeded" and done.exit_code == 0
        assert kube.deleted_with == "Foreground" and kube.jobs == {}  # released: nothing left running
        release = done.release
        assert release is not None and release["state"] == "done"
    finally:
        sched.shutdown()
