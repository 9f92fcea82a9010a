"""The script a launched instance runs at first boot (EC2 user-data, Compute Engine startup-script,
Azure custom data): install carbonshift, run the job's command under the tracker, send the report
back, power off.

It is a plain POSIX shell script on purpose: a user can read exactly what will run (`carbonshift launch
--dry-run` prints it). Every value that comes from a spec or a request is a single-quoted shell word
(`shlex.quote`), assigned once at the top or placed as one argument, so no spec content can break out
into the script: an argv list is quoted word by word, a string command is ONE argument to `sh -c`.
The only secret it ever holds is the run's own report token, which the scheduler mints per run and
which allows nothing but posting that run's report; no cloud credential or API token goes in.

The command runs under `timeout` at the deadline plus the watchdog margin, so the tracker still writes
a report for a job that overran; a guard in the background powers the machine off a little later in
any case (a hung install, a scheduler that is gone). The exit code is printed to the console as
`carbonshift-exit-code: N`, which the adapters read back where the cloud keeps a console log.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from carbonshift import __version__
from carbonshift.errors import UserInputError
from carbonshift.providers.base import LaunchRequest, PackageSource

if TYPE_CHECKING:
    from carbonshift.config import Settings

DEFAULT_PACKAGE = f"carbonshift=={__version__}"
STATE_DIR = "/var/lib/carbonshift"
REPORT_PATH = f"{STATE_DIR}/report.json"
EXIT_MARKER = "carbonshift-exit-code:"
REPORT_PATH_TEMPLATE = "/api/v1/runs/{run_id}/report"
DEFAULT_MARGIN = timedelta(minutes=15)  # the watchdog's: a run may overrun its deadline by this much
GUARD_EXTRA = timedelta(minutes=10)  # after the job's timeout, time to send the report and power off
TOKEN_PLACEHOLDER = "<per-run report token>"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def report_url_for(base_url: str, run_id: str) -> str:
    """The URL a run posts its report to: the scheduler API's base URL plus
    /api/v1/runs/{run_id}/report (the run id percent-encoded)."""
    return base_url.rstrip("/") + REPORT_PATH_TEMPLATE.format(run_id=quote(run_id, safe=""))


def command_words(command: list[str] | str) -> str:
    """The job's command as shell words: each argv element single-quoted, or a string command as ONE
    quoted argument to `sh -c` (the user asked for a shell; it gets one, inside its own quotes)."""
    parts = command if isinstance(command, list) else [command]
    for part in parts:
        if "\x00" in part:
            raise UserInputError("command", "contains a NUL character, which no shell can pass on")
    if isinstance(command, str):
        return "sh -c " + shlex.quote(command)
    return " ".join(shlex.quote(arg) for arg in command)


def env_words(env: Mapping[str, str]) -> str:
    """The spec's environment as `env` arguments for the job's line: one `NAME=value` shell word per
    line (single-quoted where needed), or nothing when there is none. Passed to the job only, so the
    script's own variables (REPORT_URL, ...) and the install steps are not affected."""
    words = []
    for name, value in env.items():
        if not _ENV_NAME.match(name) or "\x00" in value:
            raise UserInputError("env", f"{name!r}: not a variable name, or a value with a NUL character")
        words.append(f"  {shlex.quote(f'{name}={value}')} \\\n")
    return "env \\\n" + "".join(words) + "  " if words else ""


def job_words(request: LaunchRequest, env: Mapping[str, str]) -> str:
    """The job as shell words: its command, or with `image:` a `docker run` of it in that image.

    In a container the job sees the spec's env (`-e NAME` passes each on from `env` on the same line,
    so every value is quoted once), the workdir mounted at the same path and set as its working
    directory, every GPU of the VM, and the host's network (the instance exists for this one job)."""
    command = command_words(request.spec.command)
    image = request.spec.image
    if not image:
        return command
    words = [
        "docker",
        "run",
        "--rm",
        "--network",
        "host",
        "--name",
        shlex.quote(f"carbonshift-{request.run_id}"),
    ]
    if request.spec.hardware.gpus:
        words += ["--gpus", "all"]
    for name in env:
        words += ["-e", shlex.quote(name)]
    workdir = request.spec.workdir
    if workdir is not None:
        words += ["-v", shlex.quote(f"{workdir.path}:{workdir.path}"), "-w", shlex.quote(workdir.path)]
    return " ".join([*words, shlex.quote(image), command])


