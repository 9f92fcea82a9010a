"""A small local fake of the Kubernetes API paths the Kubernetes adapter uses, for the real `kubernetes`
client over real HTTP (in the style of fakes.py; loopback only).

batch/v1 Jobs: create (201; 409 AlreadyExists on an existing name; 404 for a missing namespace; 422 for
an invalid name, label value or pod template, as the API server checks them), get, list by label
selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`), merge or strategic merge patch of an object (415 for JSON
patch), delete (the propagationPolicy is recorded; a Foreground delete can linger as "being deleted").
core/v1 pods: list by label selector, for exit codes. core/v1 Secrets: create (201; 409 AlreadyExists;
404 for a missing namespace; 422 for an invalid name or data that is not base64; stringData folded into
data as the API server does), get, merge patch, delete (no garbage collector: a Job's deletion leaves
the Secrets it owns, so a test sees what the adapter deletes itself). Refusals on demand: RBAC (403 naming the verb and
resource), a used-up ResourceQuota (403 "exceeded quota"), stale reads (404 for a Job that exists, as
another daemon's create seen late). Every error body is a Status object, as the API server sends it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from typing import Any

from tests.providers.fakes import Answer, FakeServer, Recorded

DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$")
JOB = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
SECRETS = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets$")
SECRET = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
USER = "system:serviceaccount:ops:carbonshift"


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Answer:
    return Answer(
        code,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details or {},
            "code": code,
        },
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubernetes(FakeServer):
    def __init__(self, namespaces: tuple[str, ...] = ("default",)) -> None:
        self.namespaces = set(namespaces)
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> Job JSON
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> Secret JSON
        self.forbidden: set[tuple[str, str]] = set()  # (verb, resource) answered 403 by "RBAC"
        self.quota_exceeded = False  # create -> 403 exceeded quota
        self.invalid: str | None = None  # create -> 422 with this field error
        self.stale_reads = 0  # the next N reads of an existing Job answer 404
        self.delete_lingers = 0  # a Foreground delete keeps the Job, being deleted, for N reads
        self.lingering: dict[tuple[str, str], int] = {}
        self.deleted_with: str | None = None  # the last delete's propagationPolicy
        self.counter = itertools.count(1)
        super().__init__()

    # ---- helpers for tests ---------------------------------------------------------------------
    def job(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.jobs[(namespace, name)]

    def set_status(self, name: str, namespace: str = "default", **fields: Any) -> None:
        self.jobs[(namespace, name)]["status"] = dict(fields)

    def finish(
        self,
        name: str,
        namespace: str = "default",
        *,
        kind: str = "Complete",
        reason: str = "",
        message: str = "",
    ) -> None:
        """The Job ends: a Complete or Failed condition, as the Job controller sets it."""
        cond = {"type": kind, "status": "True", "reason": reason or kind, "message": message}
        self.jobs[(namespace, name)]["status"] = {"conditions": [cond], "active": 0}

    def add_pod(self, job_name: str, exit_code: int, namespace: str = "default") -> None:
        job = self.jobs[(namespace, job_name)]
        template = job["spec"]["template"]["metadata"]
        name = f"{job_name}-{next(self.counter):05d}"
        self.pods[(namespace, name)] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {**template.get("labels", {}), "job-name": job_name},
                "annotations": dict(template.get("annotations", {})),
                "creationTimestamp": f"2026-11-24T12:{next(self.counter) % 60:02d}:00Z",
            },
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {"name": "job", "state": {"terminated": {"exitCode": exit_code, "reason": "Error"}}}
                ],
            },
        }

    def secret_value(self, name: str, key: str, namespace: str = "default") -> str:
        """A Secret's value, decoded (the API keeps `data` base64-encoded)."""
        return base64.b64decode(self.secrets[(namespace, name)]["data"][key]).decode()

    def calls(self, method: str, kind: str = "jobs") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and f"/{kind}" in r.path]

    # ---- the API -----------------------------------------------------------------------------------
    def _forbidden(self, verb: str, resource: str, namespace: str, name: str = "") -> Answer | None:
        if (verb, resource) not in self.forbidden:
            return None
        group = "batch" if resource == "jobs" else ""
        what = (
            f'{resource}.{group} "{name}"'
            if name and group
            else (f'{resource} "{name}"' if name else resource)
        )
        in_group = f' in API group "{group}"' if group else ' in API group ""'
        return status(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{USER}" cannot {verb} resource "{resource}"{in_group} '
            f'in the namespace "{namespace}"',
            {"name": name, "group": group, "kind": resource},
        )

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        p = rec.path
        selector = (rec.query.get("labelSelector") or [""])[0]
        m = JOBS.fullmatch(p)
        if m and rec.method == "GET":
            ns = m.group(1)
            denied = self._forbidden("list", "jobs", ns)
            if denied:
                return denied
            items = [
                j
                for (n, _), j in sorted(self.jobs.items())
                if n == ns and matches(j["metadata"].get("labels", {}), selector)
            ]
            return Answer(200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items})
        if m and rec.method == "POST":
            refused = self._refuse_create(m.group(1), rec, "batch/v1", "Job", "jobs")
            return refused or self._create(m.group(1), rec)
        m = JOB.fullmatch(p)
        if m:
            ns, name = m.groups()
            verb = {"GET": "get", "PATCH": "patch", "DELETE": "delete"}.get(rec.method, "")
            denied = self._forbidden(verb, "jobs", ns, name)
            if denied:
                return denied
            job = self.jobs.get((ns, name))
            if job is not None and rec.method == "GET" and self.stale_reads > 0:
                self.stale_reads -= 1
                job = None
            if job is None:
                return status(
                    404, "NotFound", f'jobs.batch "{name}" not found', {"name": name, "kind": "jobs"}
                )
            if rec.method == "GET":
                left = self.lingering.get((ns, name))
                if left is not None:
                    if left <= 0:
                        del self.jobs[(ns, name)], self.lingering[(ns, name)]
                        return status(404, "NotFound", f'jobs.batch "{name}" not found', {"kind": "jobs"})
                    self.lingering[(ns, name)] = left - 1
                return Answer(200, job)
            if rec.method == "PATCH":
                kind = rec.headers.get("content-type", "")
                if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    return status(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format: {kind}",
                    )
                if not isinstance(rec.body, dict):
                    return status(400, "BadRequest", "a merge patch is a JSON object")
                patched = merge_patch(job, rec.body)
                patched["metadata"]["resourceVersion"] = str(next(self.counter))
                if not patched["spec"].get("suspend"):
                    conds = patched.setdefault("status", {}).get("conditions") or []
                    patched["status"]["conditions"] = [c for c in conds if c.get("type") != "Suspended"]
                self.jobs[(ns, name)] = patched
                return Answer(200, patched)
            if rec.method == "DELETE":
                policy = (rec.query.get("propagationPolicy") or [""])[0] or (
                    (rec.body or {}).get("propagationPolicy", "") if isinstance(rec.body, dict) else ""
                )
                self.deleted_with = policy
                if policy == "Foreground" and self.delete_lingers > 0:
                    job["metadata"]["deletionTimestamp"] = "2026-11-24T12:00:00Z"
                    job["metadata"]["finalizers"] = ["foregroundDeletion"]
                    self.lingering[(ns, name)] = self.delete_lingers
                else:
                    del self.jobs[(ns, name)]
                for key, pod in list(self.pods.items()):
                    if key[0] == ns and pod["metadata"]["labels"].get("job-name") == name:
                        del self.pods[key]
                return Answer(
                    200,
                    {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}},
                )
        m = SECRETS.fullmatch(p)
        if m and rec.method == "POST":
            refused = self._refuse_create(m.group(1), rec, "v1", "Secret", "secrets")
            return refused or self._create_secret(m.group(1), rec)
        m = SECRET.fullmatch(p)
        if m:
            return self._secret(m.group(1), m.group(2), rec)
        m = PODS.fullmatch(p)
        if m and rec.method == "GET":
            ns = m.group(1)
            denied = self._forbidden("list", "pods", ns)
            if denied:
                return denied
            items = [
                pod
                for (n, _), pod in sorted(self.pods.items())
                if n == ns and matches(pod["metadata"].get("labels", {}), selector)
            ]
            return Answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        return status(404, "NotFound", f"the server could not find the requested resource ({rec.method} {p})")

    def _refuse_create(
        self, ns: str, rec: Recorded, api_version: str, kind: str, resource: str
    ) -> Answer | None:
        """The checks every create passes first: JSON of the right kind, RBAC, the namespace."""
        body = rec.body
        if rec.headers.get("content-type", "application/json") != "application/json":
            return status(415, "UnsupportedMediaType", "create takes application/json here")
        if not isinstance(body, dict) or body.get("kind") != kind or body.get("apiVersion") != api_version:
            return status(400, "BadRequest", f"not a {api_version} {kind}")
        denied = self._forbidden("create", resource, ns, str(body.get("metadata", {}).get("name", "")))
        if denied:
            return denied
        if ns not in self.namespaces:
            return status(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        return None

    def _create(self, ns: str, rec: Recorded) -> Answer:
        body = rec.body
        name = str(body.get("metadata", {}).get("name", ""))
        if self.quota_exceeded:
            return status(
                403,
                "Forbidden",
                f'jobs.batch "{name}" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1, '
                "used: requests.nvidia.com/gpu=8, limited: requests.nvidia.com/gpu=8",
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        problems = self._validate(body)
        if self.invalid:
            problems.append(self.invalid)
        if problems:
            return status(
                422,
                "Invalid",
                f'Job.batch "{name}" is invalid: ' + ", ".join(problems),
                {"name": name, "group": "batch", "kind": "Job"},
            )
        if (ns, name) in self.jobs:
            return status(
                409, "AlreadyExists", f'jobs.batch "{name}" already exists', {"name": name, "kind": "jobs"}
            )
        job = json.loads(json.dumps(body))
        job["metadata"].update(
            namespace=ns,
            uid=f"uid-{next(self.counter)}",
            resourceVersion=str(next(self.counter)),
            creationTimestamp="2026-11-24T12:00:00Z",
        )
        job["status"] = (
            {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}
            if job["spec"].get("suspend")
            else {}
        )
        self.jobs[(ns, name)] = job
        return Answer(201, job)

    # ---- Secrets ---------------------------------------------------------------------------------------
    def _create_secret(self, ns: str, rec: Recorded) -> Answer:
        body = rec.body
        name = str(body.get("metadata", {}).get("name", ""))
        secret = json.loads(json.dumps(body))
        data = dict(secret.get("data") or {})
        for key, value in (secret.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        problems = [] if DNS_SUBDOMAIN.match(name) else [f"metadata.name: Invalid value: {name!r}"]
        for key, value in data.items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"data[{key}]: Invalid value: not base64")
        if problems:
            return status(
                422,
                "Invalid",
                f'Secret "{name}" is invalid: ' + ", ".join(problems),
                {"name": name, "kind": "Secret"},
            )
        if (ns, name) in self.secrets:
            return status(
                409, "AlreadyExists", f'secrets "{name}" already exists', {"name": name, "kind": "secrets"}
            )
        secret["data"] = data
        secret["metadata"].update(
            namespace=ns, uid=f"uid-{next(self.counter)}", resourceVersion=str(next(self.counter))
        )
        self.secrets[(ns, name)] = secret
        return Answer(201, secret)

    def _secret(self, ns: str, name: str, rec: Recorded) -> Answer:
        verb = {"GET": "get", "PATCH": "patch", "DELETE": "delete"}.get(rec.method, "")
        denied = self._forbidden(verb, "secrets", ns, name)
        if denied:
            return denied
        secret = self.secrets.get((ns, name))
        if secret is None or not verb:
            return status(404, "NotFound", f'secrets "{name}" not found', {"name": name, "kind": "secrets"})
        if verb == "get":
            return Answer(200, secret)
        if verb == "delete":
            del self.secrets[(ns, name)]
            return Answer(
                200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
            )
        if not isinstance(rec.body, dict):
            return status(400, "BadRequest", "a merge patch is a JSON object")
        patched = merge_patch(secret, rec.body)
        patched["metadata"]["resourceVersion"] = str(next(self.counter))
        self.secrets[(ns, name)] = patched
        return Answer(200, patched)

    @staticmethod
    def _validate(body: dict[str, Any]) -> list[str]:
        """The few checks of the API server's validation that the adapter's output must pass."""
        problems = []
        meta = body.get("metadata", {})
        if not DNS_LABEL.match(str(meta.get("name", ""))):
            problems.append(f"metadata.name: Invalid value: {meta.get('name')!r}: a lowercase RFC 1123 label")
        template = body.get("spec", {}).get("template", {})
        for where, labels in (
            ("metadata.labels", meta.get("labels", {})),
            ("spec.template.metadata.labels", template.get("metadata", {}).get("labels", {})),
        ):
            for value in labels.values():
                if not isinstance(value, str) or not LABEL_VALUE.match(value):
                    problems.append(
                        f"{where}: Invalid value: {value!r}: a valid label must be 63 characters or less"
                    )
        pod = template.get("spec", {})
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append("spec.template.spec.restartPolicy: Unsupported value: must be Never or OnFailure")
        containers = pod.get("containers") or []
        if not containers:
            problems.append("spec.template.spec.containers: Required value")
        for c in containers:
            if not c.get("image"):
                problems.append("spec.template.spec.containers[0].image: Required value")
            for key, value in (c.get("resources", {}).get("limits") or {}).items():
                if key == "nvidia.com/gpu" and c["resources"].get("requests", {}).get(key, value) != value:
                    problems.append("spec.template.spec.containers[0].resources.requests: must equal limits")
        return problems
