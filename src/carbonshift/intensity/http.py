"""The one JSON-over-HTTP client every live intensity source uses.

Why a client of our own rather than bare `requests` calls in each source: the promises the merging
service makes to a user ("a dead source costs a command at most a few seconds", "a rejected credential
gets a clear message that never echoes it") only hold if every source fails the same way. So this is
where retries, backoff, `Retry-After`, the per-source time budget, status-code classification and
secret redaction live, and a source only turns JSON into a series.

Time budget: every call has one deadline, `budget_s` after it starts, that covers connecting, reading,
backoff sleeps and `Retry-After` waits together. A source that makes several calls for one fetch
(history, then forecast, in chunks) opens `with client.budget():` around them, so that the whole
fetch shares one deadline instead of each call getting a fresh one. Request timeouts are cut to what
is left of the budget, and each exchange runs under a Watchdog (deadline.py) that cuts its sockets at
the deadline, so an answer that trickles in, headers or body, cannot hold a command either.

The session is a seam (like httpx's transport): tests and callers may pass their own
`requests.Session`; `sleep` and `monotonic` can be injected so backoff is observable.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from carbonshift.intensity.base import SourceError

if TYPE_CHECKING:
    import requests

    from carbonshift.config.settings import Settings
    from carbonshift.intensity.deadline import Watchdog

log = logging.getLogger(__name__)

USER_AGENT = "carbonshift (+https://github.com/carbonshift)"
MAX_BODY_BYTES = 32 * 1024 * 1024  # no intensity answer is this big; a larger one is a wrong URL
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 2.0
_CHUNK = 64 * 1024
_SECRET_HEADERS = frozenset(
    {"authorization", "auth-token", "x-api-key", "api-key", "cookie", "proxy-authorization"}
)
_SECRET_PARAM = re.compile(r"token|key|secret|pass|auth|sig|code|credential", re.IGNORECASE)
# A 400/404/422 whose message says the zone/region/postcode/location is not known: the zone is the
# problem, not the source, so the merging service stops asking this source about this zone only.
_UNKNOWN_ZONE = re.compile(
    r"\b(zone|region|postcode|location|ba)s?\b[^.\n]{0,60}?\b(unknown|invalid|not\s+(?:a\s+)?valid|not\s+found|"
    r"does\s+not\s+exist|doesn't\s+exist|not\s+supported|unsupported|not\s+available)\b"
    r"|\b(unknown|invalid|unsupported|valid|no\s+such)\b[^.\n]{0,30}?\b(zone|region|postcode|location)s?\b",
    re.IGNORECASE,
)

Params = Mapping[str, str | int | float] | None
HttpFactory = Callable[[str, str | None], "HttpClient"]
"""Builds the client for one source: (source name, the setting to name when credentials fail)."""


class HttpError(SourceError):
    """A SourceError that came from an HTTP status, so a source can react to the status it cares
    about (WattTime renews its token on 401; the Carbon Aware SDK retries without bounds on 400)."""

    def __init__(
        self,
        source: str,
        reason: str,
        status: int,
        *,
        auth: bool = False,
        unknown_zone: bool = False,
        transient: bool = False,
    ) -> None:
        super().__init__(source, reason, auth=auth, unknown_zone=unknown_zone, transient=transient)
        self.status = status


class HttpClient:
    """GET-and-parse-JSON with bounded retries inside one time budget; raises only SourceError."""

    def __init__(
        self,
        source_name: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        budget_s: float,
        max_retries: int,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        credential_hint: str | None = None,
        backoff_base_s: float = BACKOFF_BASE_S,
    ) -> None:
        if budget_s <= 0 or connect_timeout_s <= 0 or read_timeout_s <= 0 or max_retries < 0:
            raise ValueError("timeouts and budget must be positive, retries not negative")
        self.source_name = source_name
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.budget_s = budget_s
        self.max_retries = max_retries
        self.credential_hint = credential_hint
        self.backoff_base_s = backoff_base_s
        self._session = session  # made on the first request: `requests` loads only when one is sent
        self._session_lock = threading.Lock()
        self._sleep = sleep
        self._monotonic = monotonic
        self._local = threading.local()  # the shared deadline of a budget() block, per thread

    @classmethod
    def from_settings(
        cls,
        source_name: str,
        settings: Settings,
        *,
        credential_hint: str | None = None,
        session: requests.Session | None = None,
    ) -> HttpClient:
        s = settings.intensity
        return cls(
            source_name,
            connect_timeout_s=s.connect_timeout_s,
            read_timeout_s=s.read_timeout_s,
            budget_s=s.source_budget_s,
            max_retries=s.max_retries,
            session=session,
            credential_hint=credential_hint,
        )

    # ---- budget ---------------------------------------------------------------------------------
    @contextmanager
    def budget(self) -> Iterator[None]:
        """Share one deadline (`budget_s` from now) among every call made inside the block.

        Nested blocks keep the outer deadline, so a helper can open one without giving a caller's
        fetch more time."""
        outer = self._deadline()
        if outer is None:
            self._local.deadline = self._monotonic() + self.budget_s
        try:
            yield
        finally:
            if outer is None:
                self._local.deadline = None

    def _deadline(self) -> float | None:
        deadline: float | None = getattr(self._local, "deadline", None)
        return deadline

    def remaining_s(self) -> float:
        """Seconds left in the current budget() block (the whole budget outside one)."""
        deadline = self._deadline()
        if deadline is None:
            return self.budget_s
        return max(0.0, deadline - self._monotonic())

    def _http(self) -> requests.Session:
        """The session, made on first use: a command whose sources are never asked (every candidate
        on static tables, say) does not import `requests` (~0.1 s of start-up)."""
        with self._session_lock:
            if self._session is None:
                self._session = _new_session()
            return self._session

    # ---- requests -------------------------------------------------------------------------------
    def get_json(
        self,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        credential_hint: str | None = None,
    ) -> Any:
        """GET `url` and return its parsed JSON body.

        Retries connection failures, timeouts, 5xx and 429 (the latter only as long as `Retry-After`
        fits the budget); everything else fails at once with a SourceError whose reason is short,
        human and free of credentials."""
        from carbonshift.intensity.deadline import Watchdog  # with `requests`, on the first request

        secrets = _secrets_of(headers, auth)
        hint = credential_hint or self.credential_hint
        safe_url = redact_url(url, params)
        deadline = self._deadline()
        start = self._monotonic()
        if deadline is None:
            deadline = start + self.budget_s
        attempts = self.max_retries + 1
        last: SourceError | None = None
        made = 0
        for attempt in range(attempts):
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            made += 1
            try:
                # under a Watchdog: at the deadline its sockets are cut, whatever phase the exchange is
                # in (a server trickling its headers or its body one byte a second included)
                with Watchdog(deadline - self._monotonic()) as dog:
                    try:
                        return self._attempt(
                            url, params, headers, auth, deadline, secrets, hint, safe_url, dog
                        )
                    except (_Retry, SourceError) as exc:
                        raise self._cut_off(exc, dog) from None
            except _Retry as retry:
                last = retry.error
                if attempt + 1 >= attempts:
                    break
                remaining = deadline - self._monotonic()
                if retry.wait_s is not None:  # the server said when: wait exactly that, if it fits
                    if retry.wait_s >= remaining:
                        raise _told_to_wait(retry.error, retry.wait_s) from None
                    wait = retry.wait_s
                else:
                    wait = min(self.backoff_base_s * (2**attempt), BACKOFF_CAP_S)
                    if wait >= remaining:
                        break
                log.debug("%s: %s; retrying in %.2f s", self.source_name, retry.error.reason, wait)
                self._sleep(wait)
        elapsed = self._monotonic() - start
        if last is None:
            raise SourceError(
                self.source_name, f"time budget of {self.budget_s:g} s used up before asking", transient=True
            )
        if isinstance(last, _RateLimited):
            raise _told_to_wait(last, last.wait_s)
        tries = f"{made} attempt{'s' if made > 1 else ''}"
        raise _with_reason(last, f"{last.reason}; gave up after {tries} in {elapsed:.1f} s")

    def _attempt(
        self,
        url: str,
        params: Params,
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
        deadline: float,
        secrets: list[str],
        hint: str | None,
        safe_url: str,
        dog: Watchdog,
    ) -> Any:
        name = self.source_name
        remaining = max(0.001, deadline - self._monotonic())
        read_timeout = min(self.read_timeout_s, remaining)
        timeout = (min(self.connect_timeout_s, remaining), read_timeout)
        if read_timeout < self.read_timeout_s:
            no_answer = f"no answer before the time budget of {self.budget_s:g} s ran out"
        else:
            no_answer = f"no answer within {read_timeout:g} s"
        t0 = self._monotonic()
        import requests

        session = self._http()
        try:
            resp = session.get(
                url, params=params, headers=dict(headers or {}), auth=auth, timeout=timeout, stream=True
            )
        except requests.exceptions.ConnectTimeout:
            raise _Retry(SourceError(name, "connection timed out", transient=True)) from None
        except requests.exceptions.ReadTimeout:
            raise _Retry(SourceError(name, no_answer, transient=True)) from None
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ):
            raise SourceError(name, "the configured URL is not a valid http(s) URL") from None
        except requests.exceptions.SSLError:
            raise SourceError(
                name, "TLS handshake failed (certificate or proxy problem)", transient=True
            ) from None
        except requests.exceptions.TooManyRedirects:
            raise SourceError(name, "too many redirects (check the configured URL)") from None
        except requests.exceptions.ConnectionError as exc:
            reason = _describe_connection_error(exc)
            if reason == "host name not found":  # offline or a mistyped URL: asking again won't help
                raise SourceError(name, reason, transient=True) from None
            raise _Retry(SourceError(name, reason, transient=True)) from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(name, f"request failed ({type(exc).__name__})", transient=True) from None
        dog.watch(resp)
        with resp:
            status = resp.status_code
            try:
                body = _read_body(resp, deadline, self._monotonic)
            except _BodyTooSlow:
                raise _Retry(
                    SourceError(name, "answer did not arrive within the time budget", transient=True)
                ) from None
            except _BodyTooBig:
                raise SourceError(name, f"answer larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB") from None
            except requests.exceptions.RequestException as exc:
                if _is_timeout(exc):
                    raise _Retry(SourceError(name, no_answer, transient=True)) from None
                raise _Retry(
                    SourceError(name, "connection broken while reading the answer", transient=True)
                ) from None
            log.debug("%s: GET %s -> HTTP %d in %.2f s", name, safe_url, status, self._monotonic() - t0)
            if 200 <= status < 300:
                return _parse_json(name, body)
            message = _redact(_server_message(body), secrets)
            if status in (401, 403):
                what = "credentials rejected" if status == 401 else "access denied"
                tail = f"; check {hint}" if hint else ""
                raise HttpError(name, f"{what} (HTTP {status}){tail}", status, auth=True)
            if status == 429:
                wait = _retry_after_s(resp.headers.get("Retry-After"))
                raise _Retry(_RateLimited(name, status, wait), wait_s=wait)
            if status >= 500:
                wait = _retry_after_s(resp.headers.get("Retry-After")) if status == 503 else None
                raise _Retry(
                    HttpError(name, f"server error (HTTP {status})", status, transient=True), wait_s=wait
                )
            if status == 404:
                if message and _UNKNOWN_ZONE.search(message):
                    reason = f"not found (HTTP 404: {message})"
                else:  # no word about the zone: as likely a wrong base URL
                    reason = "not found (HTTP 404); check the zone and the configured URL"
                raise HttpError(name, reason, status, unknown_zone=True)
            if status in (400, 422) and message and _UNKNOWN_ZONE.search(message):
                raise HttpError(name, f"unknown zone (HTTP {status}: {message})", status, unknown_zone=True)
            detail = f": {message}" if message else ""
            raise HttpError(name, f"request rejected (HTTP {status}{detail})", status)

    def _cut_off(self, exc: _Retry | SourceError, dog: Watchdog) -> _Retry | SourceError:
        """The error to report for a failed exchange: the deadline's, when the Watchdog cut it (a
        read timeout at the same moment says so itself)."""
        error = exc.error if isinstance(exc, _Retry) else exc
        if not dog.fired or error.reason.startswith("no answer"):
            return exc
        reason = f"no answer before the time budget of {self.budget_s:g} s ran out"
        return _Retry(SourceError(self.source_name, reason, transient=True))


# ---- helpers ------------------------------------------------------------------------------------
class _Retry(Exception):
    def __init__(self, error: SourceError, wait_s: float | None = None) -> None:
        super().__init__(error.reason)
        self.error = error
        self.wait_s = wait_s


class _RateLimited(HttpError):
    def __init__(self, source: str, status: int, wait_s: float | None) -> None:
        super().__init__(source, "rate limited (HTTP 429)", status, transient=True)
        self.wait_s = wait_s


class _BodyTooSlow(Exception):
    pass


class _BodyTooBig(Exception):
    pass


def _told_to_wait(err: SourceError, wait_s: float | None) -> HttpError:
    """The final error when the server asked us to come back later than the budget allows."""
    status = getattr(err, "status", 429)
    what = "rate limited" if status == 429 else f"server unavailable (HTTP {status})"
    when = "retry later" if wait_s is None else f"retry after {math.ceil(wait_s)} s"
    return HttpError(err.source, f"{what}, {when}", status, transient=True)


def _with_reason(err: SourceError, reason: str) -> SourceError:
    if isinstance(err, HttpError):
        return HttpError(
            err.source,
            reason,
            err.status,
            auth=err.auth,
            unknown_zone=err.unknown_zone,
            transient=err.transient,
        )
    return SourceError(
        err.source, reason, auth=err.auth, unknown_zone=err.unknown_zone, transient=err.transient
    )


def _new_session() -> requests.Session:
    from carbonshift.intensity.deadline import deadline_session

    session = deadline_session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    session.trust_env = True  # proxies from the environment, as users expect
    return session


def _read_body(resp: requests.Response, deadline: float, monotonic: Callable[[], float]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooBig
        if monotonic() > deadline:
            raise _BodyTooSlow
    return b"".join(chunks)


def _parse_json(source: str, body: bytes) -> Any:
    if not body.strip():
        raise SourceError(source, "empty response body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SourceError(source, "response is not valid JSON") from None


def _server_message(body: bytes) -> str:
    """A short message from an error body, if the server sent one (JSON `error`/`message`/`detail`)."""
    text = body[:4096].decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    found: str | None = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "title", "errors"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("code")
            if isinstance(value, str) and value.strip():
                found = value
                break
    elif data is None and "<" not in text[:1]:  # plain text, not an HTML error page
        found = text
    if not found:
        return ""
    found = " ".join(found.split())
    return found if len(found) <= 120 else found[:117] + "..."


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    raw = value.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe_connection_error(exc: BaseException) -> str:
    text = _chain_text(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text or "without response" in text:
        return "connection reset by the server"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host name not found"
    if "timed out" in text:
        return "connection timed out"
    return "could not connect"


def _is_timeout(exc: BaseException) -> bool:
    return "timed out" in _chain_text(exc).lower() or "timeout" in _chain_text(exc).lower()


def _chain_text(exc: BaseException) -> str:
    """Type names and messages down the cause chain and args (requests wraps urllib3 wraps OSError);
    used only to classify, never shown (it can contain the URL)."""
    parts: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        parts.append(type(e).__name__)
        parts.append(str(e))
        for nxt in (e.__cause__, e.__context__, *[a for a in e.args if isinstance(a, BaseException)]):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return " ".join(parts)


def _secrets_of(headers: Mapping[str, str] | None, auth: tuple[str, str] | None) -> list[str]:
    found = [v for k, v in (headers or {}).items() if k.lower() in _SECRET_HEADERS and v]
    for value in list(found):
        if " " in value:  # "Bearer abc": the token alone can show up too
            found.append(value.split(" ", 1)[1])
    if auth is not None and auth[1]:
        found.append(auth[1])
    return [s for s in found if len(s) >= 4]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def redact_url(url: str, params: Params = None) -> str:
    """The URL as it may appear in a log line: no user:password@, no value of a query parameter whose
    name suggests a credential (a token someone put in a configured base URL)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, str(v)) for k, v in (params or {}).items()]
    safe = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in query]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(safe, safe=":"), ""))


def http_factory_from_settings(settings: Settings, session: requests.Session | None = None) -> HttpFactory:
    """The default way sources get their client: timeouts, budget and retries from `settings.intensity`."""

    def factory(source_name: str, credential_hint: str | None) -> HttpClient:
        return HttpClient.from_settings(
            source_name, settings, credential_hint=credential_hint, session=session
        )

    return factory
