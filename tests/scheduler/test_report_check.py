"""Run reports are validated (issue 15, defect 6): finite, non-negative numbers and energy plausible for
the run's duration and hardware; a report that fails is kept aside with its reason and never summed
into the run, the ledger's totals or /metrics; the API answers 422 with a JSON detail naming the field."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carbonshift.clock import FixedClock
from carbonshift.errors import UserInputError
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus
from carbonshift.scheduler import RunState, Scheduler
from carbonshift.scheduler.models import ReportRow
from carbonshift.scheduler.report_check import (
    CEILING_KW,
    FLOOR_KW,
    MAX_EMBODIED_KG_PER_H,
    RunBounds,
    report_problem,
    storable,
)
from tests.api.helpers import ApiServer, local_spec
from tests.api.test_lifecycle import RecordingLocal, recording  # noqa: F401  (the fixture)
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window

HOUR = RunBounds(planned_kwh=0.2, planned_s=3600.0, longest_s=4 * 3600.0)  # 200 W for an hour


@pytest.mark.parametrize(
    ("report", "field", "words"),
    [
        ({"kg_co2e": math.nan}, "kg_co2e", "finite"),
        ({"kg_co2e": math.inf}, "kg_co2e", "finite"),
        ({"energy_kwh": -math.inf}, "energy_kwh", "finite"),
        ({"kg_co2e": -1e300}, "kg_co2e", "negative"),
        ({"energy_kwh": -0.001}, "energy_kwh", "negative"),
        ({"duration_s": 10**400}, "duration_s", "finite"),
        ({"energy_kwh": True}, "energy_kwh", "a number, not bool"),
        ({"kg_co2e": "0.1"}, "kg_co2e", "a number, not str"),
        ({"pue": 0.5}, "pue", "at least 1"),
        ({"mean_g_per_kwh": 5000}, "mean_g_per_kwh", "above any grid"),
        ({"energy_kwh": 1e6}, "energy_kwh", "not plausible"),  # 1 GWh from a 200 W machine in an hour
        ({"energy_kwh": 0.5, "kg_co2e": 50.0}, "kg_co2e", "not plausible for its energy"),
        ({"kg_co2e": 1e9}, "kg_co2e", "not plausible for this run"),
        ({"exit_code": 10**400}, "exit_code", "an integer"),
        ({"exit_code": "0"}, "exit_code", "an integer"),
        ({"embodied_kg_co2e": math.nan}, "embodied_kg_co2e", "finite"),
        ({"embodied_kg_co2e": -0.1}, "embodied_kg_co2e", "negative"),
        ({"total_kg_co2e": math.inf}, "total_kg_co2e", "finite"),
        ({"total_kg_co2e": -1.0}, "total_kg_co2e", "negative"),
        # 10 kg per hour of hardware at most: the run can have lasted 4 h here
        ({"embodied_kg_co2e": 1e6}, "embodied_kg_co2e", "not plausible"),
        (
            {"kg_co2e": 0.1, "embodied_kg_co2e": 0.05, "total_kg_co2e": 0.2},
            "total_kg_co2e",
            "kg_co2e + embodied",
        ),
    ],
)
def test_a_report_that_cannot_count_names_its_field(report: dict[str, Any], field: str, words: str) -> None:
    problem = report_problem(report, HOUR)
    assert problem is not None and problem[0] == field and words in problem[1], problem


def test_plausible_reports_count() -> None:
    assert report_problem({}, HOUR) is None
    assert report_problem({"exit_code": 0, "energy_kwh": 0.5, "kg_co2e": 0.1, "pue": 1.2}, HOUR) is None
    both = {"energy_kwh": 0.5, "kg_co2e": 0.1, "embodied_kg_co2e": 0.2, "total_kg_co2e": 0.1 + 0.2}
    assert report_problem(both, HOUR) is None
    # the embodied bound: 10 kg per hour over the longest the run can have lasted (here the planned hour)
    assert report_problem({"embodied_kg_co2e": MAX_EMBODIED_KG_PER_H}, HOUR) is None
    assert report_problem({"embodied_kg_co2e": MAX_EMBODIED_KG_PER_H * 1.01}, HOUR) is not None
    # the bound: 10 kW (the floor; ten times this plan's 200 W is less) over the planned hour
    assert report_problem({"energy_kwh": FLOOR_KW}, HOUR) is None
    assert report_problem({"energy_kwh": FLOOR_KW + 0.01}, HOUR) is not None
    big = RunBounds(planned_kwh=5.0, planned_s=3600.0, longest_s=None)  # a 5 kW machine: 50 kW at most
    assert report_problem({"energy_kwh": 49.0}, big) is None and report_problem({"energy_kwh": 51.0}, big)
    # a run that went on longer than planned may report more, up to how long it can have lasted
    long = {"energy_kwh": 30.0, "duration_s": 4 * 3600}
    assert report_problem(long, HOUR) is None
    assert report_problem({**long, "energy_kwh": 39.0, "duration_s": 10**6}, HOUR) is None  # capped: 4 h
    assert report_problem({"energy_kwh": 41.0, "duration_s": 10**6}, HOUR) is not None
    # no plan (a tracked run): a rack's worth of power over the duration it reports
    tracked = RunBounds(None, None, None)
    assert report_problem({"energy_kwh": CEILING_KW * 2 * 0.99, "duration_s": 7200}, tracked) is None
    assert report_problem({"energy_kwh": CEILING_KW * 2 * 1.01, "duration_s": 7200}, tracked) is not None


def test_what_is_kept_aside_can_be_stored_and_served_as_json() -> None:
    kept = storable({"kg_co2e": math.nan, "e": [math.inf, 10**400], "s": "a\ud800b", "d": {"x": {"y": 1}}})
    assert kept == {
        "kg_co2e": "nan",
        "e": ["inf", "a number too large to store"],
        "s": "a?b",
        "d": {"x": {"y": 1}},
    }


def _started(tmp_path: Path, provider: FakeProvider, db_url: str | None = None) -> Scheduler:
    settings = make_settings(tmp_path, db_url=db_url)
    sched = Scheduler.from_settings(settings, clock=FixedClock(NOW), providers={"local": provider})  # type: ignore[dict-item]
    sched.start(background=False)
    return sched


def test_a_rejected_remote_report_is_kept_aside_and_never_summed(tmp_path: Path, db_url: str | None) -> None:
    provider = FakeProvider()
    sched = _started(tmp_path, provider, db_url)
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        sched.tick()
        run_id = job.runs[0].id
        token = provider.requests[run_id].report_token or ""
        with pytest.raises(UserInputError) as caught:
            sched.record_report(run_id, token, {"exit_code": 0, "kg_co2e": math.nan, "energy_kwh": 0.1})
        assert caught.value.where == "kg_co2e" and "kept aside" in caught.value.problem
        with pytest.raises(UserInputError, match="kg_co2e"):
            sched.record_report(run_id, token, {"kg_co2e": -1e300})
        view = sched.get_run(run_id)
        assert view.status is RunState.RUNNING  # a rejected report's exit code is not acted on
        assert view.actual is None
        assert sum("remote report not counted: kg_co2e" in e.reason for e in view.events) == 2
        metrics = sched.metrics()
        assert metrics["actual_kg_co2e"] == 0 and metrics["runs_measured"] == 0
        assert metrics["reports_rejected"] == 2
        with sched._tx() as s:
            kept = list(s.scalars(select(ReportRow).where(ReportRow.run_id == run_id)))
        assert [r.rejected is not None for r in kept] == [True, True]
        assert kept[0].body["kg_co2e"] == "nan" and "finite" in (kept[0].rejected or "")

        # a good report afterwards counts, and ends the run
        view = sched.record_report(run_id, token, {"exit_code": 0, "kg_co2e": 0.02, "energy_kwh": 0.1})
        assert (
            view.status is RunState.SUCCEEDED and view.actual is not None and view.actual["kg_co2e"] == 0.02
        )
        metrics = sched.metrics()
        assert metrics["actual_kg_co2e"] == pytest.approx(0.02) and math.isfinite(metrics["saving_kg_co2e"])
        assert metrics["reports_rejected"] == 2  # the good one is not counted as refused
        assert sched.totals()["total"]["kg_co2e"] == pytest.approx(0.02)
    finally:
        sched.shutdown()


class ReportingProvider(FakeProvider):
    """A provider whose ended runs hand back a report (as the local provider reads report.json)."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__()
        self.report = report

    def status(self, handle: Handle) -> InstanceStatus:
        status = super().status(handle)
        if status.state is InstanceState.SUCCEEDED:
            return InstanceStatus(status.state, exit_code=0, detail="done", report=dict(self.report))
        return status


