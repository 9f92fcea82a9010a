"""deploy/helm/carbonshift, rendered by tests/deploy/helm_render.py (no `helm` binary here: see that
module) with default values, with an Ingress, and with an existing Secret; every manifest is validated
against the Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail) for an older and
the newest Kubernetes it knows; the Deployment's spec is checked; and its pods' command and environment,
run here twice on one PostgreSQL database, give one active daemon and one hot standby that takes over."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from carbonshift.config import load_settings
from tests.deploy.helm_render import RenderError, render_chart, render_template
from tests.deploy.helpers import (
    CHART,
    DOCKERFILE,
    Served,
    base_env,
    dockerfile_env,
    parse_dockerfile,
)

TOKEN = "helm-test-token-0123456789abcdef"
REQUIRED = {
    "database": {"url": "postgresql://carbonshift@postgresql:5432/carbonshift"},
    "secret": {"apiToken": TOKEN},
}
INGRESS = {
    **REQUIRED,
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "carbonshift.example.com",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
        "tls": [{"hosts": ["carbonshift.example.com"], "secretName": "carbonshift-tls"}],
    },
    "secret": {
        "apiToken": TOKEN,
        "databasePassword": "db-password",
        "electricitymapsToken": "em-token",
        "watttimeUsername": "wt-user",
        "watttimePassword": "wt-password",
        "extra": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
    },
    "reportUrl": "https://carbonshift.example.com/api/v1/runs/{run_id}/report",
}
EXISTING = {"database": REQUIRED["database"], "existingSecret": "my-carbonshift-secret"}
CASES: dict[str, dict[str, Any]] = {"defaults": REQUIRED, "ingress": INGRESS, "existing-secret": EXISTING}


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def _container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(container)


# --- the renderer keeps Go's semantics -----------------------------------------------------------------

CTX = {
    "Values": {"on": True, "off": False, "empty": "", "m": {"b": 1, "a": [1, 2]}, "s": "x", "n": 2},
    "Release": {"Name": "rel"},
    "Chart": {"AppVersion": "0.1.0"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a:\n  {{- if .Values.on }}\n  b: 1\n  {{- end }}\nc: 2", "a:\n  b: 1\nc: 2"),
        ("a:\n  {{- if .Values.off }}\n  b: 1\n  {{- end }}\nc: 2", "a:\nc: 2"),
        ("{{ if .Values.empty }}{{ .Values.empty }}{{ else }}{{ .Release.Name }}{{ end }}", "rel"),
        ("{{- if not .Values.empty }}\nk: v\n{{- end }}", "\nk: v"),
        ("k:\n  {{- toYaml .Values.m | nindent 2 }}\nz: 1", "k:\n  a:\n  - 1\n  - 2\n  b: 1\nz: 1"),
        ("{{ .Values.empty | default .Chart.AppVersion | quote }}", '"0.1.0"'),
        ("{{ .Values.s | default .Chart.AppVersion }}", "x"),
        ("{{ .Values.on }} {{ .Values.n }} {{ .Values.n | quote }}", 'true 2 "2"'),
        ('x  {{- if .Values.off }}{{ required "never evaluated" .Values.empty }}{{- end -}}  \n y', "xy"),
        ("{{ if .Values.on }}{{ if .Values.off }}1{{ else }}2{{ end }}{{ else }}3{{ end }}", "2"),
    ],
)
def test_renderer_follows_go_templates(template: str, expected: str) -> None:
    assert render_template(template, CTX) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{ range .Values.m }}x{{ end }}",
        '{{ include "x" . }}',
        "{{ $x := 1 }}",
        "{{ .Values.missing }}",
        "{{ .Values.m }}",
        "{{ sha256sum .Values.s }}",
        "{{/* comment */}}",
        "{{ if .Values.on }}open",
        '{{ required "needed" .Values.empty }}',
    ],
)
def test_renderer_refuses_what_it_does_not_render_exactly(template: str) -> None:
    with pytest.raises(RenderError):
        render_template(template, CTX)


# --- the chart -----------------------------------------------------------------------------------------


def test_the_token_and_the_database_url_are_required() -> None:
    with pytest.raises(RenderError, match=r"database\.url"):
        render_chart(CHART)
    with pytest.raises(RenderError, match=r"secret\.apiToken \(or existingSecret\)"):
        render_chart(CHART, {"database": REQUIRED["database"]})
    kinds = {d["kind"] for d in render_chart(CHART, EXISTING)}
    assert kinds == {"Deployment", "Service", "ConfigMap"}, "no Secret when an existing one is named"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_is_valid_kubernetes(case: str) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (the dev extra) is needed to check the chart's output",
    )
    docs = render_chart(CHART, CASES[case], release="carbonshift")
    expected = {"Deployment", "Service", "ConfigMap"} | ({"Secret"} if case != "existing-secret" else set())
    expected |= {"Ingress"} if case == "ingress" else set()
    assert {d["kind"] for d in docs} == expected
    for doc in docs:
        for version in ("1.28", kv.latest_version()):
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{case}: {doc['kind']} invalid for Kubernetes {version} at {path}: {exc.message}"
                )


def test_deployment_two_replicas_probes_resources_and_a_locked_down_pod() -> None:
    docs = _by_kind(render_chart(CHART, REQUIRED))
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2, "one active daemon, one hot standby"
    pod = deployment["spec"]["template"]["spec"]
    container = _container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert ports["http"] == int(env["CARBONSHIFT_PORT"]) == 8765
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]

    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    image_user = next(i.value for i in instructions if i.name == "USER").split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_user != "0"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["enableServiceLinks"] is False, (
        "a Service named carbonshift would set CARBONSHIFT_PORT=tcp://..."
    )

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    image_env = dockerfile_env(instructions, max(i.stage for i in instructions))
    for path in ("/tmp", env["CARBONSHIFT_DATA_DIR"], image_env["CARBONSHIFT_DATA_DIR"]):
        assert "emptyDir" in volumes[mounts[path]], f"{path}: writable emptyDir under the read-only root"
    config_dir, _, config_file = env["CARBONSHIFT_CONFIG"].rpartition("/")
    assert volumes[mounts[config_dir]]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert config_file in docs["ConfigMap"]["data"]
    assert "serve" in container["args"]


def test_names_and_selectors_line_up() -> None:
    docs = _by_kind(render_chart(CHART, INGRESS, release="prod"))
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    backend = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": docs["Service"]["metadata"]["name"], "port": {"name": "http"}}
    assert docs["Ingress"]["spec"]["rules"][0]["host"] == "carbonshift.example.com"
    (source,) = _container(docs)["envFrom"]
    assert source["secretRef"]["name"] == docs["Secret"]["metadata"]["name"] == "prod"
    existing = _by_kind(render_chart(CHART, EXISTING))
    assert _container(existing)["envFrom"][0]["secretRef"]["name"] == "my-carbonshift-secret"


def test_secrets_are_in_the_secret_only() -> None:
    docs = _by_kind(render_chart(CHART, INGRESS))
    assert docs["Secret"]["stringData"] == {
        "CARBONSHIFT_API_TOKEN": TOKEN,
        "PGPASSWORD": "db-password",
        "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": "em-token",
        "CARBONSHIFT_WATTTIME_USERNAME": "wt-user",
        "CARBONSHIFT_WATTTIME_PASSWORD": "wt-password",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    }
    elsewhere = repr([d for d in docs.values() if d["kind"] != "Secret"])
    for value in docs["Secret"]["stringData"].values():
        assert value not in elsewhere
    only_token = _by_kind(render_chart(CHART, REQUIRED))["Secret"]["stringData"]
    assert only_token == {"CARBONSHIFT_API_TOKEN": TOKEN}, "unset credentials are left out, not empty"


def test_the_config_map_is_a_valid_carbonshift_config(tmp_path: Path) -> None:
    docs = _by_kind(render_chart(CHART, {**REQUIRED, "config": {"signal": "average", "ukci_enabled": False}}))
    (name, text) = next(iter(docs["ConfigMap"]["data"].items()))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path)
    assert settings.ukci_enabled is False
    defaults = _by_kind(render_chart(CHART, REQUIRED))["ConfigMap"]["data"][name]
    path.write_text(defaults, encoding="utf-8")
    assert load_settings(path).scheduler.providers == ["local"]


# --- the pods, run here --------------------------------------------------------------------------------


def _pod(docs: dict[str, dict[str, Any]], root: Path) -> tuple[list[str], dict[str, str]]:
    """The container's command line and environment as Kubernetes would give them: the image's
    ENTRYPOINT with the container's args; its env, then the Secret's keys (envFrom); each volume
    mount a directory under root, the ConfigMap's files written into its mount."""
    container = _container(docs)
    dirs: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        directory = root / mount["name"]
        directory.mkdir(parents=True)
        dirs[mount["mountPath"]] = directory
        if mount["name"] == "config":
            for file_name, content in docs["ConfigMap"]["data"].items():
                (directory / file_name).write_text(content, encoding="utf-8")
    env: dict[str, str] = {}
    for item in container["env"]:
        value = item["value"]
        for mount_path, directory in dirs.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                value = str(directory) + value.removeprefix(mount_path)
                break
        env[item["name"]] = value
    for key, value in docs["Secret"]["stringData"].items():
        env.setdefault(key, value)  # explicit env wins over envFrom, as in Kubernetes
    env["CARBONSHIFT_PORT"] = "0"  # two pods on one machine: free ports, announced
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    entrypoint = next(i for i in instructions if i.name == "ENTRYPOINT").exec_form()
    assert entrypoint is not None and entrypoint[-1] == "carbonshift"
    argv = [sys.executable, "-m", "carbonshift", *container["args"]]
    return argv, base_env(HOME=str(dirs["/var/lib/carbonshift"]), **env)


