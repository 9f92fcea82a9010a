"""The seam between the scheduler and where a job runs.

A provider only executes: it is given a run that was already planned (region, start now) and turns it
into a process or an instance; it never chooses where or when. Launch is idempotent by run id — the
scheduler may call `launch` again after a crash or a timeout, and the provider must then return the
instance it already made (look it up by the run id tag/name first; an SDK idempotency token alone is
not enough). Capacity and quota refusals are one exception type, so the scheduler can try the plan's
next-best option without knowing any cloud's error codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from carbonshift.config.jobspec import JobSpec
from carbonshift.errors import CarbonshiftError


class ProviderError(CarbonshiftError):
    """A provider could not do what was asked (bad credentials, API error, a missing SDK extra).
    Messages never contain credentials."""

    def __init__(self, provider: str, reason: str) -> None:
        self.provider = provider
        self.reason = reason
        super().__init__(f"{provider}: {reason}")


class CapacityError(ProviderError):
    """The region cannot take the instance now (no capacity, quota exhausted, SKU not offered):
    the scheduler tries the next-best option of the plan and records this refusal."""

    def __init__(self, provider: str, region: str, reason: str, code: str = "") -> None:
        self.region = region
        self.code = code
        super().__init__(provider, f"{region}: {reason}" + (f" ({code})" if code else ""))


class InstanceState(StrEnum):
    PENDING = "pending"  # asked for, not running yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the job ended with exit code 0
    FAILED = "failed"  # the job ended non-zero, or the instance died
    TERMINATED = "terminated"  # stopped on request (cancel, watchdog)
    UNKNOWN = "unknown"  # the provider no longer knows it (lost)


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything a provider needs to start one run. `report_url`/`report_token` let the job's tracker
    send its report back to the scheduler; the token is per run and is the only secret a launched job
    ever receives."""

    run_id: str  # the idempotency key: unique, stable across retries
    spec: JobSpec
    region: str
    deadline: datetime  # the run must finish by then (the watchdog's reference)
    instance_type: str | None = None  # None: the provider picks one for spec.hardware
    interruptible: bool = False  # spot / preemptible allowed
    report_url: str | None = None
    report_token: str | None = field(default=None, repr=False)
    log_path: str | None = None  # local provider: where the job's output goes
    package: PackageSource | None = None  # None: from the settings (bootstrap_source)
    # the planned start, for providers that queue (Slurm's --begin); None or past: start now
    not_before: datetime | None = None
    # extra environment for the job, set by the scheduler (a chunk's CARBONSHIFT_CHUNK_INDEX,
    # CARBONSHIFT_CHUNK_COUNT, CARBONSHIFT_CHECKPOINT_DIR); applied after the spec's `env`
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PackageSource:
    """Where a launched instance gets carbonshift: a wheel by URL, installed only if its sha256
    matches (the daemon's own wheel, or one pinned in config), or a requirement from the package index
    (only when configured: whoever controls that name on the index controls the instance)."""

    wheel_url: str | None = None
    sha256: str | None = None
    wheel_file: str | None = None  # the wheel's file name (pip needs a well-formed one)
    requirement: str | None = None
    send_token: bool = False  # the daemon's own URL: the download is authorised with the run's token


@dataclass(frozen=True, slots=True)
class Handle:
    """What identifies a launched run at its provider; JSON-serialisable through `to_dict`, so the
    scheduler can persist it before and after the launch call and find the run again after a restart."""

    provider: str
    region: str
    run_id: str
    instance_id: str
    console_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "region": self.region,
            "run_id": self.run_id,
            "instance_id": self.instance_id,
            "console_url": self.console_url,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handle:
        return cls(
            provider=str(data["provider"]),
            region=str(data["region"]),
            run_id=str(data["run_id"]),
            instance_id=str(data["instance_id"]),
            console_url=data.get("console_url"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    state: InstanceState
    exit_code: int | None = None
    detail: str = ""
    report: dict[str, Any] | None = None  # the tracker's report when the provider can read it (local)


@runtime_checkable
class Provider(Protocol):
    name: str

    def regions(self) -> list[str]:
        """Region ids this provider can launch in (as in the catalog)."""
        ...

    def launch(self, request: LaunchRequest) -> Handle:
        """Start the run (idempotent by run id). Raises CapacityError or ProviderError."""
        ...

    def find(self, run_id: str, region: str) -> Handle | None:
        """The run's instance if one exists (the lookup that makes launch idempotent)."""
        ...

    def status(self, handle: Handle) -> InstanceStatus: ...

    def terminate(self, handle: Handle) -> None:
        """Stop the run; no error if it already ended."""
        ...

    def gone(self, handle: Handle) -> bool:
        """Whether the instance no longer exists (nothing left that bills): how a release is confirmed."""
        ...

    def managed(self) -> list[Handle]:
        """Every instance this provider holds that carbonshift launched (for orphan detection)."""
        ...


QUEUED_FOR = "queued_for"  # a queued run's handle details: the planned start it was queued for (ISO)
HELD = "held"  # a queued run's handle details: True while the engine holds it until `launch`


@runtime_checkable
class Queueing(Protocol):
    """An optional capability: engines with a queue of their own (Slurm, Kubernetes) take a run ahead of
    its planned start, so the cluster shows it waiting, and (`starts_queued`) may start it at its time
    even while no daemon runs. The scheduler detects it with `isinstance(provider, Queueing)`; clouds,
    which bill from the moment an instance exists, do not have it and are launched at the planned start.

    `prepare(request)` queues the run to start at `request.not_before`; it is idempotent by run id and is
    also how a re-plan moves a queued run: called again with a new `not_before`, the queued job follows
    it (a job already started is left alone). `terminate` removes a queued job like a running one; `launch`
    at the planned start returns the queued job (started by the engine, or resumed now)."""

    name: str
    # True: the engine starts the queued run itself at `not_before` (Slurm's --begin); False: it is held
    # (its handle's details[HELD] is True) until `launch` lets it go (a suspended Kubernetes Job)
    starts_queued: bool

    def prepare(self, request: LaunchRequest) -> Handle:
        """Queue (or re-time) the run for `request.not_before`. Raises CapacityError or ProviderError."""
        ...


def queueing(provider: object) -> Queueing | None:
    """The provider as a `Queueing` one, or None when its engine has no queue (a cloud, local)."""
    return provider if isinstance(provider, Queueing) else None
