"""Settings from environment variables (prefix CARBONSHIFT_) and an optional YAML config file.

Precedence, highest first: explicit overrides in code, environment variables, the config file,
defaults. Nested keys in the environment use a double underscore (CARBONSHIFT_CACHE__FORECAST_TTL_S).
Invalid settings fail at start with a message naming the key, and never echo a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from carbonshift.config.environment import EnvironmentValueError, deep_update, environment_values
from carbonshift.config.jobspec import Labels
from carbonshift.config.kubernetes import KubernetesSettings
from carbonshift.config.patterns import check_pattern
from carbonshift.config.slurm import SlurmSettings
from carbonshift.errors import ConfigError
from carbonshift.intensity.types import Basis, Signal
from carbonshift.scheduler.settings import SchedulerSettings
from carbonshift.tracker.settings import TrackerSettings

ENV_PREFIX = "CARBONSHIFT_"
CONFIG_ENV = "CARBONSHIFT_CONFIG"
KNOWN_SOURCES = ("files", "electricitymaps", "watttime", "ukci", "carbon_aware_sdk")
_SECRET_WORDS = ("token", "password", "secret", "credential", "key")
AWS_INSTANCE_PROFILE_PATTERN = r"^(arn:aws[a-z-]*:iam::\d{12}:instance-profile/)?[\w+=,.@/-]{1,128}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheSettings(_Strict):
    enabled: bool = True
    path: Path | None = Field(
        default=None, description="SQLite file for fetched intensity; default: the user cache dir"
    )
    forecast_ttl_s: int = Field(default=900, ge=0, description="how long a fetched forecast stays fresh")
    history_ttl_s: int = Field(
        default=6 * 3600, ge=0, description="how long fetched history stays fresh (late corrections arrive)"
    )

    def resolved_path(self) -> Path:
        return self.path or Path(platformdirs.user_cache_dir("carbonshift")) / "intensity.sqlite"


class IntensitySettings(_Strict):
    priority: list[str] = Field(
        default_factory=lambda: list(KNOWN_SOURCES),
        description="live sources in order of preference; static tables always come last",
    )
    files: dict[str, Path] = Field(
        default_factory=dict, description="zone -> CSV file (timestamp,g_per_kwh), used as given"
    )
    files_basis: Basis = Field(
        default=Basis.LIFECYCLE,
        description="what the files' values count: lifecycle (as Electricity Maps exports) or direct",
    )
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    source_budget_s: float = Field(
        default=6.0,
        gt=0,
        le=300,
        description="most time one source may take for one request, retries included",
    )
    max_retries: int = Field(default=2, ge=0, le=10)
    max_g_per_kwh: float = Field(default=2500.0, gt=0, description="values above this are rejected as absurd")
    model_history_days: int = Field(
        default=7, ge=1, le=60, description="history used for a modelled (daily profile) forecast"
    )

    @field_validator("priority")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in KNOWN_SOURCES]
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; allowed: {', '.join(KNOWN_SOURCES)}")
        return value


class LocationSetting(_Strict):
    """A place of the user's own (an on-prem cluster, a lab) mapped to a grid zone."""

    provider: str = "local"
    region: str = Field(min_length=1, max_length=63)
    zone: str = Field(min_length=1)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    location: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    pue: float = Field(default=1.0, ge=1.0, le=3.0)
    watttime_region: str | None = None


# The config file's values while `load_settings` builds a Settings: the lowest layer, under the environment
_FILE_VALUES: ContextVar[Mapping[str, Any]] = ContextVar(
    "carbonshift_config_file_values", default=MappingProxyType({})
)


