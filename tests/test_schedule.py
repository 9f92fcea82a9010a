from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.schedule import cron_trigger, next_nominal, next_occurrence, occurrence_spec

TUESDAY = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def fire_days(expr: str, n: int = 7) -> list[str]:
    trigger = cron_trigger(expr, "UTC")
    out, prev, now = [], None, TUESDAY
    for _ in range(n):
        fire = trigger.get_next_fire_time(prev, now)
        assert fire is not None
        out.append(fire.strftime("%a"))
        prev, now = fire, fire.replace(second=1)
    return out


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        ("0 22 * * 1-5", ["Tue", "Wed", "Thu", "Fri", "Mon", "Tue", "Wed"]),  # standard cron: Mon-Fri
        ("0 22 * * 0", ["Sun", "Sun", "Sun"]),
        ("0 22 * * 7", ["Sun", "Sun", "Sun"]),
        ("0 22 * * sat,sun", ["Sat", "Sun", "Sat"]),
        ("0 22 * * */2", ["Tue", "Thu", "Sat", "Sun"]),  # 0,2,4,6 = Sun, Tue, Thu, Sat
        ("0 22 * * 5-7", ["Fri", "Sat", "Sun", "Fri"]),
    ],
)
def test_weekdays_follow_standard_cron_not_apscheduler_numbering(expr: str, days: list[str]) -> None:
    assert fire_days(expr, len(days)) == days


def test_next_occurrence_window_is_nominal_to_nominal_plus_flex_plus_duration() -> None:
    spec = parse_jobspec(
        {
            "name": "n",
            "command": ["x"],
            "duration": "1h",
            "schedule": {"cron": "30 2 * * *", "timezone": "America/New_York", "flex": "3h"},
        }
    )
    nominal = next_occurrence(spec, TUESDAY)
    assert nominal == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)  # 02:30 EST
    occurrence = occurrence_spec(spec, nominal)
    assert occurrence.window.earliest == nominal
    assert occurrence.window.deadline == datetime(2026, 11, 24, 11, 30, tzinfo=UTC)


def test_a_job_submitted_inside_tonights_window_runs_tonight() -> None:
    """22:04 Berlin, window 22:00 + 8 h flex: tonight's occurrence, not tomorrow's (issue 16)."""
    spec = parse_jobspec(
        {
            "name": "nightly",
            "command": ["x"],
            "duration": "1h",
            "schedule": {"cron": "0 22 * * *", "timezone": "Europe/Berlin", "flex": "8h"},
        }
    )
    berlin = ZoneInfo("Europe/Berlin")
    tonight = datetime(2026, 11, 24, 22, 0, tzinfo=berlin)
    assert next_occurrence(spec, datetime(2026, 11, 24, 22, 4, tzinfo=berlin)) == tonight
    # up to the latest start (nominal + flex) it is still tonight's; a second later, tomorrow's
    assert next_occurrence(spec, tonight + timedelta(hours=8)) == tonight
    assert next_occurrence(spec, tonight + timedelta(hours=8, seconds=1)) == tonight + timedelta(days=1)
    # before tonight's nominal time, tonight's is simply the next
    assert next_occurrence(spec, datetime(2026, 11, 24, 21, 0, tzinfo=berlin)) == tonight


# ---- DST: a nominal local time that occurs twice fires once (the first); a missing one, shifted ----
def _daily(cron: str, timezone: str):  # type: ignore[no-untyped-def]
    return parse_jobspec(
        {
            "name": "n",
            "command": ["x"],
            "duration": "1h",
            "schedule": {"cron": cron, "timezone": timezone, "flex": "1h"},
        }
    )


def _chain(cron: str, timezone: str, start: datetime, n: int) -> list[datetime]:
    """n nominal times chained the way the scheduler does (schedules.py): each from the previous + 1 s."""
    out: list[datetime] = []
    after = start
    for _ in range(n):
        nxt = next_nominal(cron, timezone, after)
        assert nxt is not None
        out.append(nxt)
        after = nxt + timedelta(seconds=1)
    return out