def render_bootstrap(
    request: LaunchRequest,
    provider: str,
    *,
    package: PackageSource,
    margin: timedelta = DEFAULT_MARGIN,
    instance_type: str | None = None,
) -> str:
    """The first-boot script for `request` on `provider` (its region is passed to the tracker as
    provider:region, so the report is in that region's grid intensity).

    The script depends on the request alone, never on the time it is made: the job's time limit is
    worked out on the instance from the deadline (epoch seconds), so a relaunch of the run sends the
    very same script, which a provider deduplicating by the run's idempotency key (EC2's ClientToken)
    requires, and an instance that boots late gets the time actually left."""
    if request.report_url is not None and not request.report_url.startswith(("https://", "http://")):
        raise UserInputError("report_url", f"must be an http(s) URL, got {request.report_url!r}")
    deadline_s = int((request.deadline + margin).timestamp())
    workdir = request.spec.workdir
    env = {**request.spec.env, **request.env}  # request.env: a chunk's index and count
    guard_extra = int(GUARD_EXTRA.total_seconds())
    q = shlex.quote
    values = {
        "RUN_ID": request.run_id,
        "JOB": request.spec.name,
        "REGION": f"{provider}:{request.region}",
        "PACKAGE": package.requirement or "",
        "WHEEL_URL": package.wheel_url or "",
        "WHEEL_FILE": package.wheel_file or "",
        "WHEEL_SHA256": package.sha256 or "",
        "WHEEL_AUTH": "1" if package.send_token else "",
        "REPORT_URL": request.report_url or "",
        "REPORT_TOKEN": request.report_token or "",
        "WORKDIR_SOURCE": workdir.source if workdir is not None else "",
        "WORKDIR": workdir.path if workdir is not None else "",
        "IMAGE": request.spec.image or "",
        # what the tracker charges embodied carbon for (the VM's type; it runs with --region, so it
        # does not read the cloud's metadata), and the spec's functional unit for the SCI score
        "INSTANCE_TYPE": instance_type or "",
        "FUNCTIONAL_UNIT": (
            f"{request.spec.functional_unit.name}={request.spec.functional_unit.count:g}"
            if request.spec.functional_unit is not None
            else ""
        ),
    }
    assignments = "\n".join(f"{name}={q(value)}" for name, value in values.items())
    return _TEMPLATE.format(
        version=__version__,
        assignments=assignments,
        deadline_s=deadline_s,
        guard_extra=guard_extra,
        state_dir=STATE_DIR,
        marker=EXIT_MARKER,
        command=job_words(request, env),
        # a container's processes are not the tracker's children: measure the whole (dedicated) machine
        env=env_words({**env, "CARBONSHIFT_TRACKER__ATTRIBUTION": "machine"} if request.spec.image else env),
    )


def package_source(settings: Settings, run_id: str) -> PackageSource:
    """What the settings say a launched instance installs (see `bootstrap_source`)."""
    if settings.bootstrap_source == "index":
        return PackageSource(requirement=settings.bootstrap_package or DEFAULT_PACKAGE)
    if settings.bootstrap_source == "url":
        url = str(settings.bootstrap_wheel_url)
        return PackageSource(
            wheel_url=url,
            sha256=settings.bootstrap_wheel_sha256,
            wheel_file=urlsplit(url).path.rsplit("/", 1)[-1],
        )
    template = settings.scheduler.report_url
    if not template or not template.endswith("{run_id}/report"):
        raise UserInputError(
            "bootstrap_source",
            "'daemon' (the default) installs the wheel `carbonshift serve` serves to each run, so it needs "
            "the daemon (scheduler.report_url ending in /api/v1/runs/{run_id}/report). To launch without "
            "it, set bootstrap_source: url with bootstrap_wheel_url and bootstrap_wheel_sha256 (a wheel you "
            "host), or bootstrap_source: index to pip-install bootstrap_package from the package index",
        )
    from carbonshift.providers.selfwheel import own_wheel

    wheel = own_wheel(settings.resolved_data_dir() / "wheels")
    base = template.removesuffix("/report").replace("{run_id}", quote(run_id, safe=""))
    return PackageSource(
        wheel_url=f"{base}/wheel/{wheel.filename}",
        sha256=wheel.sha256,
        wheel_file=wheel.filename,
        send_token=True,
    )


