"""The ledger (issue 11): labels stored with jobs and runs, the numbers each run carries, and totals
that are exact sums of the stored runs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.clock import FixedClock
from carbonshift.config.jobspec import Labels
from carbonshift.errors import UserInputError
from carbonshift.ledger_figures import FIGURES
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus
from carbonshift.scheduler import RunState, Scheduler
from carbonshift.scheduler.ledger import totals
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window


class ReportingProvider(FakeProvider):
    """A fake whose finished runs come with a tracker report, as the local provider's do."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: dict[str, dict[str, Any]] = {}

    def status(self, handle: Handle) -> InstanceStatus:
        status = super().status(handle)
        if status.state is InstanceState.SUCCEEDED:
            return InstanceStatus(
                status.state, status.exit_code, status.detail, self.reports.get(handle.run_id)
            )
        return status


def _started(tmp_path: Path, db_url: str | None) -> tuple[Scheduler, FixedClock, ReportingProvider]:
    provider = ReportingProvider()
    clock = FixedClock(NOW)
    settings = make_settings(tmp_path, db_url=db_url, labels={"organisation": "acme", "team": "default-team"})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})  # type: ignore[arg-type]
    sched.start(background=False)
    return sched, clock, provider


def _run_one(
    sched: Scheduler,
    clock: FixedClock,
    provider: ReportingProvider,
    labels: dict[str, str],
    energy: float,
    kg: float,
    *,
    local_finish: bool = False,
    embodied: float | None = None,
) -> dict[str, Any]:
    """Submit a job, launch it, end it with a report (posted back, or read by the provider); the run's
    stored planned numbers come back for the hand computation."""
    now = clock.now()
    job = sched.submit(spec(labels=labels, window=window(now, now + timedelta(hours=6))))
    sched.tick()
    run_id = job.runs[0].id
    report: dict[str, Any] = {"exit_code": 0, "energy_kwh": energy, "kg_co2e": kg}
    if embodied is not None:  # a tracker that knows the hardware; an older one reports no embodied part
        report.update(embodied_kg_co2e=embodied, total_kg_co2e=kg + embodied)
    if local_finish:
        provider.reports[run_id] = report
        provider.finish(run_id)
        sched.tick()
    else:
        sched.record_report(run_id, provider.requests[run_id].report_token or "", report)
    run = sched.get_run(run_id)
    assert run.status is RunState.SUCCEEDED and run.planned is not None
    return {
        "labels": labels,
        "energy": energy,
        "kg": kg,
        "embodied": embodied,
        "planned": float(run.planned["kg_co2e"]),
        "baseline": float(run.planned["baseline_kg_co2e"]),
        "month": (run.ended_at or now).strftime("%Y-%m"),
    }


