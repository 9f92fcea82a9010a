"""The job spec: what a user writes about a job, validated before anything is planned or launched.

Every rejection names the field (``window.deadline``, ``hardware.gpu``) and what is allowed, because a
spec is usually fixed by reading the message, not the docs. Times are timezone-aware and stored in
UTC; a time without an offset is refused rather than guessed. Defaults that depend on the current
time (the window) stay unset in the model and are resolved by :meth:`JobSpec.resolve_window` with an
explicit ``now`` (the CLI's ``--now``), so validating a spec never reads the clock.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from carbonshift.config.document import MAX_DEPTH, HugeNumber, document_problem, parse_int, shown
from carbonshift.config.plain_yaml import NotPlain, Walk, plain_document
from carbonshift.errors import UserInputError
from carbonshift.planner import power_tables
from carbonshift.planner.power_tables import known_gpu_models, no_public_tdp
from carbonshift.timeutil import isoformat_z, parse_datetime, parse_duration

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DEFAULT_WINDOW = timedelta(hours=24)
# Bounds that keep every sum of times and durations (deadline + flex + duration, a 24 h default
# window, a year of cron occurrences) inside what datetime can hold
MAX_DURATION = timedelta(days=366)
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_MIN_CHUNK = timedelta(minutes=30)
DEFAULT_VCPUS = 4
DEFAULT_MEMORY_GB = 16.0
NAME_PATTERN = r"^[a-z0-9-]{1,63}$"
REGION_REF_PATTERN = r"^[a-z0-9-]+:[a-z0-9._-]+$"
PROVIDER_PATTERN = r"^[a-z0-9-]+$"
COUNTRY_PATTERN = r"^(?:[A-Z]{2}|EU)$"


# the power table's row for a GPU name, remembered: a spec looks its GPU up twice, a batch the same few
lookup_gpu = lru_cache(maxsize=1024)(power_tables.lookup_gpu)


def _err(message: str) -> PydanticCustomError:
    # the message travels in ctx so braces in user input are never read as a template
    return PydanticCustomError("value_error", "{message}", {"message": message})


# ---- durations and times ------------------------------------------------------------------------


def format_duration(value: timedelta) -> str:
    """The compact form people write ('1h30m'), so a dumped spec reads like the one loaded."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return _whole_duration(value)
    if isinstance(value, str):
        return _text_duration(value)
    if isinstance(value, int | float):
        raise _err(f"{shown(value)} has no unit; write a duration such as 30m, 4h, 1h30m or PT4H")
    raise _err("expected a duration such as 30m, 4h, 1h30m or PT4H")


@lru_cache(maxsize=4096)
def _text_duration(value: str) -> timedelta:
    """A duration written as text. Remembered (a refusal is not, it is raised again): the specs of a
    batch repeat the same few durations."""
    try:
        td = parse_duration(value)
    except ValueError:
        raise _err(f"not a duration: {shown(value)} (examples: 30m, 4h, 1h30m, PT4H)") from None
    except OverflowError:
        td = timedelta.max
    return _whole_duration(td)


def _whole_duration(td: timedelta) -> timedelta:
    if td > MAX_DURATION:
        raise _err(f"at most {format_duration(MAX_DURATION)} ({MAX_DURATION.days} days)")
    seconds = td.total_seconds()
    if seconds < 0:
        raise _err("must not be negative")
    if seconds != math.floor(seconds):
        raise _err("durations are counted in whole seconds")
    return timedelta(seconds=int(seconds))


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise _err("must be longer than zero")
    return value


def _to_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _err("time has no timezone; add Z for UTC or an offset like +01:00")
        moment = _in_range(value)
    elif isinstance(value, str):
        try:
            moment = parse_datetime(value)
        except OverflowError:  # an offset that moves it past year 1 or 9999
            moment = LATEST_TIME
        except ValueError as exc:
            raise _err(str(exc) if len(value) <= 64 else "not an ISO 8601 time with an offset") from None
    else:
        raise _err("expected an ISO 8601 time with an offset, such as 2026-11-24T18:00Z")
    if not EARLIEST_TIME <= moment < LATEST_TIME:
        raise _err(f"must be between {EARLIEST_TIME.year} and {LATEST_TIME.year - 1} (UTC)")
    return moment


