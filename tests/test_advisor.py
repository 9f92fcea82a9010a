"""The dry-run advisor through its Python API: catalog + intensity service + planner, no CLI."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonshift.advisor import advise
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import UserInputError
from carbonshift.runtime import build_catalog, build_service

NOW = datetime(2026, 11, 24, 0, tzinfo=UTC)


def setup(tmp_path: Path, rows: list[tuple[datetime, float]]):  # type: ignore[no-untyped-def]
    csv = tmp_path / "lab.csv"
    csv.write_text("timestamp,g_per_kwh\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows))
    settings = load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        intensity={"files": {"LAB-ZONE": str(csv)}},
        locations=[{"region": "lab", "zone": "LAB-ZONE", "country": "ES", "pue": 1.2}],
    )
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


def spec(**extra):  # type: ignore[no-untyped-def]
    data = {"name": "j", "command": ["x"], "duration": "2h", "placement": {"providers": ["local"]}}
    data.update(extra)
    return parse_jobspec(data)


def test_a_series_that_ends_before_the_deadline_is_filled_with_static_and_flagged(tmp_path: Path) -> None:
    # six hours of data (too little history for a model), the window runs 12 h
    rows = [(NOW + timedelta(hours=h), 300.0 - 40 * h) for h in range(6)]  # falling to 100 at 05:00
    catalog, service = setup(tmp_path, rows)
    window = {"earliest": "2026-11-24T00:00Z", "deadline": "2026-11-24T12:00Z"}
    advice = advise(spec(window=window), catalog=catalog, service=service, now=NOW)
    series = advice.series["local:lab"]
    kinds = {p.provenance.kind.value for p in series.points()}
    assert kinds == {"forecast", "static"}  # the file starts at now: all of it is forecast
    static = [p for p in series.points() if p.provenance.kind.value == "static"]
    assert static[0].start == NOW + timedelta(hours=6)  # static only after the file ends
    assert static[0].g_per_kwh == catalog.country("ES").g_per_kwh  # the zone's country average
    best = advice.plan.best
    # Spain's annual average is above 100, so the cheapest 2 h is the file's last two hours
    assert catalog.country("ES").g_per_kwh > 140
    assert best.start == NOW + timedelta(hours=4) and best.static_fallback is False
    # a run reaching into the static part is flagged
    late = advise(
        spec(window={"earliest": "2026-11-24T05:00Z", "deadline": "2026-11-24T12:00Z"}),
        catalog=catalog,
        service=service,
        now=NOW,
    )
    assert late.plan.best.static_fallback is True
    assert {s.kind.value for s in late.plan.best.sources} == {"forecast", "static"}


def test_window_exactly_as_long_as_the_job(tmp_path: Path) -> None:
    catalog, service = setup(tmp_path, [(NOW + timedelta(hours=h), 100.0 + h) for h in range(24)])
    window = {"earliest": "2026-11-24T03:00Z", "deadline": "2026-11-24T05:00Z"}
    best = advise(spec(window=window), catalog=catalog, service=service, now=NOW).plan.best
    assert (best.start, best.end) == (NOW + timedelta(hours=3), NOW + timedelta(hours=5))
    assert best.mean_g_per_kwh == pytest.approx(103.5)
    assert best.energy.pue == 1.2  # the location's own PUE


def test_ties_go_to_the_earliest_start(tmp_path: Path) -> None:
    # two equally cheap dips: 03:00-05:00 and 09:00-11:00
    rows = [(NOW + timedelta(hours=h), 50.0 if h in (3, 4, 9, 10) else 200.0) for h in range(24)]
    catalog, service = setup(tmp_path, rows)
    best = advise(spec(), catalog=catalog, service=service, now=NOW).plan.best
    assert best.start == NOW + timedelta(hours=3)


def test_local_without_a_configured_location_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    with pytest.raises(UserInputError, match=r"placement\.providers.*locations"):
        advise(spec(), catalog=build_catalog(settings), service=build_service(settings), now=NOW)
