"""The scheduler daemon's settings (`scheduler.*` in the config file, CARBONSHIFT_SCHEDULER__* in the
environment).

Kept here rather than in config/settings.py so the scheduler owns its knobs; this module imports
nothing but pydantic, so config can include it without pulling SQLAlchemy or APScheduler in.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[str] = Field(
        default_factory=lambda: ["local"],
        description="where this daemon launches runs: local (this machine) is always there; add aws, gcp "
        "or azure once their credentials are set up (a plan's options elsewhere are not launched)",
    )

    poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often the daemon looks at the database: due launches, running runs, new "
        "occurrences, cancellations asked for by another instance (launches also have their own "
        "APScheduler date jobs, so this bounds lateness only when one is lost)",
    )
    replan_interval_s: float = Field(
        default=1800.0, gt=0, description="a waiting run is planned again with fresh forecasts this often"
    )
    replan_before_start_s: float = Field(
        default=600.0, ge=0, description="and once more this long before its planned start (0: never)"
    )
    replan_min_gain_pct: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="a re-plan moves a run only when the new start emits at least this much less (%)",
    )
    misfire_grace_s: float | None = Field(
        default=None,
        ge=0,
        description="a run that came due while the daemon was down starts late only if it is at most this "
        "late; None: only the deadline decides (start + duration <= deadline)",
    )
    standby: bool = Field(
        default=True,
        description="PostgreSQL: a second daemon waits as a hot standby instead of refusing to start",
    )
    standby_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="how often a standby tries to take the daemon lock"
    )
    leadership_check_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often the active daemon checks, on its own thread (not the tick's), that it still "
        "holds the daemon lock and the leadership epoch; it steps down at once when it does not",
    )
    tick_stale_s: float = Field(
        default=120.0,
        gt=0,
        description="/healthz answers 503 (stale) when the active daemon's last tick began longer ago than "
        "this (or than 3 poll intervals, if longer)",
    )
    terminate_grace_s: float = Field(
        default=10.0, ge=0, description="after SIGTERM, how long a local run gets before SIGKILL"
    )
    watchdog_margin_s: float | None = Field(
        default=900.0,
        ge=0,
        description="a run still going this long after its deadline is stopped and marked failed "
        "(a hung job must not run, and bill, forever); None: never",
    )
    launch_settle_looks: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="a launch that ended without a clear answer (a timeout, an operation error) stays "
        "launching while the provider is asked for the run on this many ticks; then it is declared lost "
        "and an orphan check is asked for",
    )
    provider_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="threads that make the daemon's provider calls (launch, find, status, terminate): "
        "the tick hands each run's calls to them and never waits for a slow one; at most this many run "
        "at once",
    )
    provider_call_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="a provider call with no answer after this long is given up on: a launch becomes an "
        "unclear answer (settled by asking the provider for the run once the call has returned), a "
        "release is retried with backoff; an answer that comes later is not used",
    )
    cancel_wait_s: float = Field(
        default=3.0, ge=0, le=60, description="how long cancel() waits for a running run to stop"
    )
    plan_options_kept: int = Field(
        default=5, ge=1, le=200, description="ranked options stored with each plan (capacity fallbacks)"
    )
    local_tracker: bool = Field(
        default=True,
        description="run local jobs under `carbonshift track` (energy and emissions measured); "
        "false: run the command bare",
    )
    report_url: str | None = Field(
        default=None,
        description="URL a remote run's tracker posts its report to (`{run_id}` is replaced); "
        "default: public_url's, else set by `serve` from the address it listens on",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$",
        description="the address cloud VMs, pods and cluster nodes reach this daemon at, e.g. "
        "https://carbonshift.example.org (reports and the bootstrap wheel go through it); "
        "`serve` refuses cloud providers when runs could only reach a loopback address",
    )
    max_catchup: int = Field(
        default=200,
        ge=1,
        description="most missed occurrences of one schedule recorded per tick after a long downtime",
    )
    max_log_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="run_log returns at most this much (the tail)"
    )
