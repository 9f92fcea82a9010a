"""CarbonAwareTrigger: each cron occurrence fires at the lowest-carbon start of its flex window, in
APScheduler's own scheduler."""

from __future__ import annotations

import pickle
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from carbonshift.runtime import build_service
from carbonshift.scheduler import CarbonAwareTrigger
from tests.scheduler.helpers import make_settings

BERLIN = ZoneInfo("Europe/Berlin")


def nightly_dips(start: datetime, days: int) -> list[tuple[datetime, float]]:
    """Hourly values from `start` (UTC, on the hour): 400, except 02:00-04:00 UTC each day at 100."""
    return [
        (start + timedelta(hours=h), 100.0 if (start + timedelta(hours=h)).hour in (2, 3) else 400.0)
        for h in range(24 * days)
    ]


def trigger_for(tmp_path: Path, rows: list[tuple[datetime, float]], **kw: object) -> CarbonAwareTrigger:
    settings = make_settings(tmp_path, {"lab": rows})
    return CarbonAwareTrigger(
        "0 22 * * *",
        timezone="Europe/Berlin",
        flex="8h",
        duration="2h",
        location="local:lab",
        settings=settings,
        service=build_service(settings),
        **kw,  # type: ignore[arg-type]
    )


def test_each_occurrence_fires_at_its_lowest_carbon_start(tmp_path: Path) -> None:
    start = datetime(2030, 3, 4, tzinfo=UTC)
    trig = trigger_for(tmp_path, nightly_dips(start, 6))
    now = datetime(2030, 3, 5, 12, tzinfo=UTC)
    first = trig.get_next_fire_time(None, now)
    # nominal 22:00 Berlin (21:00 UTC); window to 06:00 Berlin; the dip is 02:00-04:00 UTC
    assert first == datetime(2030, 3, 6, 2, tzinfo=UTC) and first.tzinfo == BERLIN
    second = trig.get_next_fire_time(first, first)
    assert second == datetime(2030, 3, 7, 2, tzinfo=UTC)


def test_it_falls_back_to_the_nominal_time_without_data(tmp_path: Path) -> None:
    start = datetime(2030, 3, 4, tzinfo=UTC)
    trig = trigger_for(tmp_path, nightly_dips(start, 6), signal="marginal")  # no marginal source at all
    now = datetime(2030, 3, 5, 12, tzinfo=UTC)
    assert trig.get_next_fire_time(None, now) == datetime(2030, 3, 5, 21, tzinfo=UTC)  # 22:00 Berlin
    flat = CarbonAwareTrigger("30 1 * * 1-5", flex="3h", location="DE", settings=make_settings(tmp_path))
    monday = flat.get_next_fire_time(None, datetime(2030, 3, 9, 12, tzinfo=UTC))  # a Saturday
    assert monday == datetime(
        2030, 3, 11, 1, 30, tzinfo=UTC
    )  # static values: flat, so nominal; 1-5 = Mon-Fri


def test_it_survives_pickling_as_job_stores_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONSHIFT_UKCI_ENABLED", "false")
    monkeypatch.setenv("CARBONSHIFT_CACHE__ENABLED", "false")
    trig = CarbonAwareTrigger(
        "0 3 * * *", flex="2h", duration="30m", location="DE", settings=make_settings(tmp_path)
    )
    again = pickle.loads(pickle.dumps(trig))
    assert repr(again) == repr(trig)
    now = datetime(2030, 3, 5, 12, tzinfo=UTC)
    assert again.get_next_fire_time(None, now) == datetime(2030, 3, 6, 3, tzinfo=UTC)


def test_apscheduler_runs_a_job_on_it_and_asks_it_for_each_next_time(tmp_path: Path) -> None:
    """Existing APScheduler code only swaps its trigger: the scheduler fires the job and asks the
    trigger for the next fire time, which lands on the next night's dip."""
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    trig = trigger_for(tmp_path, nightly_dips(start, 5))
    fired = threading.Event()
    sched = BackgroundScheduler(timezone=UTC)
    sched.start(paused=True)
    try:
        job = sched.add_job(fired.set, trig, id="retrain")
        expected = trig.get_next_fire_time(None, now)
        assert job.next_run_time == expected and expected.astimezone(UTC).hour == 2
        # run it now once (as if its time had come), and APScheduler asks the trigger for the next
        job.modify(next_run_time=datetime.now(UTC) + timedelta(milliseconds=200))
        sched.resume()
        assert fired.wait(10)
        next_time = sched.get_job("retrain").next_run_time
        assert next_time is not None and next_time > datetime.now(UTC)
        assert next_time.astimezone(UTC).hour == 2 and next_time.astimezone(UTC).minute == 0
    finally:
        sched.shutdown(wait=False)


def test_bad_input_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        CarbonAwareTrigger("61 * * * *", flex="1h", location="DE")
    with pytest.raises(ValueError):
        CarbonAwareTrigger("0 3 * * *", flex="1h", duration="0s", location="DE")
