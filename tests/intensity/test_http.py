"""The shared HTTP client, over real HTTP against the loopback fake: retries, budget, faults, secrets."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from carbonshift.config.settings import Settings
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.http import HttpClient, HttpError, http_factory_from_settings, redact_url
from tests.fakes.http_server import FakeHttpServer, FakeResponse
from tests.intensity.live_support import client

SECRET = "tok-SuperSecret-9c1e7"
HINT = "CARBONSHIFT_ELECTRICITYMAPS_TOKEN"


@pytest.fixture
def ok_server(fake_http: FakeHttpServer) -> FakeHttpServer:
    fake_http.route(r"/ok", lambda req: FakeResponse.json({"hello": "world", "n": 1}))
    return fake_http


def test_returns_parsed_json_and_sends_headers(ok_server: FakeHttpServer) -> None:
    got = client("t").get_json(f"{ok_server.url}/ok", params={"zone": "DE"}, headers={"auth-token": SECRET})
    assert got == {"hello": "world", "n": 1}
    (req,) = ok_server.requests
    assert req.query == {"zone": ["DE"]}
    assert req.header("auth-token") == SECRET
    assert (req.header("user-agent") or "").startswith("carbonshift")


def test_an_injected_session_is_used(ok_server: FakeHttpServer) -> None:
    session = requests.Session()
    session.headers["X-Through-Session"] = "yes"
    http = HttpClient("t", connect_timeout_s=1, read_timeout_s=1, budget_s=2, max_retries=0, session=session)
    http.get_json(f"{ok_server.url}/ok")
    assert ok_server.requests[0].header("x-through-session") == "yes"


def test_5xx_is_retried_then_succeeds(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=503, json_body={"error": "busy"}, times=2)
    sleeps: list[float] = []
    http = client("t", sleep=sleeps.append)
    assert http.get_json(f"{ok_server.url}/ok") == {"hello": "world", "n": 1}
    assert len(ok_server.requests) == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff


def test_5xx_that_persists_fails_transient_after_bounded_retries(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=500, times=10)
    with pytest.raises(SourceError) as info:
        client("t", max_retries=2).get_json(f"{ok_server.url}/ok")
    assert info.value.transient and not info.value.auth
    assert "server error (HTTP 500)" in info.value.reason
    assert "3 attempts" in info.value.reason
    assert len(ok_server.requests) == 3


def test_a_dropped_connection_is_retried(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", drop=True)
    assert client("t").get_json(f"{ok_server.url}/ok")["hello"] == "world"
    assert len(ok_server.requests) == 2


def test_connection_refused_fails_fast_with_a_clear_reason(dead_url: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        client("t", budget_s=3).get_json(f"{dead_url}/anything")
    assert time.monotonic() - t0 < 2.0
    assert info.value.reason.startswith("connection refused")
    assert info.value.transient
    assert dead_url not in str(info.value)


def test_timeout_stays_within_the_budget(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", delay_s=1.5, times=10)
    http = client("t", read_timeout_s=0.2, budget_s=1.0, max_retries=5)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        http.get_json(f"{ok_server.url}/ok")
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0 + 0.5  # budget, plus generous slack for a slow test machine
    assert info.value.reason.startswith("no answer")
    assert "gave up after" in info.value.reason
    assert info.value.transient


def test_one_budget_is_shared_by_all_calls_inside_a_budget_block(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", delay_s=1.5, times=20)
    http = client("t", read_timeout_s=0.3, budget_s=0.8, max_retries=3)
    t0 = time.monotonic()
    errors = []
    with http.budget():
        for _ in range(4):
            try:
                http.get_json(f"{ok_server.url}/ok")
            except SourceError as exc:
                errors.append(exc)
    assert time.monotonic() - t0 < 0.8 + 0.5
    assert len(errors) == 4
    assert "budget" in errors[-1].reason


def test_credentials_rejected_names_the_setting_and_never_the_secret(
    ok_server: FakeHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # a server that echoes the credential back in its error body
    ok_server.fault("/ok", status=401, json_body={"message": f"token {SECRET} is invalid"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HttpError) as info:
        client("electricitymaps", hint=HINT).get_json(
            f"{ok_server.url}/ok", params={"zone": "DE"}, headers={"auth-token": SECRET}
        )
    err = info.value
    assert err.auth and not err.transient and err.status == 401
    assert err.reason == f"credentials rejected (HTTP 401); check {HINT}"
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert SECRET not in caplog.text
    assert len(ok_server.requests) == 1  # a wrong credential is not retried


def test_403_is_access_denied(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=403, body=b"Access denied")
    with pytest.raises(SourceError) as info:
        client("t", hint=HINT).get_json(f"{ok_server.url}/ok", headers={"auth-token": SECRET})
    assert info.value.auth
    assert info.value.reason == f"access denied (HTTP 403); check {HINT}"


def test_basic_auth_password_never_shows(ok_server: FakeHttpServer, caplog: pytest.LogCaptureFixture) -> None:
    ok_server.fault("/ok", status=400, json_body={"error": f"bad password {SECRET}"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        client("t").get_json(f"{ok_server.url}/ok", auth=("user", SECRET))
    assert SECRET not in str(info.value) and "***" in info.value.reason
    assert SECRET not in caplog.text


def test_429_waits_for_retry_after_when_it_fits_the_budget(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=429, headers={"Retry-After": "1"})
    sleeps: list[float] = []
    got = client("t", budget_s=5, sleep=sleeps.append).get_json(f"{ok_server.url}/ok")
    assert got["hello"] == "world"
    assert sleeps == [1.0]


def test_429_with_a_real_wait_within_budget(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=429, headers={"Retry-After": "1"})
    t0 = time.monotonic()
    assert client("t", budget_s=3).get_json(f"{ok_server.url}/ok")["n"] == 1
    assert 0.9 < time.monotonic() - t0 < 3.0


def test_429_beyond_the_budget_fails_at_once_saying_when(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=429, headers={"Retry-After": "30"}, times=5)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        client("t", budget_s=2).get_json(f"{ok_server.url}/ok")
    assert time.monotonic() - t0 < 1.0
    assert info.value.reason == "rate limited, retry after 30 s"
    assert info.value.transient
    assert len(ok_server.requests) == 1


def test_429_retry_after_as_an_http_date(ok_server: FakeHttpServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    ok_server.fault("/ok", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(SourceError) as info:
        client("t", budget_s=2).get_json(f"{ok_server.url}/ok")
    assert info.value.reason in {"rate limited, retry after 119 s", "rate limited, retry after 120 s"}


def test_429_without_retry_after_backs_off_then_gives_up(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=429, times=5)
    with pytest.raises(SourceError) as info:
        client("t", max_retries=1).get_json(f"{ok_server.url}/ok")
    assert info.value.reason == "rate limited, retry later"
    assert len(ok_server.requests) == 2


def test_malformed_json_is_a_clear_error_and_not_retried(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", body=b'{"data": [1, 2')
    with pytest.raises(SourceError) as info:
        client("t").get_json(f"{ok_server.url}/ok")
    assert info.value.reason == "response is not valid JSON"
    assert len(ok_server.requests) == 1


def test_html_instead_of_json(ok_server: FakeHttpServer) -> None:
    ok_server.fault(
        "/ok", body=b"<html><body>Welcome to nginx</body></html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(SourceError, match="not valid JSON"):
        client("t").get_json(f"{ok_server.url}/ok")


def test_empty_body(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", body=b"")
    with pytest.raises(SourceError) as info:
        client("t").get_json(f"{ok_server.url}/ok")
    assert info.value.reason == "empty response body"


def test_404_means_unknown_zone(ok_server: FakeHttpServer) -> None:
    ok_server.fault("/ok", status=404, json_body={"error": "Zone 'XX' does not exist"})
    with pytest.raises(SourceError) as info:
        client("t").get_json(f"{ok_server.url}/ok")
    assert info.value.unknown_zone and not info.value.transient
    assert "HTTP 404" in info.value.reason


@pytest.mark.parametrize(
    ("message", "unknown"),
    [
        ("Zone 'XX' does not exist", True),
        ("Unknown location: 'mars-1'", True),
        ("region 'NOPE' not found", True),
        ("Please enter a valid outward postcode", True),
        ("start must be before end", False),
    ],
)
def test_400_says_unknown_zone_only_when_the_message_says_so(
    ok_server: FakeHttpServer, message: str, unknown: bool
) -> None:
    ok_server.fault("/ok", status=400, json_body={"error": {"code": "400 Bad Request", "message": message}})
    with pytest.raises(HttpError) as info:
        client("t").get_json(f"{ok_server.url}/ok")
    assert info.value.unknown_zone is unknown
    assert info.value.status == 400
    assert message in info.value.reason
    assert len(ok_server.requests) == 1


def test_debug_log_has_no_secret_in_query_or_url(
    ok_server: FakeHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonshift")
    client("t").get_json(f"{ok_server.url}/ok?api_key={SECRET}", params={"zone": "DE", "token": SECRET})
    assert "GET" in caplog.text and "zone=DE" in caplog.text
    assert SECRET not in caplog.text


def test_redact_url() -> None:
    url = f"https://user:{SECRET}@api.example.org:8443/v3/x?zone=DE&auth_token={SECRET}"
    safe = redact_url(url, {"signature": SECRET, "start": "2026-01-01T00:00Z"})
    assert SECRET not in safe and "user" not in safe
    assert safe.startswith("https://api.example.org:8443/v3/x?zone=DE")
    assert "start=2026-01-01T00:00Z" in safe


def test_factory_takes_timeouts_and_budget_from_settings() -> None:
    settings = Settings(
        intensity={"connect_timeout_s": 0.7, "read_timeout_s": 1.5, "source_budget_s": 4, "max_retries": 1}
    )
    http = http_factory_from_settings(settings)("electricitymaps", HINT)
    assert (http.connect_timeout_s, http.read_timeout_s, http.budget_s, http.max_retries) == (0.7, 1.5, 4, 1)
    assert http.credential_hint == HINT
