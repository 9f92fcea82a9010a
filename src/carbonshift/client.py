"""A small typed client for the scheduler's HTTP API (what `carbonshift submit` and `jobs` use).

Every failure is one `ApiError` subclass with a message a person can act on: no server at the
address, a token missing or rejected (naming CARBONSHIFT_API_TOKEN, never its value), a spec the
server rejected (with each field's problem), an unknown job. The token is sent only in the
Authorization header; it is never put in a URL, an exception or a log line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from carbonshift.api.security import TOKEN_ENV, is_loopback
from carbonshift.errors import CarbonshiftError, UserInputError

DEFAULT_SERVER = "http://127.0.0.1:8765"
SERVER_ENV = "CARBONSHIFT_SERVER"
LIST_PAGE = 1000  # jobs per request when a client lists every job (the API's largest page)
JSON = dict[str, Any]


class ApiError(CarbonshiftError):
    """A request that did not succeed; `status` is the HTTP status (0: no answer at all)."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class ServerUnreachable(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class NotFound(ApiError):
    pass


class SpecRejected(ApiError):
    """422: `problems` is (field, problem) for each field, as the server named them."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"{f}: {p}" if f else p for f, p in problems)
        super().__init__(f"the server rejected the spec: {text}", 422)


def check_server_url(url: str) -> str:
    """`--server` must be an http(s) URL with a host; the trailing slash is dropped."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UserInputError("--server", f"expected an http(s) URL such as {DEFAULT_SERVER}, got {url!r}")
    if parts.username or parts.password:
        raise UserInputError("--server", f"put no credentials in the URL; the token comes from {TOKEN_ENV}")
    return url.strip().rstrip("/")


def sends_token_in_clear(server: str, token: str | None) -> bool:
    """True when a token would cross the network unencrypted (plain http to another machine)."""
    parts = urlsplit(server)
    return token is not None and parts.scheme == "http" and not is_loopback(parts.hostname or "")


def _field_of(loc: Any) -> str:
    """['body', 'window', 'deadline'] -> 'window.deadline'; ['body', 'command', 0] -> 'command[0]'."""
    if not isinstance(loc, list):
        return ""
    parts = loc[1:] if loc[:1] == ["body"] else loc
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _problems(detail: Any) -> list[tuple[str, str]]:
    if isinstance(detail, list):
        out = []
        for item in detail:
            if isinstance(item, dict):
                out.append((_field_of(item.get("loc")), str(item.get("msg", "invalid"))))
        if out:
            return out
    return [("", str(detail))]


