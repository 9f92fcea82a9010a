from datetime import UTC, datetime

import pytest

from carbonshift.config.jobspec import parse_jobspec
from carbonshift.schedule import cron_trigger, next_occurrence, occurrence_spec

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