def _in_range(value: datetime) -> datetime:
    """In UTC; a time whose offset moves it past year 1 or 9999 is out of range, not a crash."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return LATEST_TIME


_DURATION_SCHEMA = {
    "type": "string",
    "description": "a duration: 30m, 4h, 1h30m, 2d, 90s, or ISO 8601 (PT4H)",
    "examples": ["30m", "4h", "1h30m", "PT4H"],
}
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_to_utc),
    PlainSerializer(isoformat_z, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with Z or an offset (a time without one is refused)",
            "examples": ["2026-11-24T18:00Z", "2026-11-24T19:00+01:00"],
        }
    ),
]


def _normalised(pattern: str, upper: bool, expected: str) -> BeforeValidator:
    """Case-fold first (people write GCP:US-Central1), then check with a message that shows an
    example rather than a regular expression."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        folded = value.strip().upper() if upper else value.strip().lower()
        if not re.match(pattern, folded):
            raise _err(f"expected {expected}, got {shown(value)}")
        return folded

    return BeforeValidator(check)


RegionRef = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9-]+:[A-Za-z0-9._-]+$",
        description="a cloud region as provider:region, e.g. gcp:us-central1, aws:eu-west-1",
    ),
    _normalised(REGION_REF_PATTERN, False, "provider:region such as gcp:us-central1"),
]
ProviderName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9-]+$", description="aws, gcp, azure, local, ..."),
    _normalised(PROVIDER_PATTERN, False, "a provider name such as aws, gcp, azure or local"),
]
CountryCode = Annotated[
    str,
    Field(pattern=r"^(?:[A-Za-z]{2})$", description="ISO 3166-1 alpha-2 code, or EU for the member states"),
    _normalised(COUNTRY_PATTERN, True, "an ISO 3166-1 alpha-2 country code (DE, FR, US) or EU"),
]


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# ---- the models -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# a container image reference: [registry[:port]/]name[:tag][@sha256:digest], Docker's grammar loosely
_IMAGE_REF = re.compile(
    r"^[a-z0-9][a-z0-9._-]*(?::[0-9]+)?(?:/[a-z0-9._-]+)*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
WORKDIR_SCHEMES = ("s3://", "gs://", "https://")


def _check_image(value: object) -> object:
    if isinstance(value, str) and (len(value) > 255 or not _IMAGE_REF.match(value)):
        raise ValueError(
            "not a container image reference: write [registry/]name[:tag][@sha256:digest], e.g. "
            "ghcr.io/acme/train:1.4 (lower-case name, at most 255 characters)"
        )
    return value


class Workdir(_Strict):
    """Where a cloud run gets its code and data: copied to `path` on the instance before the job starts,
    with the instance's own role or service account (no credentials in the spec)."""

    source: str = Field(
        description="s3://bucket/prefix (aws s3 sync), gs://bucket/prefix (gcloud storage rsync) or an "
        "https:// URL of a .tar.gz archive (no query string: a signed URL is a secret)",
        max_length=2048,
    )
    path: str = Field(default="/work", description="absolute directory on the instance; the job runs there")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.startswith(WORKDIR_SCHEMES) or len(value) <= len("s3://"):
            raise ValueError(f"must start with one of {', '.join(WORKDIR_SCHEMES)} and name a bucket or file")
        if value.startswith("https://") and ("?" in value or "@" in value.split("/", 3)[2]):
            raise ValueError(
                "an https source must carry no credentials (no user@ and no query string, which is where a "
                "signed URL keeps its signature): use s3:// or gs:// with the instance's role instead"
            )
        if any(c in value for c in "\n\r\x00"):
            raise ValueError("must not contain line breaks or NUL characters")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "\n\r\x00") or "/../" in f"{value}/":
            raise ValueError("must be an absolute directory path such as /work (no '..', no line breaks)")
        return value


class Hardware(_Strict):
    """What the job runs on; drives the energy estimate (and later the instance choice)."""

    gpu: str | None = Field(
        default=None,
        description="GPU model (e.g. A100, H100, L4, T4); canonicalised to the power table's name",
    )
    gpus: int = Field(default=0, ge=0, le=4096, description="number of GPUs (default 1 when gpu is set)")
    vcpus: int = Field(default=DEFAULT_VCPUS, ge=1, le=100_000)
    memory_gb: float = Field(default=DEFAULT_MEMORY_GB, ge=0, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _one_gpu_by_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("gpu") is not None and "gpus" not in data:
            return {**data, "gpus": 1}
        return data

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        if value is None:
            return None
        row = lookup_gpu(value)
        if row is None:
            raise _err(
                f"unknown GPU model {shown(value)}; known: {', '.join(known_gpu_models())} "
                "(or give power_watts, a measured draw)"
            )
        return row.model


MAX_HARDWARE_OPTIONS = 16


class HardwareOption(Hardware):
    """An alternative to the spec's own `hardware`: other GPUs that run the same job in
    their own time. Planned with its own duration and energy, only where a region offers it; the
    spec's own `hardware`, `duration` and `power_watts` are the first alternative, and savings are
    measured against them."""

    power_watts: float | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="measured average draw in W on this hardware (the spec's power_watts is not carried over)",
    )
    duration: PositiveDuration | None = Field(
        default=None, description="expected runtime on this hardware (or give speedup)"
    )
    speedup: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="how many times faster than the spec's own hardware: duration = the spec's duration / "
        "speedup, rounded up to a whole second (or give duration)",
    )

    @property
    def hardware(self) -> Hardware:
        """The alternative as plain `Hardware` (what it gives is what it set, for host sizing)."""
        fields = Hardware.model_fields
        return Hardware.model_validate({k: getattr(self, k) for k in self.model_fields_set if k in fields})


