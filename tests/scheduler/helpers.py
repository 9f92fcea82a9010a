"""Shared set-up for the scheduler tests: settings with local locations whose intensity comes from
files we write (so plans are deterministic and offline), a provider fake, and a poller."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import JobSpec, parse_jobspec
from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderError,
)

NOW = datetime(2030, 3, 5, 0, 0, tzinfo=UTC)  # a Tuesday, years ahead: no real timer ever fires for it

Rows = list[tuple[datetime, float]]
_mtime = [0]


def write_series(path: Path, rows: Iterable[tuple[datetime, float]]) -> None:
    """Write an intensity CSV and give it a fresh mtime (the file source caches by mtime, and two
    writes within one clock tick of the file system could otherwise look the same)."""
    path.write_text("timestamp,g_per_kwh\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows))
    _mtime[0] += 1
    stamp = time.time_ns() + _mtime[0] * 1_000_000
    os.utime(path, ns=(stamp, stamp))


def hourly(start: datetime, hours: int, value: Callable[[int], float]) -> Rows:
    return [(start + timedelta(hours=h), value(h)) for h in range(hours)]


def make_settings(
    tmp_path: Path,
    series: dict[str, Rows] | None = None,
    *,
    scheduler: dict[str, Any] | None = None,
    db_url: str | None = None,
    **extra: Any,
) -> Settings:
    """Settings with one local location per entry of `series` (region name -> hourly rows)."""
    series = series or {"lab": hourly(NOW - timedelta(days=1), 24 * 10, lambda h: 300.0)}
    files: dict[str, str] = {}
    locations = []
    for region, rows in series.items():
        zone = f"{region.upper()}-ZONE"
        path = tmp_path / f"{region}.csv"
        write_series(path, rows)
        files[zone] = str(path)
        locations.append({"region": region, "zone": zone, "country": "ES", "pue": 1.0})
    sched = {
        "poll_interval_s": 3600,
        "replan_interval_s": 1800,
        "replan_before_start_s": 0,
        **(scheduler or {}),
    }
    return load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        data_dir=str(tmp_path / "data"),
        intensity={"files": files},
        locations=locations,
        tracker={"detect_cloud": False, "codecarbon_csv": False},
        scheduler=sched,
        db_url=db_url,
        **extra,
    )


def spec(**fields: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "job",
        "command": ["true"],
        "duration": "1h",
        "placement": {"providers": ["local"]},
    }
    data.update(fields)
    return parse_jobspec(data)


def window(earliest: datetime, deadline: datetime) -> dict[str, str]:
    return {"earliest": earliest.isoformat(), "deadline": deadline.isoformat()}


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakeProvider:
    """An in-memory provider: launches are counted per run id (idempotent, as the protocol asks),
    regions in `refuse` raise CapacityError, and the test decides when a run ends."""

    def __init__(self, name: str = "local", refuse: Iterable[str] = ()) -> None:
        self.name = name
        self.refuse = set(refuse)
        self.handles: dict[str, Handle] = {}
        self.states: dict[str, InstanceState] = {}
        self.launches: dict[str, int] = {}
        self.requests: dict[str, LaunchRequest] = {}
        self.terminated: list[str] = []
        self.terminate_failures = 0  # the next this many terminate calls fail (a throttled API)

    def regions(self) -> list[str]:
        return []

    def launch(self, request: LaunchRequest) -> Handle:
        if request.region in self.refuse:
            raise CapacityError(self.name, request.region, "no capacity for this shape", "FAKE_CAPACITY")
        if request.run_id in self.handles:
            return self.handles[request.run_id]
        handle = Handle(self.name, request.region, request.run_id, f"fake-{request.run_id}")
        self.handles[request.run_id] = handle
        self.states[request.run_id] = InstanceState.RUNNING
        self.launches[request.run_id] = self.launches.get(request.run_id, 0) + 1
        self.requests[request.run_id] = request
        return handle

    def find(self, run_id: str, region: str) -> Handle | None:
        return self.handles.get(run_id)

    def status(self, handle: Handle) -> InstanceStatus:
        state = self.states[handle.run_id]
        code = {InstanceState.SUCCEEDED: 0, InstanceState.FAILED: 3}.get(state)
        return InstanceStatus(state, exit_code=code, detail=f"fake {state.value}")

    def terminate(self, handle: Handle) -> None:
        if self.terminate_failures > 0:
            self.terminate_failures -= 1
            raise ProviderError(self.name, "terminate: request throttled (RequestLimitExceeded)")
        self.terminated.append(handle.run_id)
        self.states[handle.run_id] = InstanceState.TERMINATED

    def gone(self, handle: Handle) -> bool:
        return handle.run_id in self.terminated

    def managed(self) -> list[Handle]:
        return list(self.handles.values())

    def finish(self, run_id: str, ok: bool = True) -> None:
        self.states[run_id] = InstanceState.SUCCEEDED if ok else InstanceState.FAILED
