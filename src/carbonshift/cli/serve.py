"""`carbonshift serve`: the scheduler daemon and its HTTP API in one process.

Order matters: the token rule is checked first (nothing started), then the port is bound (a busy
port is reported before any job could be launched), then the scheduler takes its database lock and
starts, then uvicorn serves on the socket already bound. SIGTERM and Ctrl-C stop accepting requests,
let the ones in flight finish (a few seconds at most), and shut the scheduler down before exiting 0.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from types import FrameType
from typing import Annotated
from urllib.parse import urlsplit

import typer

from carbonshift import runtime
from carbonshift.api.security import TOKEN_ENV, is_loopback
from carbonshift.api.serving import install_log_limits, uvicorn_options
from carbonshift.cli import context

EXIT_FAILURE = 1
GRACEFUL_SHUTDOWN_S = 5


class _ShutdownRace(logging.Filter):
    """APScheduler 3 may hand one last timer to its executor while that executor is shutting down,
    and logs the refusal ('cannot schedule new futures after shutdown') as an error with a traceback.
    During our own shutdown that timer is meant not to run (the database, not the timer, is the record
    of what is due), so the line would only alarm whoever reads the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, RuntimeError) and "after shutdown" in str(exc))


def _bind(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so 'port in use' is a clear message (uvicorn would log and exit)
    and `--port 0` can pick a free port that we then announce."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise context.fail(f"--host {host!r}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise context.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILURE) from None
    sock.set_inheritable(True)
    return sock


def database_unreachable(db_url: str | None, exc: BaseException) -> str:
    """One line for a database `serve` cannot reach: where (host and port, never the password), the
    driver's reason (its first line), and what to check."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(db_url or "")
        where = f"{url.host or 'localhost'}:{url.port or 5432}" if url.get_backend_name() != "sqlite" else ""
        where = where or str(url.database)
    except Exception:  # an unparsable URL: say so rather than guess
        where = "the configured address"
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    reason = reason.rsplit("failed: ", 1)[-1]
    reason = reason if len(reason) <= 120 else reason[:117] + "..."
    return (
        f"cannot reach the database at {where} ({reason}): check that the server is running there and "
        "accepts connections, and the host, port, user and password in --db or CARBONSHIFT_DB_URL"
    )


REMOTE_PROVIDERS = frozenset({"aws", "gcp", "azure", "kubernetes"})


def unreachable_report_url(report_url: str, providers: list[str]) -> str | None:
    """Why runs on these providers could not report back to `report_url`, or None. A cloud VM or a pod
    calling 127.0.0.1 reaches itself, so its report (and the wheel it installs) would never arrive."""
    remote = sorted(REMOTE_PROVIDERS.intersection(providers))
    host = urlsplit(report_url).hostname or ""
    if not remote or not is_loopback(host):
        return None
    return (
        f"scheduler.public_url: runs on {', '.join(remote)} could only reach this daemon at {host}, a "
        "loopback address they cannot call: set scheduler.public_url (or CARBONSHIFT_SCHEDULER__PUBLIC_URL) "
        "to the https address they reach it at"
    )


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_command(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: $CARBONSHIFT_DB_URL, else SQLite in the data dir)."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default 127.0.0.1; others need a token)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Port (default 8765; 0: any free port).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the scheduler and its HTTP API until SIGTERM or Ctrl-C."""
    settings = context.settings()
    bind_host = host if host is not None else settings.host
    bind_port = port if port is not None else settings.port
    level = log_level.lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise context.fail(f"--log-level {log_level!r}: use debug, info, warning or error")
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    if token is not None and not token.strip():
        raise context.fail(f"{TOKEN_ENV} is set but empty: give it a long random value, or unset it")
    if token is None and not is_loopback(bind_host):
        raise context.fail(
            f"refusing to listen on {bind_host} without an API token: anyone who can reach it could submit "
            f"jobs that run commands here. Set {TOKEN_ENV} (e.g. to the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or listen on 127.0.0.1"
        )

    import uvicorn

    from carbonshift.api import create_app
    from carbonshift.scheduler import DaemonLockedError, Scheduler

    sock = _bind(bind_host, bind_port)
    actual_port = int(sock.getsockname()[1])
    updates: dict[str, object] = {"host": bind_host, "port": actual_port}
    if settings.scheduler.report_url is None:
        # where a launched job's tracker posts its report; a wildcard address is no address to call
        reach = socket.getfqdn() if bind_host in {"0.0.0.0", "::", ""} else bind_host
        base = (settings.scheduler.public_url or _url(reach, actual_port)).rstrip("/")
        report_url = base + "/api/v1/runs/{run_id}/report"
        updates["scheduler"] = settings.scheduler.model_copy(update={"report_url": report_url})
    else:
        report_url = settings.scheduler.report_url
    unreachable = unreachable_report_url(report_url, settings.scheduler.providers)
    if unreachable is not None:
        sock.close()
        raise context.fail(unreachable)
    if db is not None:
        updates["db_url"] = db
    settings = settings.model_copy(update=updates)
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "debug":  # their INFO lines (every timer firing, every migration step) bury ours
        for noisy in ("apscheduler", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        # one intensity service setup for the daemon's life: every plan shares its pool and merged series
        scheduler = Scheduler.from_settings(settings, service_factory=runtime.service_factory(settings))
        scheduler.start()
    except DaemonLockedError as exc:
        sock.close()
        raise context.fail(str(exc), EXIT_FAILURE) from None
    except (OperationalError, InterfaceError) as exc:
        sock.close()
        raise context.fail(database_unreachable(settings.db_url, exc), EXIT_FAILURE) from None
    except BaseException:
        sock.close()
        raise
    stopping: list[int] = []

    def note_signal(signum: int, _frame: FrameType | None) -> None:
        # uvicorn handles SIGINT/SIGTERM while it serves and raises them again once it has stopped;
        # this handler receives that second delivery, so the scheduler still gets shut down below
        stopping.append(signum)

    previous = {s: signal.signal(s, note_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        app = create_app(scheduler, settings)
        config = uvicorn.Config(
            app,
            log_level=level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False,
            date_header=True,
            **uvicorn_options(),
        )
        install_log_limits()
        server = uvicorn.Server(config)
        auth = "bearer token required" if token is not None else "no token: open to this machine only"
        typer.echo(f"carbonshift serving on {_url(bind_host, actual_port)} ({auth})", err=True)
        typer.echo(f"carbonshift: the dashboard is at {_url(bind_host, actual_port)}/", err=True)
        if scheduler.role == "standby":
            typer.echo(
                "carbonshift: hot standby: another daemon is active on this database; the API answers "
                "here, and this one launches runs once it takes over",
                err=True,
            )
        sys.stderr.flush()
        # what start-up built (settings, catalog, tables, the app, the scheduler, ~190,000 objects)
        # lives as long as the daemon: out of the collector's sight, a full collection no longer walks
        # it in the middle of a request (23-132 ms each, the job list's p99 at one connection)
        gc.collect()
        gc.freeze()
        server.run(sockets=[sock])
    finally:
        typer.echo("carbonshift: shutting down the scheduler", err=True)
        logging.getLogger("apscheduler.scheduler").addFilter(_ShutdownRace())
        try:
            scheduler.shutdown(wait=True)
        finally:
            sock.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    typer.echo("carbonshift: stopped", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