class Window(_Strict):
    earliest: UtcDatetime | None = Field(default=None, description="not before this time; default: now")
    deadline: UtcDatetime | None = Field(
        default=None, description="the job must FINISH by this time; default: earliest + 24h"
    )


class Placement(_Strict):
    providers: list[ProviderName] = Field(
        default_factory=list, description="allowed providers; empty: every provider in the catalog"
    )
    regions: list[RegionRef] = Field(default_factory=list, description="allow-list; empty: any region")
    exclude: list[RegionRef] = Field(default_factory=list)
    countries: list[CountryCode] = Field(
        default_factory=list, description="data residency: ISO country codes, EU for the member states"
    )

    _dedupe_lists = field_validator("providers", "regions", "exclude", "countries")(_dedupe)


_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(
                ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            )
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)
_CRON_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


_CRON_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)  # a fixed start: validating never reads the clock
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def check_cron(expr: str) -> str:
    """Standard five-field cron, checked here so a typo is caught when the spec is loaded, not at the
    first occurrence: first our own reading (messages that name the field), then APScheduler's
    CronTrigger itself, the trigger the daemon runs on, so nothing it would refuse gets stored (a step
    longer than its range, `*/100`), and finally whether the expression ever fires (`0 0 31 2 *`)."""
    parts = expr.split()
    if len(parts) != len(_CRON_FIELDS):
        raise ValueError("five fields (minute hour day-of-month month day-of-week), e.g. '0 22 * * *'")
    for text, (label, lo, hi, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            match = _CRON_ITEM.match(item)
            if match is None:
                raise ValueError(f"{label} field {shown(text)}: use *, n, a-b, */n, a-b/n or lists of them")
            base, step = match.group(1), match.group(2)
            if step is not None and int(step) == 0:
                raise ValueError(f"{label} field {shown(text)}: a step of 0 never advances")
            if base == "*":
                continue
            bounds = []
            for token in base.split("-"):
                value = int(token) if token.isdigit() else names.get(token)
                if value is None or not lo <= value <= hi:
                    raise ValueError(f"{label} field {shown(text)}: {shown(token)} is not in {lo}..{hi}")
                bounds.append(value)
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"{label} field {shown(text)}: range runs backwards")
    normalised = " ".join(parts)
    trigger = apscheduler_cron(normalised, "UTC")
    if trigger.get_next_fire_time(None, _CRON_REFERENCE) is None:
        raise ValueError(f"{shown(normalised)} never fires (no such date)")
    return normalised


def cron_day_names(field: str) -> str:
    """A standard cron day-of-week field (0 and 7 = Sunday) as day names ('*' stays '*'): APScheduler 3
    numbers weekdays from Monday even in `from_crontab`, so `1-5` given to it as is would silently
    mean Tuesday to Saturday."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        else:
            ends = [int(x) if x.isdigit() else _DAY_NAMES.index(x[:3]) for x in base.split("-")]
            lo, hi = ends[0], ends[-1] if len(ends) > 1 else (6 if step_text else ends[0])
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def apscheduler_cron(expr: str, timezone: str) -> CronTrigger:
    """APScheduler's trigger for a five-field cron expression that passed our own reading; ValueError
    (with a message naming the field) for what APScheduler refuses."""
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, weekday = expr.split()
    day_names = cron_day_names(weekday)
    if not day_names:
        raise ValueError(f"day of week field {shown(weekday)} selects no day")
    fields = {"minute": minute, "hour": hour, "day": day, "month": month}
    for name, text in fields.items():
        try:
            CronTrigger(**{name: text}, timezone="UTC")
        except ValueError as exc:
            label = next(label for label, *_ in _CRON_FIELDS if label.startswith(name[:3]))
            raise ValueError(f"{label} field {shown(text)}: {_apscheduler_reason(exc)}") from None
    return CronTrigger(**fields, day_of_week=day_names, timezone=timezone)


def _apscheduler_reason(exc: ValueError) -> str:
    """APScheduler's message without its own quoting of the expression ('Error validating ...: ')."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