@pytest.mark.parametrize(
    ("cron", "timezone", "start", "day", "expected", "local"),
    [
        # autumn fall-back: the repeated hour's first (summer-time) instance, once
        ("30 2 * * *", "Europe/Berlin", "2030-10-24", "2030-10-27", "2030-10-27T00:30Z", "02:30"),
        ("30 1 * * *", "America/New_York", "2030-10-31", "2030-11-03", "2030-11-03T05:30Z", "01:30"),
        # spring forward: the missing time runs once, shifted by the gap (02:30 -> 03:30 summer time)
        ("30 2 * * *", "Europe/Berlin", "2030-03-28", "2030-03-31", "2030-03-31T01:30Z", "03:30"),
        ("30 2 * * *", "America/New_York", "2030-03-07", "2030-03-10", "2030-03-10T07:30Z", "03:30"),
        # an hour the transitions do not touch: unaffected
        ("0 22 * * *", "Europe/Berlin", "2030-10-24", "2030-10-27", "2030-10-27T21:00Z", "22:00"),
        ("0 22 * * *", "Europe/Berlin", "2030-03-28", "2030-03-31", "2030-03-31T20:00Z", "22:00"),
        ("0 22 * * *", "America/New_York", "2030-10-31", "2030-11-03", "2030-11-04T03:00Z", "22:00"),
        ("0 22 * * *", "America/New_York", "2030-03-07", "2030-03-10", "2030-03-11T02:00Z", "22:00"),
    ],
)
def test_daily_occurrences_across_dst_one_per_local_day(
    cron: str, timezone: str, start: str, day: str, expected: str, local: str
) -> None:
    zone = ZoneInfo(timezone)
    begin = datetime.fromisoformat(start).replace(tzinfo=zone)
    occurrences = _chain(cron, timezone, begin, 7)
    days = [o.astimezone(zone).date() for o in occurrences]
    assert days == [begin.date() + timedelta(days=i) for i in range(7)]  # every local day exactly once
    on_day = [o for o in occurrences if o.astimezone(zone).date().isoformat() == day]
    assert on_day == [datetime.fromisoformat(expected)]
    assert on_day[0].astimezone(zone).strftime("%H:%M") == local
    nominal = f"{int(cron.split()[1]):02d}:{int(cron.split(maxsplit=1)[0]):02d}"
    others = [o.astimezone(zone).strftime("%H:%M") for o in occurrences if o not in on_day]
    assert set(others) == {nominal}


def test_a_fall_back_occurrence_already_run_is_not_repeated_in_the_second_pass() -> None:
    # 01:10 UTC = 02:10 CET, the repeated hour's second pass; 02:30's first instance (00:30 UTC) is past
    assert next_nominal("30 2 * * *", "Europe/Berlin", datetime(2030, 10, 27, 1, 10, tzinfo=UTC)) == datetime(
        2030, 10, 28, 1, 30, tzinfo=UTC
    )


def test_a_spring_forward_occurrence_is_found_from_inside_the_shifted_hour() -> None:
    spec = _daily("30 2 * * *", "Europe/Berlin")
    # 01:10 UTC = 03:10 CEST: 02:30 did not exist and runs at 03:30 CEST (01:30 UTC), still ahead
    assert next_occurrence(spec, datetime(2030, 3, 31, 1, 10, tzinfo=UTC)) == datetime(
        2030, 3, 31, 1, 30, tzinfo=UTC
    )


def test_a_spring_forward_occurrence_is_not_lost_after_an_earlier_one_that_night() -> None:
    # 01:30 and 02:30 every night: on the spring-forward night 02:30 runs at 03:30 CEST, not never
    got = _chain("30 1,2 * * *", "Europe/Berlin", datetime(2030, 3, 30, 12, tzinfo=UTC), 4)
    assert got == [
        datetime(2030, 3, 31, 0, 30, tzinfo=UTC),  # 01:30 CET
        datetime(2030, 3, 31, 1, 30, tzinfo=UTC),  # 02:30 -> 03:30 CEST
        datetime(2030, 3, 31, 23, 30, tzinfo=UTC),  # 01:30 CEST
        datetime(2030, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_hourly_cron_fires_once_per_distinct_wall_time_across_fall_back() -> None:
    got = _chain("0 * * * *", "Europe/Berlin", datetime(2030, 10, 26, 22, 30, tzinfo=UTC), 4)
    # 01:00 CEST, 02:00 CEST, (02:00 CET is the same wall time: not again), 03:00 CET, 04:00 CET
    assert got == [
        datetime(2030, 10, 26, 23, tzinfo=UTC),
        datetime(2030, 10, 27, 0, tzinfo=UTC),
        datetime(2030, 10, 27, 2, tzinfo=UTC),
        datetime(2030, 10, 27, 3, tzinfo=UTC),
    ]