def test_a_local_report_that_cannot_count_is_kept_aside_and_the_run_still_ends(tmp_path: Path) -> None:
    provider = ReportingProvider({"energy_kwh": math.inf, "kg_co2e": 0.1})
    sched = _started(tmp_path, provider)
    try:
        job = sched.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        sched.tick()
        run_id = job.runs[0].id
        provider.finish(run_id)
        sched.tick()
        view = sched.get_run(run_id)
        assert view.status is RunState.SUCCEEDED and view.actual is None
        assert any("local report not counted: energy_kwh" in e.reason for e in view.events)
        assert sched.totals()["total"]["runs"] == 0
        assert sched.metrics()["runs_measured"] == 0
    finally:
        sched.shutdown()


def test_the_api_answers_422_with_a_json_detail_and_metrics_stay_finite(
    request: pytest.FixtureRequest,
) -> None:
    served: tuple[ApiServer, RecordingLocal] = request.getfixturevalue("recording")  # test_lifecycle's
    api, provider = served
    job = api.submit(local_spec("reporter", ["true"]))
    done = api.wait_for(job["id"], lambda j: j["runs"][-1]["status"] in {"succeeded", "failed"})
    run_id = done["runs"][-1]["id"]
    url = f"{api.url}/api/v1/runs/{run_id}/report"
    auth = {"Authorization": f"Bearer {provider.tokens[run_id]}", "Content-Type": "application/json"}
    for body in ('{"kg_co2e": NaN}', '{"kg_co2e": -1e300}', '{"energy_kwh": Infinity}'):
        response = api.session.post(url, data=body, headers=auth, timeout=10)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert detail[0]["loc"][-1] in {"kg_co2e", "energy_kwh"} and "kept aside" in detail[0]["msg"]
    metrics = api.get("/metrics").text
    assert "nan" not in metrics.lower() and "inf" not in metrics.lower().replace("info", "")
    shown = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert shown["runs"][-1]["actual"] is None or shown["runs"][-1]["actual"].get("kg_co2e") is None
    assert api.get("/api/v1/jobs").status_code == 200
