"""The daemon's shared intensity (issue 13): merged series kept per (zone, signal, hour) and reused by
later plans, never past the moment their inputs change: a source answering again, the TTL, the end of
the hour, and a shorter life for a merge made while a source was failing.

Each `service()` is a new IntensityService over one SharedIntensity, as each API plan gets from
`runtime.service_factory`. The live source is the scripted in-process one (public protocol only); its
answer changes between plans, so a test sees exactly when the new answer is used.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from carbonshift import runtime
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.intensity.base import SourceError
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.shared import FAILURE_MEMORY_S, SharedIntensity, hour_span
from carbonshift.intensity.types import GridZone, IntensitySeries, Kind, TimeSpan

from .scripted import ScriptedSource

NOW = datetime(2026, 3, 10, 12, 10, 7, tzinfo=UTC)  # not on the hour: windows are read out of hours
ZONE = GridZone("DE", country="DE", static_g_per_kwh=380.0, static_source="test-table", static_year=2024)
OTHER = GridZone("FR", country="FR", static_g_per_kwh=60.0, static_source="test-table", static_year=2024)


def window(clock: FixedClock, hours: int = 24) -> TimeSpan:
    """A dry run's window: from now, `hours` long."""
    return TimeSpan(clock.now(), clock.now() + timedelta(hours=hours))


def values(series: IntensitySeries) -> set[float]:
    return {p.g_per_kwh for p in series.points()}


class Setup:
    def __init__(self, *, ttl_s: int = 900, now: datetime = NOW) -> None:
        self.answer = {"g_per_kwh": 100.0}
        self.source = ScriptedSource("live", lambda _t: self.answer["g_per_kwh"], zones={"DE"})
        self.clock = FixedClock(now)
        self.shared = SharedIntensity(ttl_s=ttl_s, max_workers=2)

    def service(self) -> IntensityService:
        return IntensityService([self.source], clock=self.clock, shared=self.shared)


def test_a_later_plan_reuses_the_merged_series_without_asking_the_source() -> None:
    s = Setup()
    assert values(s.service().series(ZONE, window(s.clock))) == {100.0}
    s.answer["g_per_kwh"] = 200.0
    s.clock.advance(30)  # a later plan: a window 30 s later, in the same hours
    kept = s.service().series(ZONE, window(s.clock))
    assert values(kept) == {100.0}
    assert len(s.source.calls) == 1
    assert kept.span == window(s.clock)  # read out for this plan's window exactly


def test_a_source_answering_again_invalidates_what_was_merged_from_it() -> None:
    s = Setup()
    assert values(s.service().series(ZONE, window(s.clock))) == {100.0}
    s.answer["g_per_kwh"] = 200.0
    # another plan, for other hours, makes the source answer again (with its new value)
    later = TimeSpan(NOW + timedelta(days=2), NOW + timedelta(days=3))
    assert values(s.service().series(ZONE, later)) == {200.0}
    assert len(s.source.calls) == 2
    # the first window's merge read the old answer: it is merged again, and sees the new one
    assert values(s.service().series(ZONE, window(s.clock))) == {200.0}
    assert len(s.source.calls) == 3


def test_a_kept_series_expires_after_the_forecast_ttl() -> None:
    s = Setup(ttl_s=900, now=datetime(2026, 3, 10, 12, 1, tzinfo=UTC))  # the hour ends long after the TTL
    s.service().series(ZONE, window(s.clock))
    s.answer["g_per_kwh"] = 200.0
    s.clock.advance(899)
    assert values(s.service().series(ZONE, window(s.clock))) == {100.0}
    s.clock.advance(2)
    assert values(s.service().series(ZONE, window(s.clock))) == {200.0}


