"""The API's two gates, as plain ASGI middleware in front of every route: the bearer token and the
request-body limit.

Why middleware rather than a FastAPI dependency on each route: a route added later (or one FastAPI
adds itself, such as /openapi.json and /docs) is protected without anyone remembering to, and the
token is checked before a byte of the body is read, so an unauthenticated client cannot make the
server buffer anything. The exceptions are spelled out here and nowhere else: /healthz (for load
balancers and `serve`'s own start-up check) and a run's report endpoint, which a launched job calls
with its own per-run token, never the API token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI clients import is_loopback from here: no starlette at their start-up
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_ENV = "CARBONSHIFT_API_TOKEN"
# The dashboard's login cookie: the API token itself, HttpOnly and SameSite=Strict (see dashboard.py)
COOKIE_NAME = "carbonshift_token"
# What a browser may fetch before logging in: the login form and the stylesheet and scripts it uses
PUBLIC_PATHS = re.compile(r"^/(login|static/.*|favicon\.ico)$")
# API and machine routes answer 401; everything else is a dashboard page, which sends to the login form
# (/docs is a page: a browser without the login cookie is sent to the login form and back)
MACHINE_PATHS = re.compile(r"^/(api/|metrics$|openapi\.json$)")
REPORT_PATH = re.compile(r"^/api/v1/runs/[^/]+/report$")  # POST, with the run's own token
WHEEL_PATH = re.compile(r"^/api/v1/runs/[^/]+/wheel/[^/]+\.whl$")  # GET, with the run's own token
# Where the login form may send a browser back to: a local path of plain characters, never another host
SAFE_NEXT = re.compile(r"^/(?!/)[A-Za-z0-9_./-]*$")
# Over-limit bodies up to this many times the limit are read and dropped before the 413, so the client
# sees the answer instead of a connection reset in the middle of its upload; bigger ones are cut off.
DRAIN_FACTOR = 8


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and the name localhost.
    Anything else, 0.0.0.0 and :: (every interface) or an unresolved name included, is not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    for key, value in headers:
        if key.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def cookie_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The dashboard's login cookie, or None."""
    for key, value in headers:
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, content = part.strip().partition("=")
                if name == COOKIE_NAME and content:
                    return content
    return None


def same_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a form post comes from a page of this server: its Origin (or, lacking one, its Referer)
    names the host the request was addressed to. Neither header: refused."""
    host = _header(headers, b"host")
    source = _header(headers, b"origin") or _header(headers, b"referer")
    if host is None or source is None or source == "null":
        return False
    authority = source.split("://", 1)[-1].split("/", 1)[0]
    return authority.lower() == host.lower()


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison; hashing first keeps the expected token's length from leaking too."""
    a = hashlib.sha256(given.encode("utf-8")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _hostname(authority: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1'; '[::1]:8765' -> '::1'; 'http://localhost:8765' -> 'localhost'."""
    text = authority.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def browser_risk(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why an open (token-less) API refuses a request, or None.

    Without a token, the only thing between a job that runs commands and a web page the user happens
    to visit is the browser. A page can reach 127.0.0.1 through DNS rebinding (its own name, resolved
    to 127.0.0.1: the Host header then carries that name) or by a cross-site request (the Origin
    header names the page). So the open API answers only requests addressed to a loopback name and,
    if they come from a page at all, from a loopback page.
    """
    host = _header(headers, b"host")
    if host is not None and not is_loopback(_hostname(host)):
        return (
            "this API has no token and answers only requests addressed to 127.0.0.1, ::1 or localhost; "
            f"set {TOKEN_ENV} on the server to accept others"
        )
    origin = _header(headers, b"origin")
    if origin is not None and (origin == "null" or not is_loopback(_hostname(origin))):
        return f"cross-site requests are refused by an API without a token ({TOKEN_ENV})"
    return None


def login_location(path: str) -> bytes:
    """The login form, told to come back to `path` afterwards when that is a plain local path."""
    if SAFE_NEXT.match(path) is None or path in {"/", "/login"}:
        return b"/login"
    return b"/login?next=" + path.encode("ascii")


def _wants_page(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """A browser opening a dashboard page (GET, Accept: text/html, not an API route): it is sent to the
    login form instead of a 401; scripts and API clients keep getting 401."""
    accept = _header(headers, b"accept") or ""
    return method in {"GET", "HEAD"} and "text/html" in accept and MACHINE_PATHS.match(path) is None


class BearerAuth:
    """401 for every request without the API token, except /healthz and the per-run report endpoint.

    With no token configured the API is open: `serve` allows that only on a loopback address, and
    requests a browser could have been tricked into sending are refused (see `browser_risk`). The
    messages name the environment variable, never a token (neither the expected nor the one sent).
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        if token is not None and not token.strip():
            raise ValueError(f"{TOKEN_ENV} is set but empty; unset it or give it a value")
        self.app = app
        self.token = token

    @staticmethod
    def exempt(method: str, path: str) -> bool:
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return True
        if method in {"GET", "HEAD"} and WHEEL_PATH.match(path) is not None:
            return True
        if PUBLIC_PATHS.match(path) is not None and (method in {"GET", "HEAD"} or path == "/login"):
            return True
        return method == "POST" and REPORT_PATH.match(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is None:
            problem = browser_risk(scope.get("headers", []))
            if problem is not None:
                await send_json(send, 403, {"detail": problem}, [])
                return
        if self.token is None or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        given = bearer_token(headers)
        if given is not None and tokens_match(given, self.token):
            await self.app(scope, receive, send)
            return
        cookie = cookie_token(headers) if given is None else None
        if cookie is not None and tokens_match(cookie, self.token):
            # a browser's cookie rides along on any request to this host: an unsafe method must also
            # come from a page of this server (SameSite=Strict already keeps other sites' out)
            if scope["method"] not in {"GET", "HEAD", "OPTIONS"} and not same_origin(headers):
                await send_json(send, 403, {"detail": "cross-site request refused (Origin)"}, [])
                return
            await self.app(scope, receive, send)
            return
        if given is None and _wants_page(scope["method"], scope["path"], headers):
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", login_location(scope["path"])), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        detail = (
            f"missing API token: send 'Authorization: Bearer <token>' with the value of {TOKEN_ENV}"
            if given is None
            else f"invalid API token: check {TOKEN_ENV}"
        )
        await send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b'Bearer realm="carbonshift"')])


class BodyLimit:
    """413 for a request body over `max_bytes`, whether it declares its length or streams in chunks.

    The body is read here, up to the limit, and handed to the app from memory: the routes then never
    see more than `max_bytes`, whatever they do with it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Send) -> None:
        await send_json(
            send,
            413,
            {"detail": f"request body too large: the limit is {self.max_bytes} bytes (max_body_bytes)"},
            [(b"connection", b"close")],
        )

    async def _drain(self, receive: Receive, already: int) -> None:
        """Read and drop the rest of a moderately oversized body (see DRAIN_FACTOR)."""
        seen = already
        while seen <= self.max_bytes * DRAIN_FACTOR:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, {"detail": "invalid Content-Length header"}, [])
                    return
        if declared is not None and declared > self.max_bytes:
            if declared <= self.max_bytes * DRAIN_FACTOR:
                await self._drain(receive, 0)
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see that
                chunks_done: Message = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                chunks_done = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return chunks_done
            return await receive()

        await self.app(scope, replay, send)
