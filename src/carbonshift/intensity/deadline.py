"""A wall-clock deadline over a whole HTTP exchange: connecting, the headers and the body.

Why: `requests` timeouts are per socket operation. A server that sends one byte a second never
trips a 5 s read timeout, so a single answer could hold `carbonshift plan` (and the daemon's submit
and re-plan) for minutes against a 6 s budget, whether it trickled its headers or its body. So the
HTTP client runs each exchange under a `Watchdog`: a timer that, at the deadline, shuts down the
sockets the exchange uses. A blocked read then returns at once, the client sees a broken connection,
and the watchdog says that the deadline, not the server, ended it.

The sockets are found through the connection pool: sessions built by `deadline_session` use pools
that note, per thread, each connection they hand out. For any other session the watchdog still
covers the body (the response knows its connection); only its header phase is then bounded by the
per-read timeout alone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_in_flight = threading.local()  # the Watchdog of the current thread's exchange, if any


class _Noting:
    """Pool mix-in: every connection handed out while a Watchdog runs in this thread is noted."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        dog: Watchdog | None = getattr(_in_flight, "dog", None)
        if dog is not None:
            dog.note(conn)
        return conn


class _NotingHTTPPool(_Noting, HTTPConnectionPool):
    pass


class _NotingHTTPSPool(_Noting, HTTPSConnectionPool):
    pass


_POOLS = {"http": _NotingHTTPPool, "https": _NotingHTTPSPool}


class _NotingAdapter(HTTPAdapter):
    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **kw)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


def deadline_session() -> requests.Session:
    """A requests.Session whose connections a Watchdog can cut at its deadline."""
    session = requests.Session()
    adapter = _NotingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Watchdog:
    """`with Watchdog(seconds) as dog:` around one exchange; `dog.fired` says whether the deadline
    cut it. `watch(response)` adds a response's own connection (for sessions of other origins)."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        _in_flight.dog = self
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _in_flight.dog = None

    def watch(self, response: requests.Response) -> None:
        conn = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
        if conn is not None:
            self.note(conn)

    def note(self, conn: Any) -> None:
        """Cut `conn` at the deadline (at once if it has passed)."""
        with self._lock:
            self._conns.append(conn)
            fired = self.fired
        if fired:
            _shut(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            conns = list(self._conns)
        for conn in conns:
            _shut(conn)


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread; close() would not
