"""Text a server stored before validation refused it (a lone surrogate) reaches the CLI as a `\\u`
escape in JSON; `jobs list` and `jobs show` print it escaped instead of failing with a traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.api.helpers import local_spec, start_server
from tests.cli.helpers import run_cli


@pytest.fixture
def legacy_server(tmp_path: Path) -> Iterator[str]:
    """A server answering with a real job's JSON whose name and command hold a lone surrogate."""
    (tmp_path / "real").mkdir()
    real = start_server(tmp_path / "real", token=None)
    try:
        job = real.submit(local_spec("legacy", ["echo", "ok"]))
    finally:
        real.stop()
    job["name"] = "legacy\ud800"
    job["spec"]["command"] = ["echo", "\udfff"]
    listing = json.dumps({"jobs": [job], "next_cursor": None}).encode()  # ASCII: \ud800 escapes
    one = json.dumps(job).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = one if self.path.startswith(f"/api/v1/jobs/{job['id']}") else listing
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}|{job['id']}"
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_jobs_list_and_show_print_stored_surrogates_escaped(
    legacy_server: str, tmp_path: Path, fmt: str
) -> None:
    url, job_id = legacy_server.split("|")
    for args in (("jobs", "list"), ("jobs", "show", job_id)):
        result = run_cli(*args, "--server", url, "--format", fmt, tmp=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "legacy\\ud800" in result.stdout or "legacy\\\\ud800" in result.stdout
