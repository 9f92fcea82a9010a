"""Small local fakes of the cloud APIs the adapters call, for the real SDK clients over real HTTP.

- `FakeComputeEngine`: the Compute Engine REST paths the GCP adapter uses (regions.get, instances
  insert/get/delete/aggregatedList/getSerialPortOutput, zoneOperations wait/get). It keeps the request
  bodies so tests can check them, answers with operations, and can refuse a zone with an operation
  error (ZONE_RESOURCE_POOL_EXHAUSTED) or a synchronous HTTP error (quota).
- `FakeArm`: the Azure Resource Manager paths the Azure adapter uses (virtual networks, NICs, VMs with
  an asynchronous create, instance view, boot diagnostics, list, delete); can refuse with SkuNotAvailable.
- `Ec2Proxy`: forwards to moto's server and answers chosen RunInstances with an EC2 error (moto has no
  capacity errors of its own).

Loopback only: every server binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class FakeServer:
    """A threaded HTTP server that hands each request to `self.route` and records it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        # a gate holds the first request it matches, before it is handled ("before") or after it was
        # handled and before the answer goes out ("after"), until `release` is set: a client (a daemon
        # inside its launch call) can be killed while the API has, or has not yet, acted on it
        self.gate: Callable[[Recorded], bool] | None = None
        self.gate_phase = "before"
        self.gated = threading.Event()  # set when the gate holds a request
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                rec = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                held = fake._hold(rec)
                if held and fake.gate_phase == "before":
                    fake.release.wait()
                with fake.lock:
                    fake.requests.append(rec)
                    answer = fake.route(rec, raw)
                if held and fake.gate_phase == "after":
                    fake.gated.set()
                    fake.release.wait()
                payload = (
                    answer.raw
                    if answer.raw is not None
                    else (json.dumps(answer.body).encode() if answer.body is not None else b"")
                )
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def hold(self, gate: Callable[[Recorded], bool] | None, phase: str = "before") -> None:
        """Hold the next request `gate` matches (see __init__); None: hold nothing, let a held one go."""
        with self.lock:
            self.release.set()  # a request held before goes on
            self.gate, self.gate_phase = gate, phase
            self.gated.clear()
            if gate is not None:
                self.release.clear()

    def _hold(self, rec: Recorded) -> bool:
        """Whether the gate holds this request (the first it matches); 'before': signalled now."""
        with self.lock:
            if self.gate is None or self.gated.is_set() or not self.gate(rec):
                return False
            if self.gate_phase == "before":
                self.gated.set()
            else:
                self.gate = None  # the one request held after handling; none other
            return True

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def route(self, rec: Recorded, raw: bytes) -> Answer:  # pragma: no cover - overridden
        return Answer(404, {"error": "no route"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, method: str, pattern: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == method and re.search(pattern, r.path)]


# ---- Compute Engine -------------------------------------------------------------------------------------


class FakeComputeEngine(FakeServer):
    def __init__(self, zones: dict[str, list[str]] | None = None) -> None:
        self.zones = zones or {"us-central1": ["us-central1-a", "us-central1-b", "us-central1-c"]}
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}  # (zone, name) -> instance JSON
        self.operations: dict[str, dict[str, Any]] = {}
        self.by_request_id: dict[str, str] = {}
        self.exhausted_zones: set[str] = set()  # insert -> operation error ZONE_RESOURCE_POOL_EXHAUSTED
        self.quota_error = False  # insert -> HTTP 403 QUOTA_EXCEEDED
        self.pending_polls = 1  # how many waits answer RUNNING before DONE
        self.operation_error: dict[str, Any] | None = None  # insert -> this operation error, no instance
        self.serial: dict[str, str] = {}
        self.counter = itertools.count(1)
        super().__init__()

    def _op(
        self, project: str, zone: str, target: str, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        name = f"operation-{next(self.counter)}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "name": name,
            "id": str(next(self.counter)),
            "zone": f"{self.url}/compute/v1/projects/{project}/zones/{zone}",
            "operationType": "insert",
            "targetLink": target,
            "status": "RUNNING",
            "_polls": self.pending_polls,
        }
        if error is not None:
            op["_error"] = error
        self.operations[name] = op
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def preempt(self, zone: str, name: str, project: str = "test-project") -> None:
        """Compute Engine reclaims a Spot VM: a `compute.instances.preempted` system operation on it,
        then the VM is deleted (its instanceTerminationAction)."""
        inst = self.instances.pop((zone, name))
        op = self._op(project, zone, inst["selfLink"])
        self.operations[op["name"]].update(
            operationType="compute.instances.preempted",
            status="DONE",
            statusMessage="Instance was preempted.",
            insertTime="2030-01-01T04:30:00.000-00:00",
            endTime="2030-01-01T04:30:05.000-00:00",
            _polls=0,
        )

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        p = rec.path
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/regions/([^/]+)", p)
        if m and rec.method == "GET":
            project, region = m.groups()
            if region not in self.zones:
                return Answer(404, {"error": {"code": 404, "message": f"region {region} not found"}})
            return Answer(
                200,
                {
                    "name": region,
                    "zones": [
                        f"{self.url}/compute/v1/projects/{project}/zones/{z}" for z in self.zones[region]
                    ],
                },
            )
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/instances", p)
        if m and rec.method == "POST":
            return self._insert(m.group(1), m.group(2), rec)
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)", p)
        if m:
            project, zone, name = m.groups()
            inst = self.instances.get((zone, name))
            if inst is None:
                return Answer(404, {"error": {"code": 404, "message": f"instance {name} not found"}})
            if rec.method == "GET":
                return Answer(200, inst)
            if rec.method == "DELETE":
                del self.instances[(zone, name)]
                return Answer(200, self._op(project, zone, inst["selfLink"]))
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/serialPort", p)
        if m:
            return Answer(200, {"contents": self.serial.get(m.group(3), ""), "start": "0", "next": "0"})
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/aggregated/instances", p)
        if m:
            items: dict[str, Any] = {}
            for (zone, _), inst in sorted(self.instances.items()):
                items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(inst)
            return Answer(200, {"items": items})
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/operations", p)
        if m and rec.method == "GET":  # list, with the API's `operationType = "..."` filter
            wanted = re.search(r'operationType\s*=\s*"([^"]+)"', (rec.query.get("filter") or [""])[0])
            zone_url = f"{self.url}/compute/v1/projects/{m.group(1)}/zones/{m.group(2)}"
            ops = [
                {k: v for k, v in op.items() if not k.startswith("_")}
                for op in self.operations.values()
                if op["zone"] == zone_url and (wanted is None or op["operationType"] == wanted.group(1))
            ]
            return Answer(200, {"kind": "compute#operationList", "items": ops})
        m = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/operations/([^/]+)(/wait)?", p)
        if m:
            op = self.operations.get(m.group(3))
            if op is None:
                return Answer(404, {"error": {"code": 404, "message": "no such operation"}})
            if op["_polls"] > 0:
                op["_polls"] -= 1
            else:
                op["status"] = "DONE"
                if "_error" in op:
                    op["error"] = op["_error"]
                    op["httpErrorStatusCode"] = 503
            return Answer(200, {k: v for k, v in op.items() if not k.startswith("_")})
        return Answer(404, {"error": {"code": 404, "message": f"no route for {rec.method} {p}"}})

    def _insert(self, project: str, zone: str, rec: Recorded) -> Answer:
        body = rec.body
        request_id = (rec.query.get("requestId") or [""])[0]
        if request_id and request_id in self.by_request_id:  # the API's idempotency
            op = self.operations[self.by_request_id[request_id]]
            return Answer(200, {k: v for k, v in op.items() if not k.startswith("_")})
        if self.quota_error:
            return Answer(
                403,
                {
                    "error": {
                        "code": 403,
                        "message": "Quota 'NVIDIA_A100_GPUS' exceeded. Limit: 0.0 in region us-central1.",
                        "errors": [
                            {"reason": "quotaExceeded", "domain": "usageLimits", "message": "Quota exceeded"}
                        ],
                    }
                },
            )
        name = body["name"]
        if (zone, name) in self.instances:
            return Answer(409, {"error": {"code": 409, "message": f"The resource '{name}' already exists"}})
        target = f"{self.url}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
        if self.operation_error is not None:
            op = self._op(project, zone, target, self.operation_error)
        elif zone in self.exhausted_zones:
            op = self._op(
                project,
                zone,
                target,
                {
                    "errors": [
                        {
                            "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                            "message": f"The zone '{zone}' does not have enough resources available to fulfill the request.",
                        }
                    ]
                },
            )
        else:
            inst = dict(body)
            inst.update(
                id=str(next(self.counter) + 1000),
                status="RUNNING",
                selfLink=target,
                zone=f"{self.url}/compute/v1/projects/{project}/zones/{zone}",
            )
            self.instances[(zone, name)] = inst
            op = self._op(project, zone, target)
        if request_id:
            self.by_request_id[request_id] = op["name"]
        return Answer(200, op)