class Schedule(_Strict):
    """A recurring job (issue 5): each occurrence is planned in its own window, from the nominal cron
    time to nominal + flex + duration."""

    cron: str = Field(description="five-field cron, nominal start in `timezone`, e.g. '0 22 * * *'")
    timezone: str = Field(default="UTC", description="IANA time zone of the cron expression")
    flex: Duration = Field(default=timedelta(0), description="how much later than nominal a run may start")
    overlap: Literal["skip", "queue"] = Field(
        default="skip", description="when the previous run is still going at the next occurrence"
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            return check_cron(value)
        except ValueError as exc:
            raise _err(str(exc)) from None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _err(
                f"unknown time zone {shown(value)}; use an IANA name such as Europe/Berlin or UTC"
            ) from None
        return value


def _check_name(value: Any) -> Any:
    if isinstance(value, str) and not re.match(NAME_PATTERN, value):
        raise _err(f"must be 1 to 63 characters from a-z, 0-9 and '-' (got {shown(value)})")
    return value


def _check_command(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise _err("an empty command runs nothing")
        return value
    if isinstance(value, list):
        if not value:
            raise _err("an empty argv list runs nothing")
        for i, arg in enumerate(value):
            if not isinstance(arg, str):
                raise _err(f"argument {i} is {type(arg).__name__}, not a string (quote it in YAML)")
        if not value[0].strip():
            raise _err("the program (first argument) is empty")
        return value
    raise _err("expected an argv list such as [python, train.py] or a command string for the shell")


ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_MAX_BYTES = 8192  # all of NAME=value together: cloud user data is small (EC2: 16 KiB)


def _check_env(value: Any) -> Any:
    """The job's own environment variables: names a shell can export, string values without NUL,
    none of carbonshift's own (CARBONSHIFT_*: the run's variables and the daemon's settings)."""
    if not isinstance(value, Mapping):
        raise _err("expected a mapping of variable names to strings, e.g. {MODEL_DIR: /data}")
    size = 0
    for name, text in value.items():
        if not isinstance(name, str) or not re.match(ENV_NAME_PATTERN, name):
            raise _err(
                f"{shown(name)} is not a variable name: letters, digits and '_', not starting with a digit"
            )
        if name.upper().startswith("CARBONSHIFT_"):
            raise _err(f"{name}: names starting with CARBONSHIFT_ are carbonshift's own")
        if not isinstance(text, str):
            raise _err(f"{name}: the value is {type(text).__name__}, not a string (quote it in YAML)")
        if "\x00" in text:
            raise _err(f"{name}: the value contains a NUL character, which no environment can hold")
        size += len(name.encode("utf-8")) + 1 + len(text.encode("utf-8"))
    if size > ENV_MAX_BYTES:
        raise _err(f"{size} bytes in all; at most {ENV_MAX_BYTES} (put larger data in a file)")
    return dict(value)


FUNCTIONAL_UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$"
MAX_UNIT_COUNT = 1e15


def _check_unit_name(value: Any) -> Any:
    if isinstance(value, str) and not re.match(FUNCTIONAL_UNIT_PATTERN, value):
        raise _err(
            "must be 1 to 63 characters from letters, digits, ' ', '_', '.' and '-', starting with a "
            f"letter or digit (e.g. epoch, request); got {shown(value)}"
        )
    return value


def _check_unit_count(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | HugeNumber):
        raise _err(f"must be a positive number such as 90, got {shown(value)}")
    if isinstance(value, HugeNumber) or not math.isfinite(value) or not 0 < value <= MAX_UNIT_COUNT:
        raise _err(f"must be a positive number of at most {MAX_UNIT_COUNT:g}, got {shown(value)}")
    return value


LABEL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
LABEL_KEYS = ("organisation", "team", "project")


def check_label(value: Any) -> Any:
    """An ownership label: like a name, but starting with a letter or digit."""
    if isinstance(value, str) and not re.match(LABEL_PATTERN, value):
        raise _err("must be 1 to 63 characters from a-z, 0-9 and '-', starting with a letter or digit")
    return value


LabelValue = Annotated[
    str,
    Field(pattern=LABEL_PATTERN, description="a-z, 0-9 and '-', 1 to 63 characters, not starting with '-'"),
    BeforeValidator(check_label),
]


class Labels(_Strict):
    """Who owns a job, for the ledger's totals; each missing label takes the config's `labels:` value."""

    organisation: LabelValue | None = None
    team: LabelValue | None = None
    project: LabelValue | None = None

    def merged(self, defaults: Labels | None) -> Labels:
        """These labels, with each one not given taken from `defaults`."""
        if defaults is None:
            return self
        return Labels(**{k: getattr(self, k) or getattr(defaults, k) for k in LABEL_KEYS})


class FunctionalUnit(_Strict):
    """SCI's R: what one run produces (`{name: epoch, count: 90}`), so a footprint can be given per unit
    of work (ISO/IEC 21031:2024, the Green Software Foundation's SCI) as well as per run."""

    name: Annotated[
        str,
        Field(
            pattern=FUNCTIONAL_UNIT_PATTERN,
            description="what is counted, e.g. epoch, request, image (letters, digits, ' ', '_', '.', '-', "
            "1 to 63 characters)",
        ),
        BeforeValidator(_check_unit_name),
    ]
    count: Annotated[
        int | float,
        Field(description="how many of them one run produces (a positive number)"),
        BeforeValidator(_check_unit_count),
    ]


def parse_functional_unit(text: str, *, field: str = "--functional-unit") -> FunctionalUnit:
    """`epoch=90` (the command line's form) as a FunctionalUnit; UserInputError naming `field` otherwise."""
    name, eq, count_text = text.partition("=")
    if not eq:
        raise UserInputError(field, f"write NAME=COUNT, e.g. epoch=90; got {shown(text)}")
    try:
        count: int | float = (
            int(count_text) if re.fullmatch(r"[0-9]+", count_text.strip()) else float(count_text)
        )
    except ValueError:
        raise UserInputError(field, f"COUNT must be a positive number, got {shown(count_text)}") from None
    try:
        return FunctionalUnit(name=name.strip(), count=count)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise UserInputError(
            f"{field} {error['loc'][0]}", str(error["msg"]).removeprefix("Value error, ")
        ) from None


_DOCUMENT_CHECKED = "document checked"  # validation context: parse_jobspec ran document_problem


class JobSpec(_Strict):
    """A job as its owner describes it. Immutable once validated."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="carbonshift job spec",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: Annotated[
        str,
        Field(pattern=NAME_PATTERN, description="job name: a-z, 0-9 and '-', 1 to 63 characters"),
        BeforeValidator(_check_name),
    ]
    command: Annotated[
        list[str] | str,
        Field(min_length=1, description="argv list (run as is) or a string (run by the shell)"),
        BeforeValidator(_check_command),
    ]
    duration: PositiveDuration = Field(description="expected runtime")
    hardware: Hardware = Field(default_factory=Hardware)
    power_watts: float | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="measured average draw in W; overrides the hardware model",
    )
    window: Window = Field(default_factory=Window)
    interruptible: bool = Field(default=False, description="true: may be split into several runs")
    min_chunk: Duration = Field(
        default=DEFAULT_MIN_CHUNK,
        description="interruptible jobs: shortest run worth starting (0s: no minimum)",
    )
    placement: Placement = Field(default_factory=Placement)
    baseline: RegionRef | None = Field(
        default=None, description="where it would run today; savings are measured against it"
    )
    schedule: Schedule | None = Field(default=None, description="recurring runs (cron, timezone, flex)")
    env: Annotated[
        dict[str, str],
        Field(
            default_factory=dict,
            description="environment variables for the job (not for secrets: stored with the job)",
        ),
        BeforeValidator(_check_env),
    ]
    labels: Labels = Field(
        default_factory=Labels,
        description="ownership for the ledger: organisation, team, project (defaults: the config's labels)",
    )
    image: Annotated[
        str | None,
        Field(
            default=None,
            description="cloud and Kubernetes runs: run the command in this container image (docker on a VM, "
            "the Job's container on Kubernetes), under the tracker",
        ),
        BeforeValidator(_check_image),
    ]
    workdir: Workdir | None = Field(
        default=None, description="cloud runs: copy the job's files here from object storage before it starts"
    )
    functional_unit: FunctionalUnit | None = Field(
        default=None,
        description="SCI's functional unit: what one run produces ({name: epoch, count: 90}); footprints "
        "are then also given per unit",
    )
    hardware_options: list[HardwareOption] = Field(
        default_factory=list,
        max_length=MAX_HARDWARE_OPTIONS,
        description="alternatives to `hardware` (each with its own duration or speedup), ranked with it by "
        "region, start time and hardware together",
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any, info: ValidationInfo) -> Any:
        """Text that cannot be served back (a lone surrogate), deep nesting or a too-long number are
        refused however the spec is made: by the loaders, or as JobSpec(...) from Python. (`parse_jobspec`
        has walked the document already, and says so in the context: a batch reads 10,000 specs.)"""
        if info.context is not None and info.context.get(_DOCUMENT_CHECKED):
            return data
        problem = document_problem(data) if isinstance(data, Mapping) else None
        if problem is not None:
            raise _field_error(*problem) if problem[0] else _err(problem[1])
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        gpu = lookup_gpu(self.hardware.gpu) if self.hardware.gpu is not None else None
        if gpu is not None and gpu.tdp_watts is None and self.power_watts is None:
            raise _field_error("hardware.gpu", no_public_tdp(gpu))
        for i, option in enumerate(self.hardware_options):
            problem = _option_problem(option, self.duration)
            if problem is not None:
                raise _field_error(f"hardware_options[{i}].{problem[0]}", problem[1])
        w = self.window
        if w.earliest is not None and w.deadline is not None and w.deadline < w.earliest + self.duration:
            raise _field_error("window.deadline", _deadline_problem(w.earliest, self.duration, w.deadline))
        if self.schedule is not None and (w.earliest is not None or w.deadline is not None):
            raise _field_error(
                "window",
                "not used with schedule: each occurrence runs between its nominal time and "
                "nominal + flex + duration",
            )
        return self

    # ---- derived values ----------------------------------------------------------------------
    @property
    def duration_s(self) -> int:
        return int(self.duration.total_seconds())

    @property
    def min_chunk_s(self) -> int:
        """0 for contiguous jobs: only interruptible jobs are split."""
        return int(self.min_chunk.total_seconds()) if self.interruptible else 0

    def option_duration(self, option: HardwareOption) -> timedelta:
        """An alternative's expected runtime: its own `duration`, or the spec's divided by `speedup`
        (rounded up to the second: a run is never planned shorter than it is expected to take)."""
        if option.duration is not None:
            return option.duration
        speedup = option.speedup or 1.0
        return timedelta(seconds=max(1, math.ceil(self.duration_s / speedup)))

    def resolve_window(self, now: datetime) -> tuple[datetime, datetime]:
        """The window to plan in, given the current time: (earliest, deadline), whole seconds, UTC.

        An earliest time already past becomes `now` (nothing starts in the past); a missing deadline is
        the spec's earliest (or now) + 24 h. Raises UserInputError("window.deadline", ...) when the job
        can no longer finish in time.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        now = now.astimezone(UTC)
        anchor = self.window.earliest or now
        earliest = _ceil_second(max(anchor, now))
        deadline = _floor_second(self.window.deadline or anchor + DEFAULT_WINDOW)
        if deadline < earliest + self.duration:
            start = "now" if earliest > anchor or self.window.earliest is None else "earliest"
            raise UserInputError(
                "window.deadline", _deadline_problem(earliest, self.duration, deadline, start)
            )
        return earliest, deadline


def _option_problem(option: HardwareOption, duration: timedelta) -> tuple[str, str] | None:
    """(field, problem) for a hardware alternative that cannot be planned, else None."""
    if (option.duration is None) == (option.speedup is None):
        both = "not both" if option.duration is not None else "one of them"
        return "speedup", f"give duration (its own runtime) or speedup (relative to the spec's), {both}"
    if option.speedup is not None and duration / option.speedup > MAX_DURATION:
        return "speedup", f"makes the run longer than {format_duration(MAX_DURATION)}"
    gpu = lookup_gpu(option.gpu) if option.gpu is not None else None
    if gpu is not None and gpu.tdp_watts is None and option.power_watts is None:
        return "gpu", no_public_tdp(gpu)
    return None


def _ceil_second(t: datetime) -> datetime:
    return t if t.microsecond == 0 else t.replace(microsecond=0) + timedelta(seconds=1)


def _floor_second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _deadline_problem(
    earliest: datetime, duration: timedelta, deadline: datetime, start: str = "earliest"
) -> str:
    return (
        f"must be at least {start} + duration ({isoformat_z(earliest)} + {format_duration(duration)} = "
        f"{isoformat_z(earliest + duration)}), got {isoformat_z(deadline)}"
    )


def _field_error(field: str, problem: str) -> PydanticCustomError:
    """A cross-field error that still names one field: the loader reads `field` from ctx."""
    return PydanticCustomError("field_error", "{field}: {problem}", {"field": field, "problem": problem})


# ---- loading, errors, schema ------------------------------------------------------------------------


class JobSpecError(UserInputError):
    """A spec that failed validation; `problems` lists (field, problem) for APIs that answer 422."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(source, "; ".join(f"{f}: {p}" if f else p for f, p in problems))


_NO_TIMESTAMPS = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _NoTimestampLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: every time goes through parse_datetime, which refuses a time
    without an offset instead of letting YAML turn it into a naive datetime (or a date)."""

    yaml_implicit_resolvers = _NO_TIMESTAMPS


# libyaml's parser under the same resolvers and constructors: the same documents, about 7x faster to
# read (a batch of 10,000 specs spent most of its time in the pure-Python scanner). A document it
# refuses is read again by the pure-Python loader, so every error (and what libyaml alone refuses: a
# \ud800 escape, which the document check then names by field) reads as before.
_CBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Answers of PyYAML's resolver and scalar constructors for plain scalars, by their text: they depend on
# nothing else, and the specs of a batch repeat the same keys and small values. Cleared when full.
_REMEMBERED_MAX = 4096
_plain_tags: dict[str, str] = {}
_plain_scalars: dict[tuple[str, str], Any] = {}
_DEFAULT_TAGS: dict[type[yaml.Node], str] = {
    yaml.ScalarNode: _CBase.DEFAULT_SCALAR_TAG,
    yaml.SequenceNode: _CBase.DEFAULT_SEQUENCE_TAG,
    yaml.MappingNode: _CBase.DEFAULT_MAPPING_TAG,
}


class _FastNoTimestampLoader(_CBase):  # type: ignore[valid-type,misc]
    yaml_implicit_resolvers = _NO_TIMESTAMPS
    walk: Walk | None = None  # set when the document was plain: what building it met
    anchors_possible = True  # False when the text has no `&`: no alias can name a node twice

    def construct_document(self, node: yaml.Node) -> Any:
        """A plain document (a spec always is) built directly (config/plain_yaml.py says why), any
        other by PyYAML's constructor."""
        walk = Walk()
        try:
            data = plain_document(node, self._scalar, walk, shared=self.anchors_possible)
        except NotPlain:
            return super().construct_document(node)
        self.walk = walk
        return data

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        """PyYAML's resolver (libyaml asks it for every node), remembered for plain scalars: with no
        path resolvers, as here, its answer for one depends on the scalar's text alone."""
        if self.yaml_path_resolvers:
            return str(super().resolve(kind, value, implicit))
        if kind is not yaml.ScalarNode or not implicit[0]:
            return _DEFAULT_TAGS[kind]  # what PyYAML's resolver answers for them without path resolvers
        tag = _plain_tags.get(value)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_plain_tags) >= _REMEMBERED_MAX:
                _plain_tags.clear()
            _plain_tags[value] = tag
        return tag

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        """An int, float, bool or null scalar, built by the loader's constructor, remembered by text
        (its value depends on nothing else; a HugeNumber, the one mutable result, is not kept)."""
        key = (node.tag, node.value)
        if key in _plain_scalars:
            return _plain_scalars[key]
        out = self.yaml_constructors[node.tag](self, node)
        if not isinstance(out, HugeNumber):
            if len(_plain_scalars) >= _REMEMBERED_MAX:
                _plain_scalars.clear()
            _plain_scalars[key] = out
        return out


def _yaml_int(loader: yaml.SafeLoader, node: yaml.Node) -> int | HugeNumber:
    """YAML's own int reading, with a HugeNumber instead of ValueError past Python's digit limit."""
    text = str(node.value).replace("_", "")
    if len(text.lstrip("+-")) > 64 and text.lstrip("+-").isdigit():
        return parse_int(text)
    value: int = yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]
    return value