def test_a_kept_series_expires_when_its_hour_ends() -> None:
    start = datetime(2026, 3, 10, 12, 50, tzinfo=UTC)
    s = Setup(ttl_s=3 * 3600, now=start)
    span = TimeSpan(start, start + timedelta(hours=30))  # a window asked for again and again
    s.service().series(ZONE, span)
    s.answer["g_per_kwh"] = 200.0
    s.clock.advance(9 * 60)  # 12:59: kept
    assert values(s.service().series(ZONE, span)) == {100.0}
    s.clock.advance(2 * 60)  # 13:01: the hour it was built in is over
    assert values(s.service().series(ZONE, span)) == {200.0}


def test_a_merge_made_while_the_source_failed_keeps_its_notices_and_lives_briefly() -> None:
    s = Setup(ttl_s=900)
    s.source.error = SourceError("live", "service unavailable", transient=True)
    first = s.service()
    fallback = first.series(ZONE, window(s.clock))
    assert {p.provenance.kind for p in fallback.points()} == {Kind.STATIC}
    assert first.notices == ["live unavailable for DE: service unavailable"]

    s.source.error = None  # the source is back, but a failure is not asked about again at once
    s.clock.advance(FAILURE_MEMORY_S - 1)
    second = s.service()
    assert values(second.series(ZONE, window(s.clock))) == {380.0}
    assert second.notices == first.notices  # a kept merge says what a fresh one said
    assert len(s.source.calls) == 1

    s.clock.advance(2)  # past the failure memory (well within the 900 s TTL): asked again
    assert values(s.service().series(ZONE, window(s.clock))) == {100.0}
    assert len(s.source.calls) == 2


def test_shared_and_unshared_services_give_the_same_series() -> None:
    s = Setup()
    span = TimeSpan(NOW + timedelta(minutes=3, seconds=11), NOW + timedelta(hours=20, minutes=4))
    plain = IntensityService([s.source], clock=s.clock)
    for _ in range(2):  # the first merges and keeps, the second reads the kept series
        shared = s.service().series_many([ZONE, OTHER], span)
        alone = plain.series_many([ZONE, OTHER], span)
        for zone in (ZONE, OTHER):
            assert list(shared[zone].points()) == list(alone[zone].points())
            assert shared[zone].span == span


def test_hour_span_widens_to_whole_hours() -> None:
    wide = hour_span(window(FixedClock(NOW)))
    assert wide == TimeSpan(datetime(2026, 3, 10, 12, tzinfo=UTC), datetime(2026, 3, 11, 13, tzinfo=UTC))
    assert hour_span(wide) == wide


def test_the_daemons_factory_gives_each_plan_its_own_service_over_one_shared_state(tmp_path: Path) -> None:
    config = tmp_path / "carbonshift.yaml"
    config.write_text(f"cache:\n  path: {tmp_path / 'cache.sqlite'}\nukci_enabled: false\n")
    make = runtime.service_factory(load_settings(config))
    one, two = make(), make()
    assert one is not two and one.notices is not two.notices
    assert one.shared is not None and one.shared is two.shared
    assert one.cache is two.cache and one.sources == two.sources


def test_plans_in_parallel_each_get_a_whole_series_for_their_own_window() -> None:
    s = Setup()
    zones = [ZONE, OTHER, GridZone("DE", country="DE", static_g_per_kwh=390.0, cloud_region="r2")]
    problems: list[str] = []

    def plans(offset_s: int) -> None:
        for i in range(25):
            span = TimeSpan(NOW + timedelta(seconds=offset_s + i), NOW + timedelta(hours=20, seconds=i))
            if i % 5 == 0:  # now and then the live source answers again with a new value
                s.answer["g_per_kwh"] = float(100 + i)
                s.service().series(ZONE, TimeSpan(NOW + timedelta(days=3), NOW + timedelta(days=4)))
            got = s.service().series_many(zones, span)
            for zone in zones:
                series = got[zone]
                if series.span != span or not series.is_complete:
                    problems.append(f"{zone.id}: {series.span} for {span}")

    threads = [threading.Thread(target=plans, args=(k * 7,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert len(s.shared) > 0