@dataclass
class Client:
    """The API at `server`, authenticated with `token` when one is given."""

    server: str = DEFAULT_SERVER
    token: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    token_source: str = TOKEN_ENV  # where the token came from, named (never shown) in a 401's message

    def __post_init__(self) -> None:
        self.server = check_server_url(self.server)
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy detour and no ~/.netrc credentials for our own server

    def __repr__(self) -> str:  # the dataclass repr would show the token
        return f"Client(server={self.server!r}, token={'***' if self.token else None})"

    def close(self) -> None:
        self._session.close()

    # ---- the API ------------------------------------------------------------------------------
    def health(self) -> JSON:
        return self._json("GET", "/healthz")

    def submit(self, spec_text: str, fmt: str = "yaml") -> JSON:
        """Submit a spec as written (YAML or JSON): the server validates it, so its rules apply."""
        return self._json("POST", "/api/v1/jobs", body=spec_text, fmt=fmt)

    def plan(self, spec_text: str, fmt: str = "yaml", top: int | None = None) -> JSON:
        params = {"top": str(top)} if top is not None else None
        return self._json("POST", "/api/v1/plan", body=spec_text, fmt=fmt, params=params)

    def list_jobs(self, **labels: str | None) -> list[JSON]:
        """Every job, newest first, fetched a page at a time; `team=`, `project=`, `organisation=`
        keep only jobs with that label."""
        jobs, cursor = self.list_jobs_page(LIST_PAGE, None, **labels)
        while cursor is not None:
            more, cursor = self.list_jobs_page(LIST_PAGE, cursor, **labels)
            jobs += more
        return jobs

    def list_jobs_page(
        self, limit: int, cursor: str | None = None, **labels: str | None
    ) -> tuple[list[JSON], str | None]:
        """At most `limit` jobs after `cursor` (the previous page's), newest first, and the next
        page's cursor (None at the end; a server from before paging answers every job at once)."""
        params = {k: v for k, v in labels.items() if v}
        params["limit"] = str(limit)
        if cursor is not None:
            params["cursor"] = cursor
        body = self._json("GET", "/api/v1/jobs", params=params)
        jobs = [j for j in body.get("jobs", []) if isinstance(j, dict)]
        next_cursor = body.get("next_cursor")
        return jobs, next_cursor if isinstance(next_cursor, str) and next_cursor else None

    def totals(
        self,
        group_by: list[str] | str | None = None,
        start: str | None = None,
        end: str | None = None,
        **filters: str | None,
    ) -> JSON:
        """The ledger's totals (GET /api/v1/totals); times as ISO 8601 strings."""
        params: dict[str, str] = {k: v for k, v in filters.items() if v}
        if group_by:
            params["group_by"] = group_by if isinstance(group_by, str) else ",".join(group_by)
        if start:
            params["from"] = start
        if end:
            params["to"] = end
        return self._json("GET", "/api/v1/totals", params=params or None)

    def post_tracked(self, report: JSON, labels: dict[str, str | None], name: str | None = None) -> JSON:
        """Add a run `carbonshift track` measured to the server's ledger (POST /api/v1/ledger/runs)."""
        body = {"report": report, "labels": {k: v for k, v in labels.items() if v}, "name": name}
        return self._json("POST", "/api/v1/ledger/runs", body=json.dumps(body), fmt="json")

    def post_run_report(self, path: str, report: JSON) -> JSON:
        """Send a launched run's tracker report to `path` on the server (the run's report URL less the
        server; POST /api/v1/runs/{run_id}/report), authenticated with the run's own token."""
        return self._json("POST", path, body=json.dumps(report), fmt="json")

    def get_job(self, job_id: str) -> JSON:
        return self._json("GET", f"/api/v1/jobs/{quote(job_id, safe='')}")

    def cancel(self, job_id: str) -> JSON:
        return self._json("DELETE", f"/api/v1/jobs/{quote(job_id, safe='')}")

    def run_log(self, job_id: str, run_id: str) -> str:
        path = f"/api/v1/jobs/{quote(job_id, safe='')}/runs/{quote(run_id, safe='')}/log"
        return self._request("GET", path).text

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # ---- plumbing -----------------------------------------------------------------------------
    def _json(
        self,
        method: str,
        path: str,
        *,
        body: str | None = None,
        fmt: str = "json",
        params: dict[str, str] | None = None,
    ) -> JSON:
        response = self._request(method, path, body=body, fmt=fmt, params=params)
        try:
            data = response.json()
        except ValueError:
            raise ApiError(
                f"{self.server} answered {method} {path} with something that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(f"{self.server} answered {method} {path} with unexpected JSON")
        return data

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: str | None = None,
        fmt: str = "json",
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        headers = {"Accept": "application/json, text/plain"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: bytes | None = None
        if body is not None:
            data = body.encode("utf-8")
            headers["Content-Type"] = "application/yaml" if fmt == "yaml" else "application/json"
        try:
            response = self._session.request(
                method,
                self.server + path,
                data=data,
                headers=headers,
                params=params,
                timeout=(self.connect_timeout_s, self.timeout_s),
                allow_redirects=False,
            )
        except requests.ConnectTimeout:
            raise ServerUnreachable(
                f"no carbonshift server answered at {self.server} within {self.connect_timeout_s:g} s; "
                "start one with `carbonshift serve`"
            ) from None
        except requests.Timeout:
            raise ApiError(
                f"the carbonshift server at {self.server} did not answer within {self.timeout_s:g} s"
            ) from None
        except requests.ConnectionError:
            raise ServerUnreachable(
                f"no carbonshift server at {self.server}; start one with `carbonshift serve`"
            ) from None
        if response.status_code >= 400:
            raise self._error(response, method, path)
        return response

    def _error(self, response: requests.Response, method: str, path: str) -> ApiError:
        status = response.status_code
        try:
            detail: Any = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if status == 401:
            hint = (
                f"set {self.token_source} to the server's API token"
                if not self.token
                else f"the server rejected the token in {self.token_source}"
            )
            return Unauthorized(f"{self.server} needs an API token: {hint}", status)
        if status == 404:
            return NotFound(str(detail) if isinstance(detail, str) else f"not found: {method} {path}", status)
        if status == 422:
            return SpecRejected(_problems(detail))
        if status == 413:
            return ApiError(str(detail or "the request body is larger than the server accepts"), status)
        text = detail if isinstance(detail, str) else (response.text[:300] or response.reason)
        return ApiError(f"{self.server} answered {status}: {text}", status)