class Settings(BaseModel):
    """Everything configurable. `Settings(**values)` lays `values` over the CARBONSHIFT_* environment
    variables (config/environment.py), and `load_settings` puts a config file under both."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    electricitymaps_token: SecretStr | None = None
    electricitymaps_url: str = "https://api.electricitymaps.com/v3"
    watttime_username: str | None = None
    watttime_password: SecretStr | None = None
    watttime_url: str = "https://api.watttime.org"
    ukci_url: str = "https://api.carbonintensity.org.uk"
    ukci_enabled: bool = True
    carbon_aware_sdk_url: str | None = None
    carbon_aware_sdk_signal: Signal = Field(
        default=Signal.MARGINAL,
        description="the signal the hosted Carbon Aware SDK serves (WattTime-backed: marginal)",
    )
    carbon_aware_sdk_basis: Basis | None = Field(
        default=None,
        description="what its values count: direct or lifecycle (default: direct for marginal, lifecycle "
        "for average, as WattTime and Electricity Maps document theirs)",
    )
    signal: Signal = Signal.AVERAGE
    location: str | None = Field(default=None, description="this machine's location: a region or zone")
    data_dir: Path | None = None
    # HTTP API (`carbonshift serve`) and its CLI clients; without a token the API is open, loopback only
    api_token: SecretStr | None = Field(default=None, description="bearer token for the HTTP API")
    server: str = Field(default="http://127.0.0.1:8765", description="the API the CLI clients talk to")
    host: str = Field(default="127.0.0.1", description="address `carbonshift serve` listens on")
    port: int = Field(default=8765, ge=0, le=65535, description="port `carbonshift serve` listens on")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="largest request body the API reads")
    api_compute_slots: int = Field(
        default=1,
        ge=1,
        le=64,
        description="dry-run plans and job listings the API computes at once (one Python process runs "
        "one at a time anyway; raise it when live intensity sources are slow)",
    )

    intensity: IntensitySettings = Field(default_factory=IntensitySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    locations: list[LocationSetting] = Field(default_factory=list)
    slurm: SlurmSettings = Field(
        default_factory=SlurmSettings, description="Slurm clusters as placement targets (slurm:NAME)"
    )
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings,
        description="Kubernetes clusters as placement targets (kubernetes:NAME)",
    )
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    labels: Labels = Field(
        default_factory=Labels,
        description="default ownership labels (organisation, team, project) for jobs and tracked runs",
    )

    # scheduler daemon (issue 5): its database (SQLite in data_dir by default; postgresql://... for teams)
    db_url: str | None = Field(
        default=None, description="scheduler database URL; default: SQLite <data_dir>/carbonshift.db"
    )
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)

    # Cloud launches (providers/). Credentials come from each SDK's own chain (AWS profiles and env,
    # Google ADC, Azure DefaultAzureCredential), never from here. The endpoints are for tests, emulators
    # and private clouds: when one is set, that adapter uses anonymous/static credentials. AWS takes
    # boto3's own AWS_ENDPOINT_URL_EC2.
    gcp_endpoint: str | None = Field(
        default=None, description="Compute Engine API endpoint, e.g. http://127.0.0.1:8080 (anonymous)"
    )
    gcp_project: str | None = Field(default=None, description="Google Cloud project; default: ADC's")
    azure_endpoint: str | None = Field(
        default=None, description="Azure Resource Manager endpoint, e.g. http://127.0.0.1:8081 (static)"
    )
    azure_subscription_id: str | None = Field(default=None, description="Azure subscription for launches")
    azure_resource_group: str = Field(
        default="carbonshift", description="existing Azure resource group that launched VMs go in"
    )
    azure_ssh_public_key: str | None = Field(
        default=None, description="public key for the VMs' admin user; default: a random unused password"
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description="VM image by 'provider' or 'provider:region' (region wins); defaults: README, providers",
    )
    # The identity a launched VM runs as, so its job can read its workdir (and whatever else you grant):
    # a name, never a credential. Unset: the VM gets no cloud credentials at all.
    aws_instance_profile: (
        Annotated[str, WithJsonSchema({"type": "string", "pattern": AWS_INSTANCE_PROFILE_PATTERN})] | None
    ) = Field(default=None, description="IAM instance profile (name or ARN) for launched EC2 instances")
    gcp_service_account: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+@[a-z0-9.-]+\.iam\.gserviceaccount\.com$|^default$",
        description="service account email for launched Compute Engine VMs (scope cloud-platform)",
    )
    azure_identity_id: str | None = Field(
        default=None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/"
        r"userAssignedIdentities/[^/]+$",
        description="resource id of a user-assigned managed identity for launched Azure VMs",
    )
    bootstrap_source: Literal["daemon", "url", "index"] = Field(
        default="daemon",
        description="where a launched VM gets carbonshift: daemon (the wheel of the version the daemon "
        "runs, served by `carbonshift serve` to the run's token, sha256-checked), url (a pinned wheel: "
        "bootstrap_wheel_url and bootstrap_wheel_sha256), index (pip from the package index: "
        "bootstrap_package; only when you choose it)",
    )
    bootstrap_wheel_url: str | None = Field(
        default=None,
        validate_default=True,
        description="bootstrap_source url: an https URL of a carbonshift wheel (.whl)",
    )
    bootstrap_wheel_sha256: str | None = Field(
        default=None,
        validate_default=True,
        description="bootstrap_source url: the wheel's sha256 (64 hex digits), checked on the VM",
    )
    bootstrap_package: str | None = Field(
        default=None,
        description="bootstrap_source index: what a launched VM pip-installs; default: carbonshift==<this version>",
    )

    @field_validator("bootstrap_wheel_url", "bootstrap_wheel_sha256")
    @classmethod
    def _pinned_wheel(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("bootstrap_source") != "url":
            return value
        if info.field_name == "bootstrap_wheel_url":
            if not value or not value.startswith("https://") or not urlsplit(value).path.endswith(".whl"):
                raise ValueError("bootstrap_source url needs the https URL of a wheel (ending in .whl)")
        elif not value or not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("bootstrap_source url needs the wheel's sha256: 64 lower-case hex digits")
        return value

    @field_validator("aws_instance_profile")
    @classmethod
    def _instance_profile(cls, value: str | None) -> str | None:
        """The pattern is checked only when a profile is set: compiling it (a Unicode class repeated up
        to 128 times) takes pydantic's regex engine ~50 ms, which every command paid at start-up."""
        if value is not None:
            check_pattern(value, AWS_INSTANCE_PROFILE_PATTERN)
        return value

    @field_validator("images")
    @classmethod
    def _image_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            provider = key.partition(":")[0]
            if provider not in ("aws", "gcp", "azure"):
                raise ValueError(f"key {key!r}: write aws, gcp or azure, optionally with :REGION")
        return value

    def __init__(self, **values: Any) -> None:
        env = environment_values(Settings, os.environ, ENV_PREFIX)
        super().__init__(**deep_update(_FILE_VALUES.get(), deep_update(env, values)))

    def resolved_data_dir(self) -> Path:
        return self.data_dir or Path(platformdirs.user_data_dir("carbonshift"))


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "config file not found") from exc
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(path), f"not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the config file must be a YAML mapping of settings")
    intensity = data.get("intensity")
    if isinstance(intensity, dict) and isinstance(intensity.get("files"), dict):
        # file paths in a config file are relative to that file, not to wherever the command runs
        intensity["files"] = {
            zone: str((path.parent / str(p)).resolve()) if not Path(str(p)).is_absolute() else str(p)
            for zone, p in intensity["files"].items()
        }
    return data


def _describe(errors: list[Any], config_path: Path | None) -> str:
    lines = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        env_name = (
            ENV_PREFIX + "__".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)).upper()
        )
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting"
        secret = any(w in loc.lower() for w in _SECRET_WORDS)
        value = (
            ""
            if secret or "input" not in err or isinstance(err["input"], dict)
            else f" (got {err['input']!r})"
        )
        origin = f"config file {config_path} or " if config_path else ""
        lines.append(f"setting '{loc}' ({origin}environment variable {env_name}): {msg}{value}")
    return "; ".join(lines)


def load_settings(config_path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load and validate settings. The config file is `config_path`, else $CARBONSHIFT_CONFIG, else none."""
    raw_path = config_path if config_path is not None else os.environ.get(CONFIG_ENV) or None
    path = Path(raw_path).expanduser() if raw_path else None
    data = _read_config_file(path) if path else {}
    layer = _FILE_VALUES.set(data)
    try:
        return Settings(**overrides)
    except EnvironmentValueError as exc:
        raise ConfigError("", f"invalid settings: {exc}") from None
    except ValidationError as exc:
        raise ConfigError("", "invalid settings: " + _describe(exc.errors(), path)) from None
    finally:
        _FILE_VALUES.reset(layer)
