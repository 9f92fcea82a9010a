"""A real API server for the tests: the real Scheduler on a temporary SQLite database, the FastAPI app,
and uvicorn on a free loopback port in a thread; plus settings, specs and an HTTP session for it."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import uvicorn

from carbonshift.api import create_app
from carbonshift.api.serving import uvicorn_options
from carbonshift.config import Settings, load_settings
from carbonshift.scheduler import Scheduler

TOKEN = "test-api-token-not-a-real-secret-0123456789"
ZONE = "TESTZONE"
LOCAL_REGION = "this-machine"
PY = sys.executable


def zone_file(tmp: Path, g_per_kwh: float = 200.0) -> Path:
    """One value from 2020 for 40 years: every plan is flat and starts at its earliest time."""
    path = tmp / "zone.csv"
    path.write_text(f"timestamp,g_per_kwh\n2020-01-01T00:00Z,{g_per_kwh}\n2040-01-01T00:00Z,{g_per_kwh}\n")
    return path


def settings_overrides(tmp: Path, **extra: Any) -> dict[str, Any]:
    """Offline, hermetic settings: a user zone file, this machine as `local:this-machine`, everything
    (database, cache, logs) under `tmp`, a scheduler that looks at its database often."""
    out: dict[str, Any] = {
        "ukci_enabled": False,
        "data_dir": str(tmp / "data"),
        "db_url": f"sqlite:///{tmp / 'scheduler.sqlite'}",
        "location": ZONE,
        "locations": [
            {"provider": "local", "region": LOCAL_REGION, "zone": ZONE, "country": "DE", "pue": 1.2}
        ],
        "intensity": {"files": {ZONE: str(zone_file(tmp))}},
        "cache": {"enabled": False},
        "tracker": {"interval_s": 0.05, "detect_cloud": False, "gpu": False, "rapl": False},
        "scheduler": {"poll_interval_s": 0.2, "cancel_wait_s": 5.0, "terminate_grace_s": 2.0},
    }
    out.update(extra)
    return out


def config_file(tmp: Path, **extra: Any) -> Path:
    """The same settings as a config file, for `carbonshift serve` in a subprocess."""
    path = tmp / "carbonshift.yaml"
    path.write_text(json.dumps(settings_overrides(tmp, **extra)))  # JSON is YAML
    return path


def api_settings(tmp: Path, token: str | None = TOKEN, **extra: Any) -> Settings:
    return load_settings(None, api_token=token, **settings_overrides(tmp, **extra))


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class ApiServer:
    """The app served by uvicorn in a thread; `url` is its base address."""

    settings: Settings
    scheduler: Scheduler
    url: str = ""
    token: str | None = TOKEN
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None
    session: requests.Session = field(default_factory=requests.Session)
    options: dict[str, Any] = field(default_factory=dict)  # uvicorn.Config keywords; default: serve's

    def start(self) -> ApiServer:
        self.scheduler.start()
        app = create_app(self.scheduler, self.settings)
        self._sock = free_socket()
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        # as `serve` runs it (read deadline, connection limit, JSON 400s) unless a test says otherwise
        options = self.options or uvicorn_options()
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="api-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        self.session.trust_env = False
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self.session.close()
        self.scheduler.shutdown(wait=True)

    # ---- requests ------------------------------------------------------------------------------
    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        value = self.token if token is None else token
        return {**({"Authorization": f"Bearer {value}"} if value else {}), **extra}

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        response = self.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait_for(self, job_id: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        """Poll GET /jobs/{id} until `predicate(job)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/api/v1/jobs/{job_id}").json()
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last state: {json.dumps(job, indent=1)[:3000]}")
            time.sleep(0.1)


def start_server(
    tmp: Path,
    token: str | None = TOKEN,
    providers: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    **extra: Any,
) -> ApiServer:
    settings = api_settings(tmp, token=token, **extra)
    scheduler = Scheduler.from_settings(settings, providers=providers)
    return ApiServer(settings, scheduler, token=token, options=dict(options or {})).start()


def local_spec(
    name: str, command: list[str] | str, *, start_in: timedelta = timedelta(0), **extra: Any
) -> dict[str, Any]:
    """A spec for this machine: earliest `start_in` from now, a generous deadline."""
    earliest = datetime.now(UTC).replace(microsecond=0) + start_in
    spec: dict[str, Any] = {
        "name": name,
        "command": command,
        "duration": "2m",
        "hardware": {"vcpus": 1, "memory_gb": 1},
        "placement": {"providers": ["local"]},
        "window": {
            "earliest": earliest.isoformat().replace("+00:00", "Z"),
            "deadline": (earliest + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        },
    }
    spec.update(extra)
    return spec


def cloud_spec(name: str = "api-plan") -> dict[str, Any]:
    """A spec planned over the catalog's cloud regions (a dry run never launches it)."""
    return {
        "name": name,
        "command": ["python", "train.py"],
        "duration": "1h",
        "hardware": {"vcpus": 8, "memory_gb": 32},  # CPU-only: offered in every EU Google Cloud region
        "placement": {"providers": ["gcp"], "countries": ["EU"]},
        "baseline": "gcp:us-central1",
    }


def cli_env(server: ApiServer, **extra: str) -> dict[str, str]:
    env = {"CARBONSHIFT_SERVER": server.url, "CARBONSHIFT_UKCI_ENABLED": "false"}
    if server.token:
        env["CARBONSHIFT_API_TOKEN"] = server.token
    env.update(extra)
    return env
