"""A launched run's tracker sends its report back itself: `carbonshift track --report-url URL`.

Slurm nodes and Kubernetes pods share no filesystem with the scheduler, so the report file the tracker
writes is out of its reach; the tracker POSTs the report to the run's report URL
(POST /api/v1/runs/{run_id}/report) with the run's own bearer token, as a cloud VM's first-boot
script does. The token never comes from the command line (which `ps`, `squeue` and `kubectl describe`
show): it is read from CARBONSHIFT_REPORT_TOKEN, which is then removed from the environment the job
inherits, or from a file (`--report-token-file`).

Sending is best effort: a few tries with a doubling wait for answers that may pass (no answer, 408,
429, 5xx), none for a refusal (401, 403, 404, 422); what fails is one warning, never the job's exit
code, and the report file is written either way. The HTTP itself is the API client's (client.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from carbonshift.errors import UserInputError

REPORT_TOKEN_ENV = "CARBONSHIFT_REPORT_TOKEN"
MAX_WAIT_S = 60.0  # the longest wait between two tries
_RETRY_STATUSES = frozenset({0, 408, 425, 429})  # 0: no answer at all (refused, timed out)


@dataclass(frozen=True)
class ReportTarget:
    """Where the report goes, and the run's token (kept out of repr)."""

    url: str
    token: str = field(repr=False)
    token_source: str  # how the token was given, for messages: the variable or the file's path

    @property
    def server(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


def check_report_url(url: str) -> str:
    """`--report-url` must be an absolute http(s) URL with a host and without credentials."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname or not parts.path.strip("/"):
        raise UserInputError(
            "--report-url",
            f"expected the run's report URL, such as https://HOST/api/v1/runs/RUN_ID/report, got {url!r}",
        )
    if parts.username or parts.password or parts.fragment:
        raise UserInputError(
            "--report-url",
            f"put no credentials or fragment in the URL; the token comes from {REPORT_TOKEN_ENV} "
            "or --report-token-file",
        )
    return text


def take_report_target(url: str, token_file: Path | None, environ: MutableMapping[str, str]) -> ReportTarget:
    """The report URL (checked) and the run's token: from `token_file` when given, else from
    CARBONSHIFT_REPORT_TOKEN, which is taken out of `environ` so the job does not inherit it. Bad input
    is a UserInputError naming the option, before anything runs; the token itself is never shown."""
    checked = check_report_url(url)
    env_token = environ.pop(REPORT_TOKEN_ENV, None)
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as text"
            raise UserInputError("--report-token-file", f"cannot read {token_file}: {problem}") from None
        source = f"--report-token-file {token_file}"
    else:
        token = (env_token or "").strip()
        source = REPORT_TOKEN_ENV
    if not token:
        raise UserInputError(
            "--report-url",
            f"needs the run's report token: set {REPORT_TOKEN_ENV} or give --report-token-file "
            "(never the token itself on the command line)",
        )
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise UserInputError(source.split(" ", 1)[0], "the report token holds spaces or control characters")
    return ReportTarget(url=checked, token=token, token_source=source)


def send_report(
    target: ReportTarget,
    report: dict[str, Any],
    *,
    attempts: int = 5,
    retry_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """POST `report` to the target; None once it is taken, else why not (for one warning). Tries up to
    `attempts` times, waiting `retry_s`, then twice that, ... (at most MAX_WAIT_S) between tries, while
    the failure is one that may pass."""
    from carbonshift.client import ApiError, Client

    client = Client(target.server, target.token, token_source=target.token_source)
    try:
        for attempt in range(1, max(1, attempts) + 1):
            try:
                client.post_run_report(target.path, report)
                return None
            except ApiError as exc:
                retry = exc.status in _RETRY_STATUSES or exc.status >= 500
                if not retry or attempt >= attempts:
                    tries = f" after {attempt} tries" if attempt > 1 else ""
                    return f"the report was not sent to {target.url}{tries}: {exc}"
            sleep(min(MAX_WAIT_S, retry_s * 2 ** (attempt - 1)))
    finally:
        client.close()
    return None  # pragma: no cover - the loop returns