for _loader in (_NoTimestampLoader, _FastNoTimestampLoader):
    _loader.add_constructor("tag:yaml.org,2002:int", _yaml_int)


def _load_yaml(text: str) -> tuple[Any, bool]:
    """The document's value, and whether the document check is sure to find nothing in it (Walk.clean:
    libyaml read it, and building it met nothing the check looks for)."""
    try:
        read = _read_with_libyaml(text) if _CBase is not yaml.SafeLoader else None
        return read if read is not None else (yaml.load(text, Loader=_NoTimestampLoader), False)
    except (ValueError, LookupError, AttributeError, TypeError):
        # PyYAML's constructors fail unwrapped on an explicit tag whose value is not of its type
        raise yaml.YAMLError(
            "a value tagged !!int, !!float, !!bool or !!timestamp is not of that type"
        ) from None


def _read_with_libyaml(text: str) -> tuple[Any, bool] | None:
    """As `yaml.load(text, Loader=_FastNoTimestampLoader)`, with what the walk met; None when libyaml
    refuses the text (then the pure-Python loader reads it, and gives its own message)."""
    try:
        loader = _FastNoTimestampLoader(text)
    except UnicodeEncodeError:  # libyaml takes UTF-8: a lone surrogate cannot be encoded
        return None
    loader.anchors_possible = "&" in text
    try:
        data = loader.get_single_data()
    except (yaml.YAMLError, UnicodeEncodeError):
        return None
    finally:
        loader.dispose()
    return data, loader.walk is not None and loader.walk.clean()


