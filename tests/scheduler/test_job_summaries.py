"""The job list's summaries, written as JSON straight from the stored rows (issue 13): for every kind
of job (one-off, reported, released, in chunks, recurring, cancelled, labelled) the same content as
the full view less its history, on SQLite and PostgreSQL; stored values that are not JSON (a NaN)
answer null; one query per table for a page."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text, update

from carbonshift.clock import FixedClock
from carbonshift.providers.base import InstanceState
from carbonshift.scheduler import Scheduler
from carbonshift.scheduler.models import RunRow
from tests.scheduler.helpers import NOW, FakeProvider, hourly, make_settings, spec, window

# hours 1 and 4 after NOW are the cheap ones: a 2 h job in chunks of at least 1 h runs in two chunks
CHEAP = (1, 4)


def _started(tmp_path: Path, db_url: str | None) -> tuple[Scheduler, FixedClock, FakeProvider]:
    series = hourly(NOW - timedelta(days=1), 72, lambda h: 100.0 if h - 24 in CHEAP else 300.0)
    provider, clock = FakeProvider(), FixedClock(NOW)
    sched = Scheduler.from_settings(
        make_settings(tmp_path, {"lab": series}, db_url=db_url), clock=clock, providers={"local": provider}
    )  # type: ignore[dict-item]
    sched.start(background=False)
    return sched, clock, provider


def _every_kind(sched: Scheduler, clock: FixedClock, provider: FakeProvider) -> dict[str, str]:
    """One job of each kind; their ids by kind."""
    soon = window(NOW, NOW + timedelta(hours=6))
    ids = {
        "reported": sched.submit(spec(name="reported", window=soon)).id,
        "chunks": sched.submit(
            spec(name="chunks", duration="2h", interruptible=True, min_chunk="1h", window=soon)
        ).id,
        "recurring": sched.submit(spec(name="nightly", schedule={"cron": "0 22 * * *", "flex": "2h"})).id,
        "cancelled": sched.submit(spec(name="cancelled", window=soon)).id,
        "labelled": sched.submit(
            spec(name="labelled", window=soon, labels={"team": "ml", "project": "p1", "organisation": "o"})
        ).id,
        "later": sched.submit(
            spec(name="later", window=window(NOW + timedelta(days=1), NOW + timedelta(days=2)))
        ).id,
    }
    sched.cancel(ids["cancelled"])
    clock.advance(3600)
    sched.tick()  # launches what is due at 01:00: the first chunk, and the one-off jobs
    reported = sched.get_job(ids["reported"]).runs[0]
    token = provider.requests[reported.id].report_token or ""
    sched.record_report(reported.id, token, {"exit_code": 0, "energy_kwh": 0.5, "kg_co2e": 0.125})
    provider.finish(reported.id)
    first_chunk = sched.get_job(ids["chunks"]).runs[0]
    provider.states[first_chunk.id] = InstanceState.FAILED  # the job fails; its second chunk is cancelled
    clock.advance(1800)
    sched.tick()
    return ids


def _less_history(whole: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in whole.items() if k != "plans"}
    if whole["plan"] is not None:
        out["plan"] = {k: v for k, v in whole["plan"].items() if k != "options"}
    out["runs"] = [{k: v for k, v in r.items() if k != "events"} for r in whole["runs"]]
    return out


def test_every_kind_of_job_is_summarised_as_its_full_view_less_the_history(
    tmp_path: Path, db_url: str | None
) -> None:
    sched, clock, provider = _started(tmp_path, db_url)
    try:
        ids = _every_kind(sched, clock, provider)
        log = tmp_path / "run.log"
        log.write_text("out\n")
        runs = RunRow.__table__
        with sched.engine.begin() as conn:  # what other paths store, written as they could have been
            conn.execute(  # free text the JSON must escape
                update(runs)
                .where(runs.c.job_id == ids["later"])
                .values(error='quote " backslash \\ tab \t nl \n ctl \x01 ünï 雪 \u2028', note="é")
            )
            conn.execute(  # instance releases, pending and done
                update(runs)
                .where(runs.c.job_id == ids["reported"])
                .values(
                    release_state="pending",
                    release_attempts=2,
                    release_next_at=NOW + timedelta(minutes=5, microseconds=7),
                    release_error="throttled",
                )
            )
            conn.execute(
                update(runs)
                .where(runs.c.job_id == ids["chunks"], runs.c.chunk_index == 1)
                .values(
                    release_state="done",
                    release_attempts=1,
                    released_at=NOW + timedelta(hours=1, seconds=59.9),
                )
            )
            conn.execute(  # a local run's log
                update(runs)
                .where(runs.c.job_id == ids["labelled"])
                .values(handle={"provider": "local", "details": {"log_path": str(log)}})
            )
        full = {j.id: j.to_dict() for j in sched.list_jobs_page(None, full=True).jobs}
        summaries = sched.list_jobs_page(None).jobs
        assert [s.id for s in summaries] == list(full)
        for summary in summaries:
            assert json.loads(summary.json) == summary.to_dict() == _less_history(full[summary.id])
        shown = {s.id: s.to_dict() for s in summaries}
        # the kinds this test means to cover are there
        assert shown[ids["reported"]]["runs"][0]["actual"]["kg_co2e"] == 0.125
        chunks = shown[ids["chunks"]]
        assert chunks["status"] == "failed" and [r["chunk"]["index"] for r in chunks["runs"]] == [1, 2]
        assert chunks["plan"] is not None and chunks["runs"][0]["release"]["state"] == "done"
        assert shown[ids["reported"]]["runs"][0]["release"]["next_at"] == "2030-03-05T00:05:00Z"
        assert shown[ids["labelled"]]["runs"][0]["log_available"] is True
        assert shown[ids["recurring"]]["schedule"]["next_occurrence"] is not None
        assert shown[ids["cancelled"]]["status"] == "cancelled"
        assert shown[ids["labelled"]]["labels"] == {"organisation": "o", "team": "ml", "project": "p1"}
        assert "雪" in shown[ids["later"]]["runs"][0]["error"]
    finally:
        sched.shutdown()


def test_a_non_finite_number_stored_in_a_json_column_is_listed_as_null(tmp_path: Path) -> None:
    """Python's json writes NaN bare (SQLite keeps it; PostgreSQL refuses it), and decodes a lone
    surrogate stored escaped: the listing stays JSON, null for the one, escaped for the other."""
    sched, _clock, _provider = _started(tmp_path, None)
    try:
        job = sched.submit(spec(name="nan", window=window(NOW, NOW + timedelta(hours=6))))
        with sched.engine.begin() as conn:
            conn.execute(
                text("UPDATE runs SET refusals = :r WHERE job_id = :j"),
                {"r": '[{"kg": NaN, "at": Infinity, "why": "NaN"}]', "j": job.id},
            )
            conn.execute(  # a report from before validation: a lone surrogate, escaped as stored
                text(
                    "INSERT INTO reports (run_id, received_at, source, body) "
                    "VALUES (:r, '2030-03-05 00:00:00.000000', 'remote', :b)"
                ),
                {"r": job.runs[0].id, "b": '{"zone": "\\ud800", "kg_co2e": NaN, "energy_kwh": 1.5}'},
            )
        (summary,) = sched.list_jobs_page(1).jobs

        def refuse(name: str) -> None:
            raise ValueError(f"not JSON: {name}")

        listed = json.loads(summary.json, parse_constant=refuse)
        assert listed["runs"][0]["refusals"] == [{"kg": None, "at": None, "why": "NaN"}]
        assert b"\\ud800" in summary.json  # escaped: UTF-8 cannot hold it
        actual = listed["runs"][0]["actual"]
        assert actual["zone"] == "\ud800" and actual["kg_co2e"] is None and actual["energy_kwh"] == 1.5
        assert listed["spec"]["name"] == "nan"
    finally:
        sched.shutdown()


@pytest.mark.parametrize("limit", [3, None])
def test_a_page_of_summaries_reads_one_query_per_table(tmp_path: Path, limit: int | None) -> None:
    sched, clock, provider = _started(tmp_path, None)
    try:
        _every_kind(sched, clock, provider)
        sent: list[str] = []

        @event.listens_for(sched.engine, "before_cursor_execute")
        def _seen(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("SELECT"):
                sent.append(statement.split("FROM", 1)[1].split(maxsplit=1)[0])

        page = sched.list_jobs_page(limit)
        assert len(page.jobs) == (limit or 6)
        assert sent == ["jobs", "runs", "plans", "reports"]
    finally:
        sched.shutdown()