def redact(script: str, token: str | None) -> str:
    """The script as it may be shown (dry-run, logs): the per-run token replaced."""
    if not token:
        return script
    return script.replace(shlex.quote(token), shlex.quote(TOKEN_PLACEHOLDER)).replace(
        token, TOKEN_PLACEHOLDER
    )


# Doubled braces are literal shell braces (str.format). Keep this readable: users are meant to read it.
_TEMPLATE = """\
#!/bin/sh
# carbonshift {version} bootstrap: install carbonshift, run the job under the tracker,
# send the report, power off. Values below are single-quoted shell words; the job's
# command is the one line after `-- ` further down, quoted the same way.
set -u

{assignments}
DEADLINE_S={deadline_s}  # the run's deadline plus the watchdog margin, in epoch seconds
JOB_TIMEOUT_S=$((DEADLINE_S - $(date +%s)))
[ "$JOB_TIMEOUT_S" -ge 60 ] || JOB_TIMEOUT_S=60
GUARD_S=$((JOB_TIMEOUT_S + {guard_extra}))
STATE_DIR="${{CARBONSHIFT_STATE_DIR:-{state_dir}}}"
REPORT="$STATE_DIR/report.json"

log() {{ printf 'carbonshift-bootstrap: %s\\n' "$*"; }}

finish() {{
  log "powering off"
  kill "$GUARD_PID" 2>/dev/null
  sync
  poweroff || shutdown -h now
  exit 0
}}

umask 077
mkdir -p "$STATE_DIR"

# Guard: whatever happens below, this machine does not outlive the run's deadline by much.
( sleep "$GUARD_S" && poweroff ) >/dev/null 2>&1 &
GUARD_PID=$!

log "run $RUN_ID, job $JOB, region $REGION"

# 1. carbonshift itself: already on the image, or pip-installed into its own venv.
if command -v carbonshift >/dev/null 2>&1; then
  CARBONSHIFT=$(command -v carbonshift)
else
  VENV="${{CARBONSHIFT_VENV:-/opt/carbonshift}}"
  INSTALL="$PACKAGE"
  if [ -n "$WHEEL_URL" ]; then
    # a wheel by URL, installed only if its sha256 is the one this script was made with
    INSTALL="$STATE_DIR/$WHEEL_FILE"
    log "downloading $WHEEL_URL"
    if [ -n "$WHEEL_AUTH" ]; then
      printf 'Authorization: Bearer %s\\n' "$REPORT_TOKEN" > "$STATE_DIR/wheel-headers"
      curl --silent --show-error --fail --retry 5 --retry-delay 5 --retry-connrefused \\
        -H @"$STATE_DIR/wheel-headers" -o "$INSTALL" "$WHEEL_URL"
      GOT=$?
      rm -f "$STATE_DIR/wheel-headers"
    else
      curl --silent --show-error --fail --retry 5 --retry-delay 5 --retry-connrefused -o "$INSTALL" "$WHEEL_URL"
      GOT=$?
    fi
    if [ "$GOT" -ne 0 ] || [ "$(sha256sum "$INSTALL" | cut -d' ' -f1)" != "$WHEEL_SHA256" ]; then
      log "refusing to install $WHEEL_FILE: download failed or its sha256 is not $WHEEL_SHA256"
      rm -f "$INSTALL"
      printf '%s %s\\n' '{marker}' 127
      finish
    fi
  fi
  log "installing $INSTALL"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3-venv >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
      dnf -q -y install python3 python3-pip >/dev/null
    fi
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "$INSTALL"; then
    log "could not install $INSTALL"
    printf '%s %s\\n' '{marker}' 127
    finish
  fi
  CARBONSHIFT="$VENV/bin/carbonshift"
fi

# 2. the job's files (workdir:), with this instance's own role or service account.
if [ -n "$WORKDIR_SOURCE" ]; then
  log "fetching $WORKDIR_SOURCE into $WORKDIR"
  mkdir -p "$WORKDIR"
  case "$WORKDIR_SOURCE" in
    s3://*)
      if ! command -v aws >/dev/null 2>&1; then
        python3 -m venv /opt/carbonshift-tools >/dev/null 2>&1 \\
          && /opt/carbonshift-tools/bin/pip install --quiet --disable-pip-version-check awscli \\
          && PATH="/opt/carbonshift-tools/bin:$PATH"
      fi
      aws s3 sync --only-show-errors "$WORKDIR_SOURCE" "$WORKDIR" ;;
    gs://*) gcloud storage rsync --recursive "$WORKDIR_SOURCE" "$WORKDIR" ;;
    https://*) curl --silent --show-error --fail --location --retry 5 "$WORKDIR_SOURCE" | tar -xz -C "$WORKDIR" ;;
  esac
  if [ $? -ne 0 ]; then
    log "could not fetch $WORKDIR_SOURCE (does this instance's role or service account have read access?)"
    printf '%s %s\\n' '{marker}' 126
    finish
  fi
  cd "$WORKDIR" || finish
fi

# 3. a container image (image:) needs docker; NVIDIA GPU images come with its GPU support.
if [ -n "$IMAGE" ] && ! command -v docker >/dev/null 2>&1; then
  log "installing docker"
  if command -v apt-get >/dev/null 2>&1; then
    apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y docker.io >/dev/null
  elif command -v dnf >/dev/null 2>&1; then
    dnf -q -y install docker >/dev/null && systemctl start docker
  fi
fi
if [ -n "$IMAGE" ] && ! docker pull --quiet "$IMAGE" >/dev/null; then
  log "could not pull $IMAGE"
  printf '%s %s\\n' '{marker}' 125
  finish
fi

# 4. the job, under the tracker (with the spec's env, if any); the report goes to $REPORT.
log "starting the job"
timeout --kill-after=60 "$JOB_TIMEOUT_S" {env}"$CARBONSHIFT" track --region "$REGION" --report "$REPORT" \\
  ${{INSTANCE_TYPE:+--instance-type "$INSTANCE_TYPE"}} ${{FUNCTIONAL_UNIT:+--functional-unit "$FUNCTIONAL_UNIT"}} -- \\
  {command}
EXIT_CODE=$?
log "the job ended with exit code $EXIT_CODE"
printf '%s %s\\n' '{marker}' "$EXIT_CODE"

# 5. the report: to the scheduler with this run's token, or kept here and shown on the console.
if [ ! -s "$REPORT" ]; then
  log "no report was written"
elif [ -n "$REPORT_URL" ]; then
  HEADERS="$STATE_DIR/headers"
  printf 'Content-Type: application/json\\n' > "$HEADERS"
  if [ -n "$REPORT_TOKEN" ]; then
    printf 'Authorization: Bearer %s\\n' "$REPORT_TOKEN" >> "$HEADERS"
  fi
  if curl --silent --show-error --fail --retry 5 --retry-delay 5 --retry-connrefused \\
      -X POST -H @"$HEADERS" --data-binary @"$REPORT" "$REPORT_URL" >/dev/null; then
    log "report sent"
  else
    log "could not send the report; here it is:"
    cat "$REPORT"
  fi
  rm -f "$HEADERS"
else
  log "no report URL: the report stays in $REPORT; here it is:"
  cat "$REPORT"
fi

finish
"""