# ---- Azure Resource Manager ----------------------------------------------------------------------------------


class FakeArm(FakeServer):
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}  # lower-case resource id -> JSON
        self.power: dict[str, str] = {}  # vm name -> PowerState code
        self.async_ops: dict[str, dict[str, Any]] = {}
        self.sku_not_available: set[str] = set()  # VM sizes answered with 409 SkuNotAvailable
        self.allocation_failed: set[str] = set()  # VM sizes whose async create fails
        self.serial: dict[str, str] = {}
        self.counter = itertools.count(1)
        super().__init__()

    def evict(self, name: str, policy: str = "Delete") -> None:
        """Azure evicts a Spot VM: deletes it (eviction policy Delete, carbonshift's) or deallocates it."""
        if policy == "Delete":
            for rid in [
                k for k in self.resources if k.endswith(f"/microsoft.compute/virtualmachines/{name.lower()}")
            ]:
                del self.resources[rid]
        else:
            self.power[name] = "deallocated"

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        p = rec.path
        m = re.fullmatch(r"/operations/([^/]+)", p)
        if m:
            op = self.async_ops[m.group(1)]
            if op["polls"] > 0:
                op["polls"] -= 1
                return Answer(200, {"status": "InProgress"})
            if op.get("error"):
                return Answer(200, {"status": "Failed", "error": op["error"]})
            return Answer(200, {"status": "Succeeded"})
        m = re.fullmatch(r"/serial/([^/]+)", p)
        if m:
            return Answer(
                200, raw=self.serial.get(m.group(1), "").encode(), headers={"Content-Type": "text/plain"}
            )
        m = re.fullmatch(
            r"(/subscriptions/[^/]+/resourceGroups/[^/]+)/providers/Microsoft\.Compute/virtualMachines",
            p,
            re.I,
        )
        if m and rec.method == "GET":
            vms = [v for k, v in sorted(self.resources.items()) if "/microsoft.compute/virtualmachines/" in k]
            return Answer(200, {"value": vms})
        m = re.fullmatch(
            r"(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/virtualMachines/([^/]+))/(instanceView|retrieveBootDiagnosticsData)",
            p,
            re.I,
        )
        if m:
            rid, name, what = m.group(1).lower(), m.group(2), m.group(3)
            if rid not in self.resources:
                return self._not_found(name)
            if what == "instanceView":
                codes = ["ProvisioningState/succeeded", f"PowerState/{self.power.get(name, 'running')}"]
                return Answer(200, {"statuses": [{"code": c} for c in codes]})
            return Answer(200, {"serialConsoleLogBlobUri": f"{self.url}/serial/{name}"})
        m = re.fullmatch(
            r"(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.(\w+)/(\w+)/([^/]+))", p, re.I
        )
        if m:
            rid, _, kind, name = m.group(1).lower(), m.group(2), m.group(3), m.group(4)
            if rec.method == "GET":
                return Answer(200, self.resources[rid]) if rid in self.resources else self._not_found(name)
            if rec.method == "DELETE":
                self.resources.pop(rid, None)
                return Answer(200 if rid else 204)
            if rec.method == "PUT":
                return self._put(m.group(1), kind, name, rec.body)
        return Answer(404, {"error": {"code": "NoRoute", "message": f"{rec.method} {p}"}})

    def _not_found(self, name: str) -> Answer:
        return Answer(
            404, {"error": {"code": "ResourceNotFound", "message": f"The Resource '{name}' was not found."}}
        )

    def _put(self, rid: str, kind: str, name: str, body: dict[str, Any]) -> Answer:
        resource = {**body, "id": rid, "name": name}
        if kind.lower() == "virtualmachines":
            size = body["properties"]["hardwareProfile"]["vmSize"]
            if size in self.sku_not_available:
                return Answer(
                    409,
                    {
                        "error": {
                            "code": "SkuNotAvailable",
                            "message": f"The requested VM size '{size}' is currently not available in location "
                            f"'{body['location']}'. Please try another size or deploy to a different location.",
                        }
                    },
                )
            op_id = f"op{next(self.counter)}"
            error = None
            if size in self.allocation_failed:
                error = {
                    "code": "AllocationFailed",
                    "message": "Allocation failed. We do not have sufficient capacity.",
                }
            self.async_ops[op_id] = {"polls": 1, "error": error}
            resource["properties"] = {**body["properties"], "provisioningState": "Creating"}
            if error is None:
                stored = json.loads(json.dumps(resource))
                stored["properties"]["provisioningState"] = "Succeeded"
                self.resources[rid.lower()] = stored
            return Answer(201, resource, {"Azure-AsyncOperation": f"{self.url}/operations/{op_id}"})
        resource["properties"] = {**body.get("properties", {}), "provisioningState": "Succeeded"}
        if kind.lower() == "virtualnetworks":
            subnets = resource["properties"].get("subnets", [])
            for s in subnets:
                s["id"] = f"{rid}/subnets/{s['name']}"
        self.resources[rid.lower()] = resource
        return Answer(200, resource)


