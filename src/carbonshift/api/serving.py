"""How `serve` runs uvicorn so that slow or idle clients cannot exhaust the daemon before auth.

Why this is needed: uvicorn times out idle keep-alive connections, but not a request that is still
arriving. A client that sends half a header, or a body shorter than its Content-Length, held its
connection (and a file descriptor) forever, and 1,100 of them made /healthz time out while asyncio
logged "Too many open files" with a traceback on every accept attempt. So here:

* every request must arrive whole (headers and body) within REQUEST_READ_TIMEOUT_S of the connection
  opening or the previous answer; otherwise the connection is closed, with a 408 (JSON, like every
  other error) when part of a request had arrived. A request the app is working on is never cut off;
* connections are limited (`max_connections`, from the open-file limit, which is raised to its hard
  maximum first): past it uvicorn answers 503, and past twice it a new connection is closed at once,
  before it can hold a descriptor;
* a header block may be at most MAX_HEADER_BYTES (h11's incomplete-event limit), and a request h11
  cannot read gets a JSON 400 like every other error, not uvicorn's plain text;
* the repeated accept and overload log lines are rate-limited to one a minute, without tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_READ_TIMEOUT_S = 15.0  # headers and body of one request
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS_CAP = 4096
FD_RESERVE = 256  # descriptors kept for the database, log files and launched runs
LOG_EVERY_S = 60.0


def _timeout_response(read_timeout_s: float) -> bytes:
    """A 408 written straight to the socket: h11 cannot answer a request whose headers never ended."""
    body = json.dumps(
        {"detail": f"request timeout: headers and body must arrive within {read_timeout_s:g} s"}
    ).encode()
    head = "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (many systems start services at
    1,024 with a hard limit far above) and return the soft limit now in force."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return 8192
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return int(soft)


def max_connections(open_file_limit: int) -> int:
    """How many client connections to allow: half of what the descriptors left over allow (each
    connection may need a second one, a database connection or a log file, while it is served)."""
    return max(32, min(MAX_CONNECTIONS_CAP, (open_file_limit - FD_RESERVE) // 2))


async def json_service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer past `limit_concurrency`, as JSON like every other answer (its own is plain
    text); the connection is closed, as uvicorn's is."""
    body = json.dumps({"detail": "the server is at its connection limit: retry shortly"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def guarded_protocol(read_timeout_s: float, connection_cap: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the per-request read deadline and the hard connection cap."""
    # uvicorn picks its over-the-limit app from this module global (no setting for it): ours
    # answers JSON. Only the serving process builds this protocol, so nothing else is affected.
    setattr(h11_impl, "service_unavailable", json_service_unavailable)  # noqa: B010 - not exported
    timeout_response = _timeout_response(read_timeout_s)

    class GuardedH11Protocol(H11Protocol):
        _guard: asyncio.TimerHandle | None = None
        _reading = False  # bytes of a request not answered yet have arrived

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > connection_cap:
                transport.abort()  # over the cap: free the descriptor now
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._reading = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._reading = False
            super().on_response_complete()
            self._arm()

        def send_400_response(self, msg: str) -> None:
            """A request h11 cannot read (a malformed line, headers over MAX_HEADER_BYTES): the same
            JSON error body as every other answer, not uvicorn's plain text."""
            body = json.dumps({"detail": f"bad HTTP request: {msg}"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
            self.transport.close()

        def _arm(self) -> None:
            self._disarm()
            self._guard = self.loop.call_later(read_timeout_s, self._read_timed_out)

        def _disarm(self) -> None:
            if self._guard is not None:
                self._guard.cancel()
                self._guard = None

        def _read_timed_out(self) -> None:
            self._guard = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            waiting_for_app = cycle is not None and not cycle.response_complete and not cycle.more_body
            if waiting_for_app:
                return  # the request arrived whole: the app answers in its own time
            # a 408 only answers a request that began to arrive: on a silent connection it could be
            # read as the answer to a request the client sends at that very moment
            if self._reading and (cycle is None or cycle.response_complete or not cycle.response_started):
                self.transport.write(timeout_response)
            self.transport.close()

    return GuardedH11Protocol


_REPEATED: dict[str, str] = {
    "out of system resource": "too many open files: new connections wait; raise the open-file limit "
    "(ulimit -n, LimitNOFILE=) or put a proxy with connection limits in front",
    "Exceeded concurrency limit": "connection limit reached: answering 503 to new requests",
}


class RateLimitedLog(logging.Filter):
    """Lets one record of each repeated kind through per `every_s`, without its traceback, and says
    how many were held back. Kinds: asyncio's 'socket.accept() out of system resource' (too many open
    files) and uvicorn's 'Exceeded concurrency limit.'."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        kind = next((k for k in _REPEATED if k in text), None)
        if kind is None:
            return True
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        more = f" ({held} more in the last {self.every_s:g} s)" if held else ""
        record.msg, record.args = f"{_REPEATED[kind]}{more}", None
        record.exc_info, record.exc_text = None, None
        return True


def install_log_limits() -> RateLimitedLog:
    """The rate limit on the loggers that repeat themselves under load (asyncio, uvicorn.error)."""
    limit = RateLimitedLog()
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(limit)
    return limit


def uvicorn_options(read_timeout_s: float = REQUEST_READ_TIMEOUT_S) -> dict[str, Any]:
    """The uvicorn.Config keywords `serve` uses (tests build their servers from the same ones)."""
    limit = max_connections(raise_open_file_limit())
    return {
        "http": guarded_protocol(read_timeout_s, connection_cap=2 * limit),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "limit_concurrency": limit,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
