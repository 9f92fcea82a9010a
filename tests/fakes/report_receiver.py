"""A stand-in for the scheduler's report endpoint (POST /api/v1/runs/{run_id}/report), for a launched
job's tracker to send its report to over real HTTP (loopback only).

It answers as the API does: 401 without a bearer token, 403 with another token than the run's, 422 for
a body that is not a JSON object, 200 with the run otherwise; `fail_next` queues statuses (503, 429)
answered first, to test retries. `reports(run_id)` are the bodies it accepted, `requests` everything.
"""

from __future__ import annotations

import re
from typing import Any

from tests.providers.fakes import Answer, FakeServer, Recorded

REPORT_PATH = re.compile(r"^/api/v1/runs/([^/]+)/report$")


class ReportReceiver(FakeServer):
    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens: dict[str, str] = dict(tokens or {})  # run id -> its report token
        self.fail_next: list[int] = []
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        super().__init__()

    def report_url(self, run_id: str) -> str:
        return f"{self.url}/api/v1/runs/{run_id}/report"

    def reports(self, run_id: str) -> list[dict[str, Any]]:
        return [body for rid, body in self.accepted if rid == run_id]

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        m = REPORT_PATH.fullmatch(rec.path)
        if m is None or rec.method != "POST":
            return Answer(404, {"detail": "not found"})
        if self.fail_next:
            return Answer(self.fail_next.pop(0), {"detail": "try again later"})
        run_id = m.group(1)
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return Answer(401, {"detail": "missing run token"})
        if run_id not in self.tokens:
            return Answer(404, {"detail": f"no run {run_id}"})
        if auth.removeprefix("Bearer ") != self.tokens[run_id]:
            return Answer(403, {"detail": "this token is not the run's report token"})
        if not isinstance(rec.body, dict):
            return Answer(422, {"detail": "expected a JSON object"})
        self.accepted.append((run_id, rec.body))
        return Answer(200, {"id": run_id, "status": "succeeded"})
