"""The daemon's shared intensity keys merged series by a zone token found by the zone object's identity
(intensity/shared.py): equal zones made apart must still share one kept series, and zones that differ
in anything (a static fallback value) must not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from carbonshift.clock import FixedClock
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.shared import SharedIntensity
from carbonshift.intensity.types import GridZone, TimeSpan

from .scripted import ScriptedSource

NOW = datetime(2026, 3, 10, 12, 10, 7, tzinfo=UTC)


def zone(static_g_per_kwh: float = 380.0) -> GridZone:
    """A new zone object each call."""
    return GridZone(
        "DE", country="DE", static_g_per_kwh=static_g_per_kwh, static_source="t", static_year=2024
    )


def setup() -> tuple[ScriptedSource, FixedClock, SharedIntensity]:
    source = ScriptedSource("live", lambda _t: 100.0, zones={"DE"})
    return source, FixedClock(NOW), SharedIntensity(ttl_s=900, max_workers=2)


def test_equal_zones_made_apart_share_one_token_and_one_kept_series() -> None:
    source, clock, shared = setup()
    first, second = zone(), zone()
    assert first is not second and shared.zone_token(first) == shared.zone_token(second)
    span = TimeSpan(NOW, NOW + timedelta(hours=6))
    IntensityService([source], clock=clock, shared=shared).series(first, span)
    kept = IntensityService([source], clock=clock, shared=shared).series_many([second, first], span)
    assert list(kept) == [second]  # one key for equal zones, as dict.fromkeys gave
    assert len(source.calls) == 1  # the second plan read the kept merge
    assert kept[first].span == span


def test_zones_that_differ_only_in_their_static_value_are_kept_apart() -> None:
    _, _, shared = setup()
    plain, other = zone(), dataclasses.replace(zone(), static_g_per_kwh=999.0)
    assert shared.zone_token(plain) != shared.zone_token(other)
    assert shared.zone_token(plain) == shared.zone_token(zone())


def test_series_list_gives_series_many_in_the_order_asked_kept_or_not() -> None:
    source, clock, shared = setup()
    other = GridZone("FR", country="FR", static_g_per_kwh=60.0, static_source="t", static_year=2024)
    span = TimeSpan(NOW + timedelta(minutes=3), NOW + timedelta(hours=6, seconds=5))
    asked = [zone(), other, zone(), other]
    for services in (
        lambda: IntensityService([source], clock=clock),  # nothing shared
        lambda: IntensityService([source], clock=clock, shared=shared),  # first merges, then kept
        lambda: IntensityService([source], clock=clock, shared=shared),
    ):
        one, two = services(), services()
        by_zone = one.series_many(asked, span)
        in_order = two.series_list(asked, span)
        assert [list(s.points()) for s in in_order] == [list(by_zone[z].points()) for z in asked]
        assert two.notices == one.notices
