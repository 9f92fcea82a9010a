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
from typing import TYPE_CHECKING, Any, Literal

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


# Host as browsers send it: a name or IPv4 address, or an IPv6 address in brackets, and an optional
# port. Nothing else (userinfo, a list, a path, spaces) is a form a browser sends, so none is read.
_AUTHORITY = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>\d{1,5}))?$")
# Origin: scheme://authority and nothing after it (RFC 6454); "null" is handled by the callers
_ORIGIN = re.compile(r"^(?P<scheme>https?)://(?P<authority>[^/?#@\s]+)$", re.IGNORECASE)
# Referer: an absolute http(s) URL without userinfo; the authority ends at the first / ? or #
_REFERER = re.compile(r"^(?P<scheme>https?)://(?P<authority>[^/?#@\s]+)(?:[/?#]\S*)?$", re.IGNORECASE)


def parse_authority(value: str) -> tuple[str, int | None] | None:
    """(host, port) of a Host header or an Origin's authority, strictly; None for anything ambiguous."""
    match = _AUTHORITY.match(value)
    if match is None:
        return None
    host = (match.group("v6") or match.group("name")).lower()
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        return None
    return host, port


def _source_authority(value: str, pattern: re.Pattern[str]) -> tuple[str, int | None] | None:
    match = pattern.match(value)
    return parse_authority(match.group("authority")) if match is not None else None


def _one(headers: list[tuple[bytes, bytes]], name: bytes) -> str | Literal[False] | None:
    """The header's only value, None when absent, False when sent more than once (ambiguous: which
    one a proxy or a framework reads is anyone's guess)."""
    values = [value for key, value in headers if key.lower() == name]
    if len(values) > 1:
        return False
    return values[0].decode("latin-1").strip() if values else None


def same_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a form post comes from a page of this server: its Origin (or, lacking one, its Referer)
    names the host the request was addressed to. Neither header, either one sent twice, or any form
    a browser does not send (userinfo, a fragment in an Origin): refused."""
    host, origin, referer = (_one(headers, name) for name in (b"host", b"origin", b"referer"))
    if not host or origin is False or referer is False:
        return False
    if origin is not None:
        source = None if origin == "null" else _source_authority(origin, _ORIGIN)
    elif referer is not None:
        source = _source_authority(referer, _REFERER)
    else:
        return False
    return source is not None and source == parse_authority(host)


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


def browser_risk(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why an open (token-less) API refuses a request, or None.

    Without a token, the only thing between a job that runs commands and a web page the user happens
    to visit is the browser. A page can reach 127.0.0.1 through DNS rebinding (its own name, resolved
    to 127.0.0.1: the Host header then carries that name) or by a cross-site request (the Origin
    header names the page). So the open API answers only requests addressed to a loopback name and,
    if they come from a page at all, from a loopback page.
    """
    host, origin = _one(headers, b"host"), _one(headers, b"origin")
    if host is False or origin is False:
        return "a Host or Origin header sent more than once is refused"
    addressed = parse_authority(host) if host is not None else None
    if host is not None and (addressed is None or not is_loopback(addressed[0])):
        return (
            "this API has no token and answers only requests addressed to 127.0.0.1, ::1 or localhost; "
            f"set {TOKEN_ENV} on the server to accept others"
        )
    if origin is not None:
        source = None if origin == "null" else _source_authority(origin, _ORIGIN)
        if source is None or not is_loopback(source[0]):
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
            if message["type"] != "http.request":  # the client went away (or `serve` cut off a body
                return  # shorter than its Content-Length): there is no one to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                chunks_done: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return chunks_done
            return await receive()

        await self.app(scope, replay, send)