@pytest.mark.postgres
def test_two_pods_make_an_active_daemon_and_a_hot_standby_that_takes_over(
    pg_url: str, tmp_path: Path
) -> None:
    values = {
        **REQUIRED,
        "database": {"url": pg_url},
        "secret": {"apiToken": TOKEN, "databasePassword": "unused"},
    }
    docs = _by_kind(render_chart(CHART, values))
    assert docs["Deployment"]["spec"]["replicas"] == 2
    pods: list[Served] = []
    try:
        for n in range(2):
            argv, env = _pod(docs, tmp_path / f"pod-{n}")
            pods.append(Served(argv, env, cwd=tmp_path / f"pod-{n}" / "data"))
            pods[-1].url()
        assert [p.health()["role"] for p in pods] == ["active", "standby"]
        jobs = requests.get(
            f"http://127.0.0.1:{pods[1].port}/api/v1/jobs",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert jobs.status_code == 200, "the standby's API answers too"
        pods[0].stop(signal.SIGKILL)  # the active pod dies: its connection, and so its lock, goes
        deadline = time.monotonic() + 30
        while pods[1].health()["role"] != "active":
            assert time.monotonic() < deadline, "the standby never took over:\n" + pods[1].output()
            time.sleep(0.5)
    finally:
        codes = [p.stop() for p in pods]
    assert codes[1] == 0, pods[1].output()
    assert not [p for p in pods if TOKEN in p.output()]
    assert not list((tmp_path / "pod-0" / "data").glob("*.db")), "PostgreSQL, not a SQLite file per pod"