def _expected(runs: list[dict[str, Any]]) -> dict[str, Any]:
    embodied = [r["embodied"] for r in runs if r["embodied"] is not None]
    return {
        "runs": len(runs),
        "energy_kwh": sum(r["energy"] for r in runs),
        "kg_co2e": sum(r["kg"] for r in runs),
        "embodied_kg_co2e": sum(embodied) if embodied else None,  # no run reported one: unknown
        "total_kg_co2e": sum(r["kg"] + (r["embodied"] or 0.0) for r in runs),
        "planned_kg_co2e": sum(r["planned"] for r in runs),
        "baseline_kg_co2e": sum(r["baseline"] for r in runs),
        "saved_kg_co2e": sum(r["baseline"] - r["kg"] for r in runs),
    }


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["runs"] == want["runs"]
    for key in FIGURES:
        if want[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_labels_are_stored_with_jobs_and_runs_and_filter_the_list(tmp_path: Path, db_url: str | None) -> None:
    sched, _clock, _provider = _started(tmp_path, db_url)
    try:
        a = sched.submit(spec(name="a", labels={"team": "ml-platform", "project": "llm"}))
        b = sched.submit(spec(name="b"))
        assert a.to_dict()["labels"] == {"organisation": "acme", "team": "ml-platform", "project": "llm"}
        assert b.to_dict()["labels"] == {"organisation": "acme", "team": "default-team", "project": None}
        assert [j.name for j in sched.list_jobs(team="ml-platform")] == ["a"]
        assert [j.name for j in sched.list_jobs(organisation="acme", project="llm")] == ["a"]
        assert {j.name for j in sched.list_jobs(organisation="acme")} == {"a", "b"}
        assert sched.list_jobs(team="nobody") == []
        with pytest.raises(UserInputError, match="colour"):
            sched.list_jobs(colour="red")
    finally:
        sched.shutdown()


def test_label_values_are_validated_naming_the_field() -> None:
    from carbonshift.config.jobspec import JobSpecError

    with pytest.raises(JobSpecError, match=r"labels\.team"):
        spec(labels={"team": "ML_Platform"})
    with pytest.raises(JobSpecError, match=r"labels\.project"):
        spec(labels={"project": "-x"})
    with pytest.raises(JobSpecError, match=r"labels"):
        spec(labels={"owner": "me"})
    assert Labels(team="a-1").merged(Labels(team="b", project="p")) == Labels(team="a-1", project="p")


def test_totals_are_exact_sums_of_the_stored_runs(tmp_path: Path, db_url: str | None) -> None:
    sched, clock, provider = _started(tmp_path, db_url)
    try:
        ml = {"team": "ml-platform", "project": "llm"}
        march = [
            _run_one(sched, clock, provider, ml, 1.5, 0.25, embodied=0.03125),
            _run_one(sched, clock, provider, ml, 0.75, 0.125, local_finish=True, embodied=0.015625),
            _run_one(sched, clock, provider, {"team": "data"}, 2.0, 0.5),
        ]
        clock.advance(31 * 86400)  # April
        april = [
            _run_one(sched, clock, provider, ml, 3.0, 0.0625, local_finish=True, embodied=0.0078125),
            _run_one(sched, clock, provider, {"team": "data", "project": "etl"}, 0.5, 0.375),
        ]
        # a run that never reported counts nowhere
        sched.submit(spec(labels=ml, window=window(clock.now(), clock.now() + timedelta(hours=6))))
        sched.tick()
        runs = march + april
        assert {r["month"] for r in march} == {"2030-03"} and {r["month"] for r in april} == {"2030-04"}

        data = sched.totals(["team", "month"])
        assert data["group_by"] == ["team", "month"] and data["from"] is None and data["to"] is None
        keys = [g["key"] for g in data["groups"]]
        assert keys == [
            {"team": "data", "month": "2030-03"},
            {"team": "data", "month": "2030-04"},
            {"team": "ml-platform", "month": "2030-03"},
            {"team": "ml-platform", "month": "2030-04"},
        ]
        for group in data["groups"]:
            want = [
                r
                for r in runs
                if r["labels"]["team"] == group["key"]["team"] and r["month"] == group["key"]["month"]
            ]
            _same(group, _expected(want))
        _same(data["total"], _expected(runs))

        # filters and a time range; the same numbers through a bare engine (what the dashboard may use)
        only = sched.totals(["project"], "2030-04-01T00:00Z", "2030-05-01T00:00Z", team="data")
        assert only["from"] == "2030-04-01T00:00:00Z" and [g["key"] for g in only["groups"]] == [
            {"project": "etl"}
        ]
        _same(only["total"], _expected([april[1]]))
        by_org = totals(sched.engine, "organisation,provider,region")
        assert [g["key"] for g in by_org["groups"]] == [
            {"organisation": "acme", "provider": "local", "region": "local:lab"}
        ]
        _same(by_org["total"], _expected(runs))
        nothing = sched.totals([], team="nobody")
        assert (
            nothing["groups"] == [] and nothing["total"]["runs"] == 0 and nothing["total"]["kg_co2e"] is None
        )

        with pytest.raises(UserInputError, match="group_by"):
            sched.totals(["colour"])
        with pytest.raises(UserInputError, match="from"):
            sched.totals(["team"], "yesterday-ish")
    finally:
        sched.shutdown()


def test_a_tracked_run_counts_once_and_saves_nothing(tmp_path: Path, db_url: str | None) -> None:
    sched, _clock, _provider = _started(tmp_path, db_url)
    try:
        report = {
            "run_id": "5c1e4b8e-3a57-4a8e-9d9c-1f0a2b3c4d5e",
            "command": ["python", "train.py"],
            "start": "2030-02-10T10:00:00Z",
            "end": "2030-02-10T11:00:00Z",
            "exit_code": 0,
            "energy_kwh": 0.4,
            "kg_co2e": 0.08,
            "embodied_kg_co2e": 0.03,
            "total_kg_co2e": 0.11,
            "zone": "DE",
            "location": {"region": "aws:eu-central-1", "zone": "DE"},
        }
        run = sched.record_tracked(report, Labels(team="research"), name="train")
        again = sched.record_tracked(report, Labels(team="research"), name="train")
        assert again.id == run.id and run.status is RunState.SUCCEEDED
        assert run.actual is not None and run.actual["kg_co2e"] == 0.08
        data = sched.totals(["organisation", "team", "region", "month"])
        assert [g["key"] for g in data["groups"]] == [
            {"organisation": "acme", "team": "research", "region": "aws:eu-central-1", "month": "2030-02"}
        ]
        total = data["total"]
        assert total["runs"] == 1 and total["energy_kwh"] == pytest.approx(0.4)
        assert total["kg_co2e"] == pytest.approx(0.08) and total["baseline_kg_co2e"] == pytest.approx(0.08)
        assert total["saved_kg_co2e"] == pytest.approx(0.0)  # shifting saves operational kg only
        assert total["embodied_kg_co2e"] == pytest.approx(0.03) and total["total_kg_co2e"] == pytest.approx(
            0.11
        )
        assert run.actual["embodied_kg_co2e"] == 0.03 and run.actual["total_kg_co2e"] == 0.11
        assert data["total"]["planned_kg_co2e"] is None  # it had no plan
        job = sched.get_job(run.job_id).to_dict()
        assert job["kind"] == "tracked" and job["labels"]["team"] == "research"
        with pytest.raises(UserInputError, match="run_id"):
            sched.record_tracked({"kg_co2e": 1.0, "energy_kwh": 1.0})
    finally:
        sched.shutdown()


def test_runs_stored_before_the_ledger_are_backfilled(tmp_path: Path) -> None:
    from carbonshift.scheduler import db

    engine = db.create_db_engine(db.resolve_url(make_settings(tmp_path)))
    db.upgrade(engine, "0005")
    t = "'2026-11-02 10:00:00'"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, name, spec, recurring, status, created_at, updated_at) "
            f"VALUES ('job-old', 'old', '{{}}', 0, 'done', {t}, {t})"
        )
        conn.exec_driver_sql(
            "INSERT INTO runs (id, job_id, seq, state, window_earliest, deadline, duration_s, provider, region,"
            " planned, refusals, cancel_requested, prestart_replanned, launch_attempts, ended_at, created_at,"
            " updated_at) VALUES ('run-old', 'job-old', 1, 'succeeded', "
            f"{t}, {t}, 60, 'local', 'lab', '{{\"kg_co2e\": 0.5, \"baseline_kg_co2e\": 0.75}}', '[]', 0, 0, 1,"
            f" {t}, {t}, {t})"
        )
        conn.exec_driver_sql(
            "INSERT INTO reports (run_id, received_at, source, body) VALUES "
            f"('run-old', {t}, 'remote', '{{\"kg_co2e\": 0.25, \"energy_kwh\": 2.0, \"embodied_kg_co2e\": 0.125}}')"
        )
    db.upgrade(engine)
    data = totals(engine, ["month"])
    assert data["groups"][0]["key"] == {"month": "2026-11"}
    assert {
        k: data["total"][k]
        for k in (
            "runs",
            "energy_kwh",
            "kg_co2e",
            "embodied_kg_co2e",
            "total_kg_co2e",
            "planned_kg_co2e",
            "saved_kg_co2e",
        )
    } == {
        "runs": 1,
        "energy_kwh": 2.0,
        "kg_co2e": 0.25,
        "embodied_kg_co2e": 0.125,  # migration 0010 took it from the run's latest counted report
        "total_kg_co2e": 0.375,
        "planned_kg_co2e": 0.5,
        "saved_kg_co2e": 0.5,
    }
    engine.dispose()