MAX_SPEC_BYTES = (
    1_048_576  # the API's default max_body_bytes: a file the daemon would refuse is refused here too
)
RELATIVE_TIME = re.compile(r"^\s*(?:now\s*)?\+\s*(\S.*)$", re.IGNORECASE)


def resolve_relative_window(data: Mapping[str, Any], now: datetime | None, source: str) -> dict[str, Any]:
    """`window.earliest` / `window.deadline` written as `now` or `+6h` (`now+6h`), made absolute from
    `now`, the time the spec is planned or submitted; both count from now. Resolved once, here, so
    a stored job keeps the times it was submitted with and every re-plan reads the same window."""
    out = dict(data)
    window = out.get("window")
    if not isinstance(window, Mapping):
        return out
    resolved = dict(window)
    for key in ("earliest", "deadline"):
        value = resolved.get(key)
        if not isinstance(value, str):
            continue
        relative = RELATIVE_TIME.match(value)
        if value.strip().lower() != "now" and relative is None:
            continue
        if now is None:
            raise JobSpecError(
                source, [(f"window.{key}", f"{value!r} is relative, and this spec has no time to count from")]
            )
        if relative is None:
            at = now
        else:
            try:
                at = now + parse_duration(relative.group(1))
            except ValueError:
                raise JobSpecError(
                    source,
                    [
                        (
                            f"window.{key}",
                            f"not a time: {value[:80]!r} (examples: now, +6h, 2026-11-24T18:00Z)",
                        )
                    ],
                ) from None
        resolved[key] = isoformat_z(at.astimezone(UTC))
    out["window"] = resolved
    return out