# ---- EC2 in front of moto ---------------------------------------------------------------------------------------


class Ec2Proxy(FakeServer):
    """Forwards every request to moto, except RunInstances for an instance type in `refuse` or a region
    in `refuse_regions`, answered with that EC2 error code (as EC2 answers it: XML, HTTP 400)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse: dict[str, str] = {}  # instance type -> error code
        self.refuse_regions: dict[str, str] = {}  # region (from the request's signature) -> error code
        # EC2's idempotency, which moto lacks: a RunInstances with a ClientToken already answered gets
        # that first answer again (the same reservation), never a second instance
        self.client_tokens: dict[str, Answer] = {}
        super().__init__()

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        form = parse_qs(raw.decode()) if raw else {}
        action = (form.get("Action") or [""])[0]
        itype = (form.get("InstanceType") or [""])[0]
        scope = rec.headers.get("authorization", "")
        region = next((r for r in self.refuse_regions if f"/{r}/ec2/" in scope), None)
        if action == "RunInstances" and (itype in self.refuse or region is not None):
            code = self.refuse[itype] if itype in self.refuse else self.refuse_regions[str(region)]
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f"<Code>{code}</Code><Message>We currently do not have sufficient {itype} capacity in the "
                "Availability Zone you requested.</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
            )
            return Answer(400, raw=xml.encode(), headers={"Content-Type": "text/xml"})
        token = (form.get("ClientToken") or [""])[0] if action == "RunInstances" else ""
        if token and token in self.client_tokens:
            return self.client_tokens[token]
        answer = self._forward(rec, raw)
        if token and answer.status == 200:
            self.client_tokens[token] = answer
        return answer

    def _forward(self, rec: Recorded, raw: bytes) -> Answer:
        req = urllib.request.Request(
            self.upstream + rec.path,
            data=raw or None,
            method=rec.method,
            headers={k: v for k, v in rec.headers.items() if k not in ("host", "content-length")},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # loopback: moto on 127.0.0.1
                return Answer(
                    resp.status,
                    raw=resp.read(),
                    headers={"Content-Type": resp.headers.get("Content-Type", "text/xml")},
                )
        except urllib.error.HTTPError as exc:  # moto's own errors pass through unchanged
            return Answer(
                exc.code,
                raw=exc.read(),
                headers={"Content-Type": exc.headers.get("Content-Type", "text/xml")},
            )
