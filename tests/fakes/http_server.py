"""A tiny threaded HTTP server on 127.0.0.1 for testing the live sources over real HTTP.

Routes map a path regex to a handler that gets the parsed request and returns a FakeResponse. Faults
are queued per test and consumed in order by the requests that match them, before routing: a status
with a body, a Retry-After, a delay before answering, a malformed or empty body, or a dropped
connection. Every request is recorded (method, path, query, headers) so tests can assert what was
sent, including auth headers.

Loopback only: the server binds 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    match: re.Match[str] | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class FakeResponse:
    status: int = 200
    body: bytes | None = None
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> FakeResponse:
        return cls(status=status, json_body=data, headers=dict(headers or {}))

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.json_body is None:
            return b""
        return json.dumps(self.json_body).encode()


Handler = Callable[[FakeRequest], FakeResponse]


@dataclass
class Fault:
    """What the next `times` matching requests get instead of their route's answer."""

    path: str | None = None  # regex searched in the path; None matches every request
    status: int = 200
    body: bytes | None = None
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (then answer the route, unless status/body given)
    drop: bool = False  # close the connection without answering
    times: int = 1
    passthrough: bool = False  # after the delay, answer as the route would

    def matches(self, path: str) -> bool:
        return self.path is None or re.search(self.path, path) is not None


class FakeHttpServer:
    """Start with `start()` (or use as a context manager); `url` is the base URL to configure."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], Handler]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[FakeRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeHttpServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- configuration ------------------------------------------------------------------------
    def route(self, pattern: str, handler: Handler) -> None:
        """Answer paths fully matching `pattern` (a regex) with `handler`."""
        self._routes.append((re.compile(pattern), handler))

    def fault(self, path: str | None = None, **kwargs: Any) -> Fault:
        """Queue a fault for the next matching request(s); see Fault for the knobs."""
        f = Fault(path=path, **kwargs)
        with self._lock:
            self._faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_to(self, pattern: str) -> list[FakeRequest]:
        return [r for r in self.requests if re.search(pattern, r.path)]

    # ---- serving ------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.matches(path) and f.times > 0:
                    f.times -= 1
                    if f.times == 0:
                        self._faults.remove(f)
                    return f
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        req = FakeRequest(
            method="GET",
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
        )
        with self._lock:
            self.requests.append(req)
        fault = self._take_fault(req.path)
        if fault is not None:
            if fault.delay_s:
                self._stopping.wait(fault.delay_s)
            if fault.drop:
                h.close_connection = True
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)
                return
            if not fault.passthrough:
                resp = FakeResponse(fault.status, fault.body, fault.json_body, dict(fault.headers))
                self._write(h, resp)
                return
        self._write(h, self._dispatch(req))

    def _dispatch(self, req: FakeRequest) -> FakeResponse:
        for pattern, handler in self._routes:
            m = pattern.fullmatch(req.path)
            if m:
                try:
                    return handler(FakeRequest(req.method, req.path, req.query, req.headers, m))
                except Exception as exc:  # a bug in a fake shows as a 500 with the reason, not a hang
                    return FakeResponse.json({"error": f"fake handler failed: {exc!r}"}, status=500)
        return FakeResponse.json({"error": f"no route for {req.path}"}, status=404)

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, resp: FakeResponse) -> None:
        payload = resp.payload()
        try:
            h.send_response(resp.status)
            headers = {"Content-Type": "application/json", **resp.headers}
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:
            pass  # the client gave up (a timeout test); nothing to do


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"