def parse_jobspec(data: Any, *, source: str = "spec", now: datetime | None = None) -> JobSpec:
    """Validate already-parsed data (a mapping from YAML, JSON or an API body). `now` resolves a
    relative window (`now`, `+6h`); without it such a window is an error naming the field."""
    return _parse(data, source=source, now=now, checked=False)


def _parse(data: Any, *, source: str, now: datetime | None, checked: bool) -> JobSpec:
    """parse_jobspec; `checked`: the reader already knows the document check finds nothing."""
    if not isinstance(data, Mapping):
        raise JobSpecError(source, [("", "a job spec is a mapping (name, command, duration, ...)")])
    problem = None if checked else document_problem(data)
    if problem is not None:
        raise JobSpecError(source, [problem])
    data = resolve_relative_window(data, now, source)
    try:
        return JobSpec.model_validate(dict(data), context={_DOCUMENT_CHECKED: True})
    except ValidationError as exc:
        raise JobSpecError(source, _problems(exc)) from None


_OPENERS = re.compile(r"(?:[\[{]\s*){" + str(MAX_DEPTH + 1) + "}")


def loads_jobspec(
    text: str, *, source: str = "spec", fmt: Literal["yaml", "json"] = "yaml", now: datetime | None = None
) -> JobSpec:
    # refused before a parser recurses into it (a second or two); it takes more brackets than that
    if text.count("[") + text.count("{") > MAX_DEPTH and _OPENERS.search(text) is not None:
        raise JobSpecError(source, [("", f"nested more than {MAX_DEPTH} levels deep")])
    checked = False
    try:
        if fmt == "json":
            data = json.loads(text, parse_int=parse_int)
        else:
            data, checked = _load_yaml(text)
    except RecursionError:
        raise JobSpecError(source, [("", "nested too deeply (a job spec is a few levels deep)")]) from None
    except json.JSONDecodeError as exc:
        raise JobSpecError(source, [("", f"not valid JSON: {exc.msg} at line {exc.lineno}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise JobSpecError(source, [("", f"not valid YAML{where}: {getattr(exc, 'problem', exc)}")]) from None
    return _parse(data, source=source, now=now, checked=checked)


def load_jobspec(path: str | Path, *, now: datetime | None = None) -> JobSpec:
    """Load a YAML or JSON spec file. With `now`, also check that the window can still be met, so the
    message names the file."""
    p = path if isinstance(path, Path) else Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise UserInputError(
                str(p), f"a job spec is at most {MAX_SPEC_BYTES:,} bytes (as the API takes), this is {size:,}"
            )
        text = _read_text(p)
    except OSError as exc:
        raise UserInputError(str(p), f"cannot read the job spec: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserInputError(str(p), "not UTF-8 text") from None
    spec = loads_jobspec(text, source=str(p), fmt="json" if p.suffix.lower() == ".json" else "yaml", now=now)
    if now is not None:
        try:
            spec.resolve_window(now)
        except UserInputError as exc:
            raise JobSpecError(str(p), [(exc.where, exc.problem)]) from None
    return spec


def _read_text(path: Path) -> str:
    """`path.read_text(encoding="utf-8")` without the text layer (a third of its time for a spec): the
    bytes decoded, and line ends translated as its universal newlines translate them."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def jobspec_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the spec as written, for `carbonshift schema` and editors."""
    return JobSpec.model_json_schema(mode="validation")


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        kind = error["type"]
        if kind == "field_error":
            out.append((str(ctx["field"]), str(ctx["problem"])))
            continue
        field = _loc_text(loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = _unknown_key(loc)
        elif kind == "missing":
            message = "required"
        out.append((field, message))
    return out


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] | None = JobSpec
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            model = None
            break
        model = _model_in(model.model_fields[part].annotation)
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}allowed: {', '.join(allowed)})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
