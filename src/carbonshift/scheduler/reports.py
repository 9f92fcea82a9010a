"""What runs report back: a remote run's tracker (authenticated by the run's own token) and runs
`carbonshift track --server` measured on their own. A report with an exit code ends a run still
launching or running. Every report is checked first (report_check): one whose numbers cannot count
is kept aside with the reason and refused with a UserInputError (the API's 422).
"""

from __future__ import annotations

from typing import Any

from carbonshift.config.jobspec import Labels
from carbonshift.errors import UserInputError
from carbonshift.scheduler import ledger, report_check
from carbonshift.scheduler.context import Context
from carbonshift.scheduler.lifecycle import ACTIVE, paused
from carbonshift.scheduler.models import RunRow
from carbonshift.scheduler.queries import NotFoundError
from carbonshift.scheduler.releases import Releases
from carbonshift.scheduler.states import RunState

__all__ = ["Reports"]


class Reports:
    def __init__(self, ctx: Context, releases: Releases) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.releases = releases

    def token_ok(self, run_id: str, token: str) -> bool:
        """Whether `token` is the run's report token (constant-time); NotFoundError for no such run."""
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            expected = run.report_token_hash
        return self.ctx.tokens.matches(token, expected)

    def record(self, run_id: str, token: str, report: dict[str, Any]) -> None:
        """A remote run's tracker reporting back. The token is the run's own (given at launch, stored
        only as a hash) and compared in constant time; PermissionError when it does not match. A
        report with an exit code ends a run still launching or running."""
        now = self.ctx.clock.now()
        if not isinstance(report, dict):
            raise UserInputError("report", "a tracker report is a JSON object")
        ended = False
        with self.store.tx() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            if not self.ctx.tokens.matches(token, run.report_token_hash):
                raise PermissionError(f"run {run_id}: wrong report token")
            problem = report_check.keep(s, run, "remote", report, now, self.ctx.cfg.watchdog_margin_s)
            code = report.get("exit_code")
            if (
                problem is None
                and run.state in ACTIVE
                and isinstance(code, int)
                and not isinstance(code, bool)
            ):
                was_paused, stop_reason = paused(run), run.stop_reason
                extra: dict[str, Any] = {}
                if code == 0:
                    to = RunState.SUCCEEDED
                elif run.cancel_requested:
                    to = RunState.CANCELLED
                elif was_paused:  # a chunk stopped by the daemon at its planned end
                    to, extra = RunState.SUCCEEDED, {"note": stop_reason}
                else:
                    to = RunState.FAILED
                why = f"the run's tracker reported exit code {code}"
                if self.store.move(s, run, to, why, now, exit_code=code, ended_at=now, **extra):
                    self.ctx.chunks.ended(s, run, to, was_paused, why, now)
                ended = True
        if problem is not None:
            # kept aside with the reason, never summed; its exit code is not acted on either (the
            # provider's own status ends the run)
            raise UserInputError(problem[0], f"{problem[1]}; the report was kept aside and not counted")
        if ended:
            self.releases.release(run_id)
        self.store.close_finished_jobs(now)

    def record_tracked(
        self, report: dict[str, Any], labels: Labels | None = None, name: str | None = None
    ) -> str:
        """Store a run `carbonshift track --server` measured, so it counts in the ledger (idempotent by
        the report's run_id); each label not given takes the config's. Its run id."""
        problem = report_check.report_problem(report, report_check.RunBounds(None, None, None))
        if problem is not None:
            raise UserInputError(problem[0], f"{problem[1]}; nothing was stored")
        merged = (labels or Labels()).merged(self.ctx.settings.labels)
        with self.store.tx() as s:
            run_id, _created = ledger.record_tracked(s, report, merged, self.ctx.clock.now(), name)
        return run_id
