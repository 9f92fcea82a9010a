"""Host and Origin are read strictly (issue 15, defect 7): an open (token-less) API and the dashboard's
cookie check refuse every form a browser does not send — userinfo, lists, fragments, paths in an
Origin, the same header twice — instead of picking one reading of it."""

from __future__ import annotations

import socket

import pytest

from carbonshift.api.security import browser_risk, parse_authority, same_origin
from tests.api.helpers import ApiServer


def _headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in pairs]


@pytest.mark.parametrize(
    "host",
    [
        "evil.com@127.0.0.1",
        "127.0.0.1:18730, evil.com",
        "127.0.0.1 evil.com",
        "127.0.0.1/evil",
        "127.0.0.1#evil.com",
        "[::1]evil.com",
        "127.0.0.1:99999",
        "evil.com",
        "",
    ],
)
def test_an_open_api_refuses_hosts_no_browser_sends(host: str) -> None:
    assert browser_risk(_headers(("Host", host))) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"])
def test_an_open_api_answers_loopback_hosts(host: str) -> None:
    assert browser_risk(_headers(("Host", host))) is None
    assert browser_risk(_headers(("Host", host), ("Origin", "http://127.0.0.1:8765"))) is None


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.com#@127.0.0.1",
        "http://evil.com@127.0.0.1",
        "http://127.0.0.1/path",
        "http://127.0.0.1?x",
        "ftp://127.0.0.1",
        "127.0.0.1",
        "http://127.0.0.1, http://evil.com",
        "null",
    ],
)
def test_an_open_api_refuses_origins_no_browser_sends(origin: str) -> None:
    assert browser_risk(_headers(("Host", "127.0.0.1:8765"), ("Origin", origin))) is not None


def test_a_header_sent_twice_is_refused_whichever_comes_first() -> None:
    local = ("Origin", "http://127.0.0.1:8765")
    evil = ("Origin", "http://evil.com")
    host = ("Host", "127.0.0.1:8765")
    assert browser_risk(_headers(host, local, evil)) is not None
    assert browser_risk(_headers(host, evil, local)) is not None
    assert browser_risk(_headers(host, ("Host", "evil.com"))) is not None
    assert not same_origin(_headers(host, local, local))
    assert not same_origin(_headers(host, ("Referer", "http://127.0.0.1:8765/"), ("Referer", "http://x/")))


def test_same_origin_compares_parsed_authorities() -> None:
    host = ("Host", "127.0.0.1:8765")
    assert same_origin(_headers(host, ("Origin", "http://127.0.0.1:8765")))
    assert same_origin(_headers(host, ("Referer", "http://127.0.0.1:8765/jobs?x=1")))
    assert not same_origin(_headers(host, ("Origin", "http://evil.com#@127.0.0.1:8765")))
    assert not same_origin(_headers(host, ("Referer", "http://evil.com@127.0.0.1:8765/")))
    assert not same_origin(_headers(host, ("Origin", "http://127.0.0.1:8766")))
    assert not same_origin(_headers(host, ("Origin", "null")))
    assert not same_origin(_headers(host))
    assert parse_authority("[::1]:8765") == ("::1", 8765)
    assert parse_authority("a@b") is None


def _raw_get(server: ApiServer, *header_lines: str) -> tuple[int, bytes]:
    """GET /api/v1/jobs with exactly these header lines (requests would merge or rewrite them)."""
    port = int(server.url.rsplit(":", 1)[1])
    request = (
        "GET /api/v1/jobs HTTP/1.1\r\n"
        + "".join(f"{h}\r\n" for h in header_lines)
        + "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_the_real_server_refuses_ambiguous_hosts_and_origins_with_json(open_api: ApiServer) -> None:
    port = open_api.url.rsplit(":", 1)[1]
    assert _raw_get(open_api, f"Host: 127.0.0.1:{port}")[0] == 200
    for lines in (
        ("Host: evil.com@127.0.0.1",),
        (f"Host: 127.0.0.1:{port}, evil.com",),
        (f"Host: 127.0.0.1:{port}", "Origin: http://evil.com#@127.0.0.1"),
        (f"Host: 127.0.0.1:{port}", f"Origin: http://127.0.0.1:{port}", "Origin: http://evil.com"),
    ):
        status, body = _raw_get(open_api, *lines)
        assert status in {400, 403}, (lines, status)
        assert b'"detail"' in body  # JSON either way: a 403 from the check, a 400 from the server
